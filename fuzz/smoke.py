"""The smoke sequence `vm check` runs: a short program through every layer
(encode, agent, executor, KCOV, decode) with what Linux 6.12 must answer.

The expectations are the uAPI's documented behaviour, independent of the model,
so `vm check` can vouch for the VM path on its own.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fuzz import uapi
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref, pattern_bytes
from fuzz.result import OpResult, errno_name

RW = uapi.IOMMU_IOAS_MAP_WRITEABLE | uapi.IOMMU_IOAS_MAP_READABLE
APERTURE = (uapi.MOCK_APERTURE_START, uapi.MOCK_APERTURE_LAST)


@dataclass
class Expect:
    errno: int = 0
    check: Callable[[OpResult], bool] | None = None
    what: str = ""


def _ioas(i: int) -> Ref:
    return Ref(i, "out_ioas_id")


def smoke_program() -> tuple[Program, list[Expect]]:
    bufs = [Buffer(1 << 20, "anon", seed=7), Buffer(1 << 16, "hole"), Buffer(1 << 16, "anon", 1)]
    steps: list[tuple[Op, Expect]] = [
        (Op("IOAS_ALLOC"), Expect(check=lambda r: r.out["out_ioas_id"] > 0, what="an id")),
        (Op("TEST_MOCK_DOMAIN", {"id": _ioas(0)}),
         Expect(check=lambda r: r.out["out_hwpt_id"] > 0, what="a hwpt id")),
        (Op("IOAS_MAP", {"ioas_id": _ioas(0), "user_va": BufPtr(0), "length": 1 << 16,
                         "flags": RW}),
         Expect(check=lambda r: APERTURE[0] <= r.out["iova"] <= APERTURE[1] - (1 << 16),
                what="an iova inside the mock aperture")),
        (Op("IOAS_IOVA_RANGES", {"ioas_id": _ioas(0)}),
         Expect(check=lambda r: r.out["num_iovas"] == 1 and r.out["ranges"] == [list(APERTURE)],
                what="the mock domain's aperture as the one allowed range")),
        (Op("TEST_MD_CHECK_MAP", {"id": Ref(1, "out_hwpt_id"), "iova": Ref(2, "iova"),
                                  "length": 1 << 16, "uptr": BufPtr(0)}),
         Expect(what="the mock domain maps the area to the buffer's pages")),
        (Op("TEST_CREATE_ACCESS", {"id": _ioas(0)}),
         Expect(check=lambda r: r.out["out_access_fd"] > 2, what="an fd")),
        (Op("TEST_ACCESS_RW", {"id": Ref(5, "out_access_fd"), "iova": Ref(2, "iova", 4096),
                               "length": 4096, "uptr": BufPtr(2)}),
         Expect(check=lambda r: r.out["data"] == pattern_bytes(7, 4096, 4096),
                what="reads the mapped buffer's bytes")),
        (Op("IOAS_UNMAP", {"ioas_id": _ioas(0), "iova": Ref(2, "iova"), "length": 1 << 16}),
         Expect(check=lambda r: r.out["length"] == 1 << 16, what="unmaps 64 KiB")),
        (Op("IOAS_MAP", {"ioas_id": _ioas(0), "user_va": BufPtr(1), "length": 1 << 16,
                         "flags": RW}), Expect(errno.EFAULT, what="pinning a hole")),
        (Op("DESTROY", {"id": 999}), Expect(errno.ENOENT)),
        (Op("IOAS_MAP", {"ioas_id": 999, "user_va": BufPtr(0), "length": 4096, "flags": RW}),
         Expect(errno.ENOENT)),
        (Op("IOAS_ALLOC", {"flags": 1}), Expect(errno.EOPNOTSUPP)),
        (Op("IOAS_ALLOC", {"size": 4}), Expect(errno.EINVAL, what="size below the minimum")),
        (Op("VFIO_GET_API_VERSION"), Expect(check=lambda r: r.ret == 0, what="VFIO_API_VERSION")),
        (Op("CLOSE", {"fd": Ref(5, "out_access_fd")}), Expect()),
    ]
    return Program([s[0] for s in steps], bufs), [s[1] for s in steps]


def check_results(results: list[OpResult], expects: list[Expect]) -> list[str]:
    """Human-readable failures; empty when every op answered as expected."""
    fails = []
    if len(results) != len(expects):
        return [f"{len(results)} results for {len(expects)} ops"]
    for i, (r, e) in enumerate(zip(results, expects)):
        ok: Any = r.errno == e.errno and (e.check is None or r.errno or e.check(r))
        if not ok:
            fails.append(f"op {i}: expected {errno_name(e.errno)} {e.what}, got {r.describe()}")
    return fails
