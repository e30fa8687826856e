"""The reference model: steps a Program op by op and predicts each OpResult.

Model.step resolves the op's arguments against the model's own earlier results,
applies the generic ioctl entry checks (iommufd_fops_ioctl: min size, E2BIG for
non-zero bytes past the struct), then runs the op's handler, which raises
KernelError(errno) or Unsure(reason). Output fields the kernel did not write
hold what the struct held: the input value (0 when the program gave none).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fuzz import uapi
from fuzz.model import device, fault, hwpt, selftest, vfio
from fuzz.model import ioas as ioas_ops
from fuzz.model.consts import E2BIG, EINVAL, IOPT_PAGES_ACCOUNT_USER, STRUCT_SIZES
from fuzz.model.errors import KernelError, Unsure
from fuzz.model.iopt import IoPagetable, Pages
from fuzz.model.memory import UserMemory
from fuzz.model.objects import (
    Access,
    Fault,
    HwPagetable,
    HwptNested,
    Ioas,
    Object,
    ObjectTable,
    SelftestObj,
)
from fuzz.prog import BUF_BASE, BUF_STRIDE, BufPtr, Op, Program, Ref
from fuzz.prog.descriptions import OPS
from fuzz.prog.layout import arg_defaults
from fuzz.prog.limits import MAX_STRUCT, TEST_MEMORY_LIMIT_DEFAULT
from fuzz.prog.types import (
    COMMON_WIDTHS,
    FDIO,
    IOMMUFD,
    TEST,
    VFIO_STRUCT,
    VFIO_VAL,
    Capacity,
    Count,
    Entries,
    Ranges,
    Uptr,
)
from fuzz.result import OpResult

FAKE_FD_BASE = 2_000_000  # above fs.nr_open: never a real fd

HANDLERS: dict[str, Callable[[Model, Args], dict]] = {
    "DESTROY": ioas_ops.destroy,
    "IOAS_ALLOC": ioas_ops.ioas_alloc,
    "IOAS_ALLOW_IOVAS": ioas_ops.allow_iovas,
    "IOAS_IOVA_RANGES": ioas_ops.iova_ranges,
    "IOAS_MAP": ioas_ops.ioas_map,
    "IOAS_COPY": ioas_ops.ioas_copy,
    "IOAS_UNMAP": ioas_ops.ioas_unmap,
    "OPTION": ioas_ops.option,
    "VFIO_IOAS": ioas_ops.vfio_ioas,
    "TEST_ADD_RESERVED": selftest.add_reserved,
    "TEST_MOCK_DOMAIN": selftest.mock_domain,
    "TEST_MOCK_DOMAIN_FLAGS": selftest.mock_domain,
    "TEST_MOCK_DOMAIN_REPLACE": selftest.mock_domain_replace,
    "TEST_MD_CHECK_MAP": selftest.md_check_map,
    "TEST_MD_CHECK_REFS": selftest.md_check_refs,
    "TEST_CREATE_ACCESS": selftest.create_access,
    "TEST_DESTROY_ACCESS_PAGES": selftest.destroy_access_pages,
    "TEST_ACCESS_PAGES": selftest.access_pages,
    "TEST_ACCESS_RW": selftest.access_rw,
    "TEST_SET_TEMP_MEMORY_LIMIT": selftest.set_temp_memory_limit,
    "TEST_ACCESS_REPLACE_IOAS": selftest.access_replace_ioas,
    "HWPT_ALLOC": hwpt.hwpt_alloc,
    "GET_HW_INFO": device.get_hw_info,
    "HWPT_SET_DIRTY_TRACKING": hwpt.set_dirty_tracking,
    "HWPT_GET_DIRTY_BITMAP": hwpt.get_dirty_bitmap,
    "HWPT_INVALIDATE": hwpt.invalidate,
    "FAULT_QUEUE_ALLOC": fault.fault_alloc,
    "TEST_DIRTY": selftest.test_dirty,
    "TEST_MD_CHECK_IOTLB": selftest.md_check_iotlb,
    "TEST_TRIGGER_IOPF": selftest.trigger_iopf,
    "CLOSE": selftest.close,
    "READ": fault.read,
    "WRITE": fault.write,
    "VFIO_GET_API_VERSION": vfio.get_api_version,
    "VFIO_CHECK_EXTENSION": vfio.check_extension,
    "VFIO_SET_IOMMU": vfio.set_iommu,
    "VFIO_IOMMU_GET_INFO": vfio.get_info,
    "VFIO_IOMMU_MAP_DMA": vfio.map_dma,
    "VFIO_IOMMU_UNMAP_DMA": vfio.unmap_dma,
}
U64_MASK = (1 << 64) - 1


class _OpInfo:
    """What Model.step needs of an op's description, computed once per op name."""

    __slots__ = ("masks", "outputs", "kind", "defaults", "count_of", "planned", "sizes",
                 "out_plan")

    def __init__(self, name: str) -> None:
        d = OPS[name]
        self.masks = {k: (1 << (8 * w)) - 1 for k, w in COMMON_WIDTHS.items()}
        for arg in d.args:
            self.masks[arg.name] = (1 << (8 * arg.width)) - 1
        self.outputs = d.outputs
        specials = {"ranges": list, "caps": list, "data": bytes, "ret": lambda: -1,
                    "entries": list, "first": lambda: 0}
        self.out_plan = [(o.name, specials.get(o.decode)) for o in d.outs]
        self.kind = d.call
        # what the executor puts in a field the program leaves out (fuzz.prog.layout):
        # a capacity's default, a side array's entry count, the natural size; `planned`
        # ops have defaults that depend on the other arguments (read/write counts, the
        # entries a list makes), so they ask the layout plan each time
        self.defaults: dict[str, int] = {}
        self.count_of: dict[str, str] = {}  # count argument -> its Ranges argument
        self.planned = False
        for arg in d.args:
            t = arg.type
            if isinstance(t, Capacity):
                self.defaults[arg.name] = t.default
            elif isinstance(t, Ranges):
                self.count_of[t.count] = arg.name
            elif isinstance(t, (Entries, Count)) or (isinstance(t, Uptr) and t.scratch):
                self.planned = True
        if d.call == VFIO_STRUCT:
            self.defaults["argsz"] = uapi.sizeof(d.struct) + d.extra_space
        self.sizes: tuple[int, int] | None = None
        if d.call in (IOMMUFD, TEST):
            self.sizes = STRUCT_SIZES["TEST" if d.call == TEST else name]


_INFO: dict[str, _OpInfo] = {}


def _info(name: str) -> _OpInfo:
    try:
        return _INFO[name]
    except KeyError:
        info = _INFO[name] = _OpInfo(name)
        return info


class Args(dict):
    """The resolved arguments of one op: integers wrapped to their field's width.
    a["name"] is 0 for an argument the program left out (the struct field is 0)."""

    __slots__ = ("raws", "refs")

    def __missing__(self, key: str) -> int:
        return 0

    def has(self, name: str) -> bool:
        return name in self.raws

    def raw(self, name: str) -> Any:
        return self.raws.get(name)

    def is_ref(self, name: str) -> bool:
        return self.refs is not None and name in self.refs


class Model:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.mem = UserMemory(program.buffers)
        self.objects = ObjectTable()
        self.vfio_ioas: Ioas | None = None
        self.account_mode = IOPT_PAGES_ACCOUNT_USER  # /dev/iommu, not /dev/vfio/vfio
        self.memory_limit = TEST_MEMORY_LIMIT_DEFAULT  # the executor resets it per program
        self.fds: dict[int, Access | Fault] = {}  # open access and fault fds
        self.fake_fds = False  # some access fd number was made up (no kernel result)
        self.next_fake_fd = FAKE_FD_BASE
        self.captured = 0  # bytes of TEST_ACCESS_RW data the executor captured so far
        # by op index; None for an op of a race group not stepped yet (see step)
        self.results: list[OpResult | None] = []
        self.poisoned: str | None = None
        # fault points the model fails on purpose, to follow a path an injected fault
        # made the kernel take (fuzz.model.faults): ("attach", hwpt id)
        self.fail_at: set[tuple[str, int]] = set()
        self.op_name = ""
        self.op: Op | None = None  # the op being stepped (handlers that need its layout)
        self._kernel: OpResult | None = None

    # -- helpers the handlers use ------------------------------------------------
    def kernel_out(self, field: str) -> int | None:
        """The kernel's value of an output field of the current op, if it succeeded."""
        k = self._kernel
        if k is None or k.errno != 0:
            return None
        v = k.out.get(field)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def kernel_result(self) -> OpResult | None:
        """The kernel's whole result for the current op (see selftest.close)."""
        return self._kernel

    def choose_fd(self, field: str) -> int:
        # Free choice: the fd number of a new access or fault fd is whatever
        # get_unused_fd_flags() finds in the agent's fd table. Adopt the kernel's number
        # if it is a valid fd that is not already an open fd of the program in the
        # model; else make one up.
        fd = self.kernel_out(field)
        if fd is not None and 0 <= fd < (1 << 20) and fd not in self.fds:
            return fd
        self.fake_fds = True
        fd = self.next_fake_fd
        self.next_fake_fd += 1
        return fd

    def is_own_fd_ref(self, a: Args, name: str) -> bool:
        """Whether argument `name` is exactly an fd output (of an fd kind) of an earlier
        op that succeeded (so the number was an fd of the program)."""
        v = a.raws.get(name)
        if type(v) is not Ref or v.add:
            return False
        out = OPS[self.program.ops[v.op].name].out(v.field)
        return out is not None and out.is_fd and self.results[v.op].errno == 0

    def value_of(self, v: Any, width: int = 8) -> int:
        """A value as the kernel sees it at run time, wrapped to `width` bytes."""
        mask = (1 << (8 * width)) - 1
        if type(v) is Ref:
            src = self.results[v.op].out.get(v.field, 0)
            return ((src if type(src) is int else 0) + v.add) & mask
        if type(v) is BufPtr:
            return (BUF_BASE + v.buf * BUF_STRIDE + v.offset) & mask
        return int(v) & mask if type(v) is int else 0

    def all_pages(self) -> list[Pages]:
        seen: dict[int, Pages] = {}
        for obj in self.objects.objs.values():
            if isinstance(obj, Ioas):
                for area in obj.iopt.areas:
                    seen.setdefault(area.pages.serial, area.pages)
        return list(seen.values())

    def notify_unmap(self, iopt: IoPagetable, iova: int, length: int) -> None:
        """iommufd_access_notify_unmap: every access on the IOAS gets the unmap op."""
        for list_id in sorted(iopt.access_list):
            acc = iopt.access_list.get(list_id)
            if acc is not None:
                selftest.access_unmap(self, acc, iova, length)  # type: ignore[arg-type]

    def destroy_object(self, obj: Object) -> None:
        """The xarray erase of iommufd_object_remove, then the type's destroy op."""
        self.objects.remove(obj)
        if obj is self.vfio_ioas:
            self.vfio_ioas = None
        if isinstance(obj, Ioas):
            obj.iopt.unmap_range(0, (1 << 64) - 1, self.notify_unmap)
            obj.iopt.remove_reserved(None)
            obj.iopt.allowed = []
        elif isinstance(obj, SelftestObj):
            selftest.selftest_destroy(self, obj)
        elif isinstance(obj, HwPagetable):
            device.hwpt_paging_destroy(self, obj)
        elif isinstance(obj, HwptNested):
            device.hwpt_nested_destroy(self, obj)
        elif isinstance(obj, Fault):
            pass  # no HWPT reports to it any more, so no group is left in it
        else:  # devices and accesses always have another user
            raise Unsure(f"destroying a {obj.type} object is not modelled")

    # -- arguments ---------------------------------------------------------------------
    def resolve(self, index: int, info: _OpInfo | None = None) -> Args:
        op = self.program.ops[index]
        if info is None:
            info = _info(op.name)
        masks = info.masks
        vals = Args()
        refs: set[str] | None = None
        for name, v in op.args.items():
            t = type(v)
            if t is int:
                vals[name] = v & masks.get(name, U64_MASK)
            elif t is Ref:
                if refs is None:
                    refs = set()
                refs.add(name)
                src = self.results[v.op].out.get(v.field, 0)
                if type(src) is not int:
                    src = 0
                vals[name] = (src + v.add) & masks.get(name, U64_MASK)
            elif t is BufPtr:
                vals[name] = (BUF_BASE + v.buf * BUF_STRIDE + v.offset) & masks.get(name,
                                                                                  U64_MASK)
            elif t is list:
                vals[name] = 0
            else:
                vals[name] = int(v) & masks.get(name, U64_MASK)
        for name, v in info.defaults.items():
            if name not in vals:
                vals[name] = v
        for count, ranges in info.count_of.items():
            if count not in vals:
                raw = op.args.get(ranges)
                vals[count] = len(raw) if isinstance(raw, list) else 0
        if info.planned:
            for name, v in arg_defaults(op).items():
                if name not in vals:
                    vals[name] = self.value_of(v) & masks.get(name, U64_MASK)
        vals.raws = op.args
        vals.refs = refs
        return vals

    def default_out(self, name: str, a: Args, info: _OpInfo | None = None) -> dict[str, Any]:
        """What each output field holds if the kernel does not write it back."""
        out: dict[str, Any] = {}
        for f, special in (info or _info(name)).out_plan:
            out[f] = special() if special is not None else a[f]
        return out

    def check_struct_size(self, info: _OpInfo, a: Args) -> None:
        """iommufd_fops_ioctl + copy_struct_from_user: size < min -> EINVAL; bytes
        between the natural size and size must be zero (check_zeroed_user) -> E2BIG.
        The executor backs a literal size up to MAX_STRUCT with real memory holding
        zeros or the 'tail' byte; past that (or for a size that is a Ref) the kernel
        reads whatever follows in the executor's arena."""
        natural, min_size = info.sizes  # type: ignore[misc]
        size = a["size"] if "size" in a else natural
        if size < min_size:
            raise KernelError(EINVAL)
        if size > natural:
            raw = a.raws.get("size")
            if type(raw) is int and raw > natural and a["tail"]:
                raise KernelError(E2BIG)
            if type(raw) is not int or raw != size or size > MAX_STRUCT:
                raise Unsure(f"size {size}: the kernel checks {size - natural} trailing "
                             "bytes the executor does not provide")

    # -- stepping ----------------------------------------------------------------------
    def place(self, index: int, res: OpResult) -> None:
        """Ops are stepped in order 0..n-1, except that the ops of a race group may be
        stepped in any order once every op before the group has been (their refs all
        point before the group: fuzz.prog.ir): begin_group leaves their slots empty."""
        if index == len(self.results):
            self.results.append(res)
        else:
            assert index < len(self.results) and self.results[index] is None, \
                f"op {index} stepped out of order"
            self.results[index] = res

    def begin_group(self, ops: range) -> None:
        """Make room for stepping the ops of a race group in any order."""
        assert ops.start == len(self.results), "a group starts after the ops before it"
        self.results.extend([None] * len(ops))

    def clone(self) -> Model:
        """An independent copy of the state (the program is shared): for trying an
        order of racing ops, or undoing an op that an injected fault failed."""
        return copy.deepcopy(self, {id(self.program): self.program})

    def step(self, index: int, kernel: OpResult | None = None) -> OpResult:
        """Predict op `index` (ops are stepped in order 0..n-1). `kernel` is the real
        kernel's result for the same op when available; it is only used for the free
        choices (automatic IOVA of IOAS_MAP/IOAS_COPY, see IoPagetable.map_pages; the
        access fd number, see Model.choose_fd), after checking it against the rules."""
        op = self.program.ops[index]
        name = op.name
        info = _info(name)
        self.op_name = name
        self.op = op
        self._kernel = kernel
        a = self.resolve(index, info)
        out = self.default_out(name, a, info) if info.out_plan else {}
        res = OpResult(0, 0, out)
        self.place(index, res)
        if self.poisoned is not None:
            res.unsure = self.poisoned
            return res
        try:
            if info.sizes is not None:
                self.check_struct_size(info, a)
            out.update(HANDLERS[name](self, a))
        except KernelError as e:
            res.errno = e.errno
            res.ret = -1
            if e.out:
                out.update(e.out)
        except Unsure as e:
            res.unsure = e.reason
            if e.poisoned:
                self.poisoned = f"after op {index} ({name}): {e.reason}"
        self._kernel = None
        if info.kind in (VFIO_VAL, FDIO):
            if res.errno == 0:
                res.ret = out["ret"]
            else:
                out["ret"] = res.ret
        return res


def run_model(program: Program, kernel: list[OpResult] | None = None) -> list[OpResult]:
    m = Model(program)
    for i in range(len(program.ops)):
        m.step(i, kernel[i] if kernel is not None and i < len(kernel) else None)
    return m.results  # type: ignore[return-value]
