"""The kernel's own iommufd selftests (tools/testing/selftests/iommu: `iommufd` and
`iommufd_fail_nth`), built from the kernel source the test kernel came from and
run in the VM: the baseline a fuzzer's coverage is compared with.

The 6.12.117 selftests do not compile against their own uAPI header: the
backport carried test changes without the uAPI they use. The shims below fill
the gap on a copy of the sources (the extracted tree is never edited):
IOMMU_HW_INFO_TYPE_DEFAULT and IOMMU_HW_INFO_FLAG_INPUT_TYPE (not in 6.12's
iommufd.h; 0 is what the tests mean), MOCK_FLAGS_DEVICE_PASID and
MOCK_PASID_WIDTH (not in 6.12's iommufd_test.h), and `.in_data_type`, a field
6.12's struct iommu_hw_info does not have.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.paths import cache_dir

PROGRAMS = ("iommufd", "iommufd_fail_nth")
SHIM_DEFINES = {"IOMMU_HW_INFO_TYPE_DEFAULT": "0", "IOMMU_HW_INFO_FLAG_INPUT_TYPE": "0",
                "MOCK_FLAGS_DEVICE_PASID": "4", "MOCK_PASID_WIDTH": "20"}
SHIM_VERSION = 1  # bump when the shims or flags change
CFLAGS = ["-Wall", "-O2", "-Wno-unused-function", "-D_GNU_SOURCE"]
# What the sources include, relative to the tree: the tests include the harness
# as ../kselftest_harness.h and iommufd_test.h as ../../../../drivers/...
SOURCES = ("tools/testing/selftests/iommu/iommufd.c",
           "tools/testing/selftests/iommu/iommufd_fail_nth.c",
           "tools/testing/selftests/iommu/iommufd_utils.h",
           "tools/testing/selftests/kselftest_harness.h",
           "tools/testing/selftests/kselftest.h",
           "drivers/iommu/iommufd/iommufd_test.h")
UAPI = ("include/uapi/linux/iommufd.h", "include/uapi/linux/vfio.h")


class SelftestError(RuntimeError):
    """Building or running the selftests failed; the message says which step."""


def _key(tree: Path) -> str:
    h = hashlib.sha256(f"shims {SHIM_VERSION} {sorted(SHIM_DEFINES.items())} {CFLAGS}".encode())
    for rel in SOURCES + UAPI:
        h.update(rel.encode() + b"\0" + (tree / rel).read_bytes())
    return h.hexdigest()[:16]


def uapi_header(text: str) -> str:
    """scripts/headers_install.sh's rewriting (these two headers have no
    __KERNEL__ or CONFIG_ blocks for its unifdef step to drop)."""
    text = re.sub(r"([\s(])(__user|__force|__iomem)\s", r"\1", text)
    text = re.sub(r"__attribute_const__(\s|$)", r"\1", text, flags=re.M)
    text = re.sub(r"^#include <linux/compiler(|_types)\.h>", "", text, flags=re.M)
    text = re.sub(r"(^|[^a-zA-Z0-9])__packed([^a-zA-Z0-9_]|$)", r"\1__attribute__((packed))\2",
                  text, flags=re.M)
    text = re.sub(r"(^|[\s(])(inline|asm|volatile)([\s(]|$)", r"\1__\2__\3", text, flags=re.M)
    return re.sub(r"#(ifndef|define|endif\s*/[*])\s*_UAPI", r"#\1 ", text)


def _shim(text: str) -> str:
    """iommufd_utils.h without the `.in_data_type = ...,` initializer."""
    return re.sub(r"^\s*\.in_data_type\s*=.*\n", "", text, flags=re.M)


def build(tree: Path) -> Path:
    """The two binaries, built once per source (cached; the guest sees the cache)."""
    for rel in SOURCES + UAPI:
        if not (tree / rel).exists():
            raise SelftestError(f"{tree}: no {rel} (not a 6.12 kernel tree?)")
    out = cache_dir() / "selftests" / _key(tree)
    if all((out / p).exists() for p in PROGRAMS):
        return out
    stage = Path(tempfile.mkdtemp(prefix="iommufd-selftests-"))
    try:
        for rel in SOURCES:
            dst = stage / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            text = (tree / rel).read_text()
            dst.write_text(_shim(text) if rel.endswith("iommufd_utils.h") else text)
        # the tree's uAPI headers, as `make headers` installs them, shadow the
        # host's (Debian 12 ships 6.1's)
        for rel in UAPI:
            dst = stage / "usr/include/linux" / Path(rel).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(uapi_header((tree / rel).read_text()))
        src = stage / "tools/testing/selftests/iommu"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
        for prog in PROGRAMS:
            argv = ["gcc", *CFLAGS, "-isystem", str(stage / "usr/include"),
                    *[f"-D{k}={v}" for k, v in SHIM_DEFINES.items()],
                    "-o", str(tmp_out / prog), str(src / f"{prog}.c"), "-lpthread"]
            p = subprocess.run(argv, capture_output=True, text=True, cwd=src)
            if p.returncode:
                shutil.rmtree(tmp_out, ignore_errors=True)
                raise SelftestError(f"building selftest {prog} failed:\n{p.stderr[-3000:]}")
        if out.exists():
            shutil.rmtree(out)
        tmp_out.rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


@dataclass
class SelftestRun:
    program: str
    rc: int
    seconds: float
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    total: int = 0
    failures: list[str] = field(default_factory=list)
    splats: list[str] = field(default_factory=list)
    crashed: str | None = None
    tainted: bool = False  # a splat after which the guest should be restarted
    restarted: bool = False  # the guest crashed and was restarted
    output: str = ""

    def summary(self) -> str:
        s = f"{self.program}: {self.passed}/{self.total} passed"
        if self.skipped:
            s += f", {self.skipped} skipped"
        s += f" ({self.seconds:.0f} s)"
        if self.crashed:
            s += f"; guest crashed: {self.crashed}"
        if self.splats:
            s += f"; splats: {'; '.join(self.splats[:3])}"
        return s

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "output"}


_TOTALS = re.compile(r"# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) "
                     r"error:(\d+)")


def parse_tap(prog: str, rc: int, seconds: float, out: str) -> SelftestRun:
    r = SelftestRun(prog, rc, seconds, output=out)
    m = _TOTALS.search(out)
    if m:
        ok, bad, xfail, xpass, skip, err = map(int, m.groups())
        r.passed, r.failed, r.skipped = ok + xfail, bad + xpass + err, skip
    else:  # a run cut short: count the result lines it printed
        r.passed = len(re.findall(r"^ok \d+ ", out, re.M))
        r.failed = len(re.findall(r"^not ok \d+ ", out, re.M))
    plan = re.search(r"^1\.\.(\d+)", out, re.M)
    r.total = int(plan.group(1)) if plan else r.passed + r.failed + r.skipped
    r.failures = re.findall(r"^not ok \d+ (\S+)", out, re.M)
    return r


def run(vm, binaries: Path, prog: str, timeout: float = 3600.0,  # type: ignore[no-untyped-def]
        env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> SelftestRun:
    """Run one selftest binary in the guest (it runs host binaries from the host's
    root over 9p). A crashed guest is restarted; after a tainting splat (r.tainted)
    the caller restarts it, once it has read what it needs from the guest."""
    from fuzz.backend import TAINTING
    from fuzz.report import parse
    from fuzz.vm import GuestCrash

    argv = [str(binaries / prog), *args]  # args: the harness's -f FIXTURE, -r ... filters
    if env:
        argv = ["/usr/bin/env", *[f"{k}={v}" for k, v in env.items()], *argv]
    t0 = time.monotonic()
    try:
        res = vm.run_command(argv, timeout=timeout)
    except GuestCrash as crash:
        r = SelftestRun(prog, -1, time.monotonic() - t0, crashed=crash.what,
                        splats=[x.title for x in crash.reports], restarted=True)
        vm.restart()
        return r
    r = parse_tap(prog, res["rc"], time.monotonic() - t0, res.get("stdout", ""))
    if res["rc"] == -1 and res.get("stderr"):
        r.crashed = res["stderr"].strip()[:300]  # the agent's timeout or exec error
    reports = parse(res.get("kmsg", ""))
    r.splats = [x.title for x in reports]
    r.tainted = any(x.kind in TAINTING for x in reports)
    return r
