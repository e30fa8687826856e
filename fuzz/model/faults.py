"""An op whose Nth fault point the executor failed (fail_nth): what the model accepts.

The kernel's fault points on an ioctl's path are iommufd's own (fail_iommufd:
iommufd_get_object answers -ENOENT, the mock domain's map_pages -ENOENT, the
batch and pin paths of pages.c and io_pagetable.c), every slab allocation
(failslab) and every page allocation (fail_page_alloc) the calling task makes.
When the executor reports the fault injected (fail-nth read back 0), the op:

- succeeded: the failure was tolerated (a fallback, a retry) and the op must have
  done what it does without it - the model steps it as usual - or, where the failure
  sends the kernel down another path that also succeeds, what that path does: a
  device whose attach to an IOAS's existing domain fails with EINVAL (fail_iommufd in
  iopt_table_enforce_dev_resv_regions) takes the next domain, or a new one
  (iommufd_device_auto_get_domain reads EINVAL as "incompatible"), and an IOAS_COPY
  whose syzkaller-style IOVA conversion failed its lookup copies from the IOVA as
  given; the model tries each such failure (ALTERNATIVES) and keeps the one that
  gives the kernel's result; where the op's only fault points past the ones that
  fail it are on such a path, the failure must have been there (SURVIVED: a
  TEST_TRIGGER_IOPF whose fault group could not be allocated succeeds, and the fault
  is aborted, never queued);
- failed with the errno the model predicts anyway: as usual;
- failed otherwise: with one of INJECTED_ERRNOS only, and as if it had never run:
  the model's state goes back to what it was before the op, and the op's result
  is the failed call's (outputs: what the struct held). The ops after it (a probe
  suffix: fuzz.faults) then show any state the failure left behind - a pin left
  on a page (MD_CHECK_REFS), an IOVA left reserved or mapped (IOVA_RANGES,
  MD_CHECK_MAP, mapping the same range again), an id left allocated.

An injected fault can never make an op succeed that fails without it, except where
such a path does (the IOAS_COPY above).
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from fuzz.compare import compare_op
from fuzz.model.consts import MOCK_FLAGS_ACCESS_SYZ
from fuzz.model.fault import IOPF_GROUP_FAILED, IOPF_GROUP_MAYBE
from fuzz.model.model import Model
from fuzz.model.objects import OBJ_IOAS
from fuzz.result import OpResult

# errno -> where an injected fault answers it, for every op
INJECTED_ERRNOS: dict[int, str] = {
    errno.ENOMEM: "a failed slab or page allocation; fail_iommufd in temp_kmalloc() and "
                  "update_mm_pinned()",
    errno.ENOENT: "fail_iommufd in iommufd_get_object() or the mock domain's map_pages()",
    errno.EFAULT: "fail_iommufd in pfn_reader_user_pin(); a page fault that could not "
                  "allocate while pinning user pages",
}
_ATTACH = {errno.EINVAL: "fail_iommufd in iopt_table_enforce_dev_resv_regions()"}
_MOCK_DEVICE = {errno.EINVAL: "an allocation failed in iommu_probe_device() (the bus "
                              "notifier's errors are not propagated: the mock device has no "
                              "IOMMU) and iommufd_device_bind() refuses a device without "
                              "IOMMU_CAP_CACHE_COHERENCY; or, attaching, fail_iommufd in "
                              "iopt_table_enforce_dev_resv_regions()"}
# a failed __GFP_NOWARN kmalloc in temp_kmalloc() falls back to one page (or the
# caller's backup), so pfn_reader_user_pin cuts the range into other pin calls: one
# that reaches the last page below 2^64 answers EOVERFLOW where the cut without the
# fault answered EFAULT (fuzz.model.gup)
_CUT = {errno.EOVERFLOW: "temp_kmalloc()'s fallback after a failed allocation cut the pin "
                         "calls otherwise, and one reached the top of the address space"}
# ... and for these ops also (the walk of every seed op found them: fuzz.faults)
INJECTED_ERRNOS_OF: dict[str, dict[int, str]] = {
    "TEST_MOCK_DOMAIN": _MOCK_DEVICE,
    "TEST_MOCK_DOMAIN_FLAGS": _MOCK_DEVICE,
    "TEST_MOCK_DOMAIN_REPLACE": _ATTACH,
    "TEST_ACCESS_PAGES": {errno.EINVAL: "fail_iommufd half way through pages_to_xarray()"},
    "TEST_ACCESS_RW": {errno.EINVAL: "fail_iommufd in iopt_pages_rw_page()"},
    "HWPT_ALLOC": {errno.EINVAL: "fail_iommufd in iommufd_get_object() of pt_id "
                                 "(iommufd_hwpt_alloc answers EINVAL for any lookup error)"},
}
# outputs an op writes back on its error path too (the rest hold what the struct held)
FAILED_OUT: dict[str, dict[str, int]] = {
    # iommufd_hwpt_invalidate: entry_num = done_num, 0 when the lookup failed
    "HWPT_INVALIDATE": {"entry_num": 0},
}
# ops whose path pins user pages through pfn_reader_user_pin: a map, a copy or a new
# domain filled from an IOAS's areas, an access's pin or slow-path read/write
PINS = {"IOAS_MAP", "IOAS_COPY", "VFIO_IOMMU_MAP_DMA", "TEST_ACCESS_PAGES", "TEST_ACCESS_RW",
        "TEST_MOCK_DOMAIN", "TEST_MOCK_DOMAIN_FLAGS", "TEST_MOCK_DOMAIN_REPLACE", "HWPT_ALLOC"}
ALLOWED = tuple(sorted(INJECTED_ERRNOS))


def allowed(name: str) -> tuple[int, ...]:
    """The errnos an injected fault may fail op `name` with."""
    return tuple(sorted({*INJECTED_ERRNOS, *INJECTED_ERRNOS_OF.get(name, {}),
                         *(_CUT if name in PINS else {})}))


def _attach_points(model: Model, index: int) -> list[tuple[str, int]]:
    """The domains an attach to an IOAS may try first: each one's attach can fail."""
    a = model.resolve(index)
    op = model.program.ops[index]
    key = "pt_id" if op.name == "TEST_MOCK_DOMAIN_REPLACE" else "id"
    ioas = model.objects.get(a[key], OBJ_IOAS)
    return [("attach", h.id) for h in getattr(ioas, "hwpt_list", [])]


def _syz_conv_point(model: Model, index: int) -> list[tuple[str, int]]:
    """IOAS_COPY with MOCK_FLAGS_ACCESS_SYZ: iommufd_test_syz_conv_iova_id looks the
    source IOAS up first (the ioctl's first fault point) and, if that fails, returns
    without converting src_iova (selftest.c:117-119): the copy runs with the IOVA as
    given, and may succeed where the converted one fails."""
    a = model.resolve(index)
    return [("syz_conv", a["src_ioas_id"])] if a["flags"] & MOCK_FLAGS_ACCESS_SYZ else []


# op -> the fault points the model can fail on purpose (Model.fail_at) for it
ALTERNATIVES: dict[str, Callable[[Model, int], list[tuple[str, int]]]] = {
    "TEST_MOCK_DOMAIN": _attach_points,
    "TEST_MOCK_DOMAIN_FLAGS": _attach_points,
    "TEST_MOCK_DOMAIN_REPLACE": _attach_points,
    "IOAS_COPY": _syz_conv_point,
}


def _iopf_group(model: Model, index: int) -> set[tuple[str, int]]:
    """The fault points of TEST_TRIGGER_IOPF, in order: fail_iommufd in the device's
    iommufd_get_object (main.c:133: ENOENT, the op fails); then, only where a
    fault-capable domain takes the fault, iopf_group_alloc's kzalloc (io-pgfault.c:88;
    should_failslab comes first in it, mm/slub.c:4133), and the page allocations
    under it (a new slab: the kzalloc fails too; KASAN's stack depot: it does not).
    A failed kzalloc sends iommu_report_device_fault to err_abort (io-pgfault.c:252-270:
    answered IOMMU_PAGE_RESP_FAILURE, never queued), and iommufd_test_trigger_iopf
    ignores its result (selftest.c:1452): the op succeeds. So a failure it survived
    was the 2nd point, the kzalloc, for certain; a later one may or may not have
    cost the group."""
    return {IOPF_GROUP_FAILED if model.program.ops[index].fail_nth == 2 else IOPF_GROUP_MAYBE}


# op -> the fault points an injected failure the op survived must have hit
SURVIVED: dict[str, Callable[[Model, int], set[tuple[str, int]]]] = {
    "TEST_TRIGGER_IOPF": _iopf_group,
}


def _step_failing(model: Model, index: int, kernel: OpResult,
                  points: set[tuple[str, int]]) -> OpResult:
    """Model.step with those fault points failed on purpose (Model.fail_at)."""
    model.fail_at = points
    try:
        return model.step(index, kernel)
    finally:
        model.fail_at = set()


def _tolerated(model: Model, index: int, kernel: OpResult) -> OpResult:
    """An op that succeeded with its fault injected: as without the fault, or as one of
    the other paths the fault can send it down (whichever gives the kernel's result),
    or as the path it must have taken (SURVIVED)."""
    name = model.program.ops[index].name
    if name in SURVIVED:
        return _step_failing(model, index, kernel, SURVIVED[name](model, index))
    points = ALTERNATIVES[name](model, index) if name in ALTERNATIVES else []
    if not points:
        return model.step(index, kernel)
    before = model.clone()
    res = model.step(index, kernel)
    if not compare_op(index, name, kernel, res):
        return res
    return _alternative(model, before, index, kernel, points) or res
    # (none: no path gives it; the comparison names the difference)


def _alternative(model: Model, before: Model, index: int, kernel: OpResult,
                 points: list[tuple[str, int]]) -> OpResult | None:
    """The result of the first path a failed fault point sends op `index` down that
    gives the kernel's result exactly (the model then takes that path's state)."""
    name = model.program.ops[index].name
    for point in points:
        alt = before.clone()
        r = _step_failing(alt, index, kernel, {point})
        if not compare_op(index, name, kernel, r):
            model.__dict__.update(alt.__dict__)
            return r
    return None


def step(model: Model, index: int, kernel: OpResult | None) -> OpResult:
    """Model.step for op `index`, with the rule above when the kernel's result says
    its fault was injected. The returned result carries fault_errnos, the errnos an
    injected failure may answer (fuzz.compare checks the kernel's against them)."""
    op = model.program.ops[index]
    if not op.fail_nth or kernel is None or not kernel.injected:
        return model.step(index, kernel)
    if kernel.errno == 0:
        return _tolerated(model, index, kernel)
    before = model.clone()
    res = model.step(index, kernel)
    res.fault_errnos = allowed(op.name)
    if res.errno != kernel.errno and op.name in ALTERNATIVES:
        # a failed fault point may send the op down a path that fails otherwise (a syz
        # IOAS_COPY from the IOVA as given, into pages it may not write: EPERM)
        alt = _alternative(model, before, index, kernel, ALTERNATIVES[op.name](before, index))
        if alt is not None:
            return alt
    if res.errno == kernel.errno or kernel.errno not in res.fault_errnos:
        return res  # as usual, or a mismatch the comparison names
    # failed through the fault: as if it had never run. Also where the model was unsure
    # (of fd numbers after a race, say): the state it stepped to is the outcome the
    # kernel's injected failure rules out (an access made, an id taken); the result
    # stays unsure
    model.__dict__.update(before.__dict__)
    failed = OpResult(kernel.errno, -1, {**model.default_out(op.name, model.resolve(index)),
                                         **FAILED_OUT.get(op.name, {})},
                      fault_errnos=res.fault_errnos, unsure=res.unsure)
    if "ret" in failed.out:
        failed.out["ret"] = -1
    model.place(index, failed, kernel, failed.out)
    return failed
