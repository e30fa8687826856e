"""The hypothesis engine: a RuleBasedStateMachine whose rules are the ops.

Bundles hold the objects the uAPI hands out (IOAS ids, mock hwpts, access fds,
mappings). Each rule appends one op to the program being built; on teardown the
whole program runs once on the kernel with the model stepped alongside, and
every op's result is compared (one kernel run per example: the executor gives
each program a fresh /dev/iommu, so a per-step run would replay the prefix).
A disagreement or splat fails the example; hypothesis then shrinks it to a
minimal op sequence, which is printed and saved as a program JSON.

It runs as a pytest test (tests/test_hypothesis_engine.py) and as a campaign
worker (`iommufd-fuzz fuzz --engine hypothesis`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from fuzz import differential
from fuzz.backend import Backend
from fuzz.gen import INTERESTING_U64, Generator
from fuzz.ops import OPS
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref

MOCK_APERTURE_START = 1 << 24
PAGE = 4096
RW = 6


@dataclass(frozen=True)
class Mapping:
    ioas: Ref
    iova: Ref | int
    length: int
    buf: int
    offset: int


class DataChooser:
    """Lets the generator's malformed-call logic draw from hypothesis."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def below(self, n: int) -> int:
        return self.data.draw(st.integers(0, n - 1)) if n > 1 else 0

    def bits(self, k: int) -> int:
        return self.data.draw(st.integers(0, (1 << k) - 1))


class Context:
    """Where the machine sends its programs; set before running it."""

    backend: Backend | None = None
    # How a program is run differentially: differential.run on `backend` unless set
    # (the campaign worker runs through its WorkerState, which also keeps stats,
    # corpus and findings: one kernel run and one model pass per example).
    run: Callable[[Program], differential.Outcome] | None = None
    on_failure: list = []  # callbacks(outcome) for the campaign's finding store
    last_failure: differential.Outcome | None = None


BUFFERS = [Buffer(1 << 18, "anon", 11), Buffer(1 << 16, "readonly", 12),
           Buffer(1 << 16, "hole"), Buffer(1 << 16, "memfd", 13), Buffer(2 << 20, "hugetlb", 14)]

iova_values = st.one_of(
    st.integers(0, 255).map(lambda k: MOCK_APERTURE_START + k * PAGE),
    st.integers(0, 255).map(lambda k: k * PAGE),
    st.sampled_from(INTERESTING_U64),
)


class IommufdMachine(RuleBasedStateMachine):
    ioas = Bundle("ioas")
    hwpt = Bundle("hwpt")
    access = Bundle("access")
    mapping = Bundle("mapping")

    def __init__(self) -> None:
        super().__init__()
        self.prog = Program([], list(BUFFERS))

    def add(self, name: str, **args: object) -> int:
        self.prog.ops.append(Op(name, {k: v for k, v in args.items() if v is not None}))
        return len(self.prog.ops) - 1

    # -- IOAS ----------------------------------------------------------------------
    @rule(target=ioas)
    def ioas_alloc(self) -> Ref:
        return Ref(self.add("IOAS_ALLOC"), "out_ioas_id")

    @rule(target=mapping, ioas=ioas, buf=st.sampled_from([0, 0, 0, 1, 2, 3, 4]),
          pages=st.integers(1, 64), fixed=st.booleans(), iova=iova_values,
          flags=st.sampled_from([RW, RW, 2, 4, 7, 0, 8]))
    def ioas_map(self, ioas: Ref, buf: int, pages: int, fixed: bool, iova: int,
                 flags: int) -> Mapping:
        length = min(pages * PAGE, BUFFERS[buf].size)
        i = self.add("IOAS_MAP", ioas_id=ioas, user_va=BufPtr(buf), length=length,
                     flags=flags | (1 if fixed else 0), iova=iova if fixed else None)
        return Mapping(ioas, Ref(i, "iova"), length, buf, 0)

    @rule(m=mapping, part=st.sampled_from(["all", "head", "tail", "beyond"]))
    def ioas_unmap(self, m: Mapping, part: str) -> None:
        iova: Ref | int = m.iova
        length = m.length
        if part == "head":
            length = max(PAGE, m.length // 2)
        elif part == "tail" and isinstance(m.iova, Ref):
            iova = Ref(m.iova.op, m.iova.field, PAGE)
            length = m.length - PAGE
        elif part == "beyond":
            length = m.length + PAGE
        self.add("IOAS_UNMAP", ioas_id=m.ioas, iova=iova, length=length)

    @rule(ioas=ioas)
    def ioas_unmap_all(self, ioas: Ref) -> None:
        self.add("IOAS_UNMAP", ioas_id=ioas, iova=0, length=(1 << 64) - 1)

    @rule(target=mapping, m=mapping, dst=ioas, fixed=st.booleans(), iova=iova_values,
          flags=st.sampled_from([RW, 2, 4, 7]))
    def ioas_copy(self, m: Mapping, dst: Ref, fixed: bool, iova: int, flags: int) -> Mapping:
        i = self.add("IOAS_COPY", dst_ioas_id=dst, src_ioas_id=m.ioas, src_iova=m.iova,
                     length=m.length, flags=flags | (1 if fixed else 0),
                     dst_iova=iova if fixed else None)
        return Mapping(dst, Ref(i, "dst_iova"), m.length, m.buf, m.offset)

    @rule(ioas=ioas, starts=st.lists(iova_values, max_size=3))
    def ioas_allow_iovas(self, ioas: Ref, starts: list[int]) -> None:
        ranges = [[s, min(s + (1 << 24) - 1, (1 << 64) - 1)] for s in starts]
        self.add("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=ranges)

    @rule(ioas=ioas, capacity=st.sampled_from([0, 1, 8]))
    def ioas_iova_ranges(self, ioas: Ref, capacity: int) -> None:
        self.add("IOAS_IOVA_RANGES", ioas_id=ioas, num_iovas=capacity)

    @rule(ioas=ioas, option=st.sampled_from([0, 1]), op=st.sampled_from([0, 1]),
          val=st.sampled_from([0, 1, 2]), on_ioas=st.booleans())
    def option(self, ioas: Ref, option: int, op: int, val: int, on_ioas: bool) -> None:
        self.add("OPTION", option_id=option, op=op, val64=val,
                 object_id=ioas if on_ioas else 0)

    @rule(ioas=ioas, start=iova_values, pages=st.integers(1, 16))
    def add_reserved(self, ioas: Ref, start: int, pages: int) -> None:
        self.add("TEST_ADD_RESERVED", id=ioas, start=start, length=pages * PAGE)

    # -- mock domains ----------------------------------------------------------------
    @rule(target=hwpt, ioas=ioas, flags=st.sampled_from([None, 0, 1, 2]))
    def mock_domain(self, ioas: Ref, flags: int | None) -> Ref:
        if flags is None:
            return Ref(self.add("TEST_MOCK_DOMAIN", id=ioas), "out_hwpt_id")
        return Ref(self.add("TEST_MOCK_DOMAIN_FLAGS", id=ioas, dev_flags=flags), "out_hwpt_id")

    @rule(hw=hwpt, ioas=ioas)
    def mock_domain_replace(self, hw: Ref, ioas: Ref) -> None:
        self.add("TEST_MOCK_DOMAIN_REPLACE", id=Ref(hw.op, "out_stdev_id"), pt_id=ioas)

    @rule(hw=hwpt, m=mapping)
    def md_check_map(self, hw: Ref, m: Mapping) -> None:
        self.add("TEST_MD_CHECK_MAP", id=hw, iova=m.iova, length=m.length,
                 uptr=BufPtr(m.buf, m.offset))

    @rule(m=mapping, refs=st.sampled_from([0, 1, 2]))
    def md_check_refs(self, m: Mapping, refs: int) -> None:
        self.add("TEST_MD_CHECK_REFS", length=m.length, uptr=BufPtr(m.buf, m.offset), refs=refs)

    # -- accesses ---------------------------------------------------------------------
    @rule(target=access, ioas=ioas, needs_pin=st.booleans())
    def create_access(self, ioas: Ref, needs_pin: bool) -> Ref:
        return Ref(self.add("TEST_CREATE_ACCESS", id=ioas, flags=int(needs_pin)),
                   "out_access_fd")

    @rule(acc=access, m=mapping, write=st.booleans())
    def access_pages(self, acc: Ref, m: Mapping, write: bool) -> None:
        i = self.add("TEST_ACCESS_PAGES", id=acc, iova=m.iova, length=min(m.length, 4 * PAGE),
                     uptr=BufPtr(m.buf, m.offset), flags=int(write))
        if i % 3 == 0:
            self.add("TEST_DESTROY_ACCESS_PAGES", id=acc,
                     access_pages_id=Ref(i, "out_access_pages_id"))

    @rule(acc=access, m=mapping, length=st.sampled_from([1, 64, PAGE, 3 * PAGE]),
          flags=st.sampled_from([0, 1, 4, 5]))
    def access_rw(self, acc: Ref, m: Mapping, length: int, flags: int) -> None:
        self.add("TEST_ACCESS_RW", id=acc, iova=m.iova, length=min(length, m.length),
                 uptr=BufPtr(0, 1 << 17), flags=flags)

    @rule(acc=access, ioas=ioas)
    def access_replace_ioas(self, acc: Ref, ioas: Ref) -> None:
        self.add("TEST_ACCESS_REPLACE_IOAS", id=acc, ioas_id=ioas)

    @rule(acc=access)
    def close_access(self, acc: Ref) -> None:
        self.add("CLOSE", fd=acc)

    @rule(obj=st.one_of(ioas, hwpt))
    def destroy(self, obj: Ref) -> None:
        self.add("DESTROY", id=obj)

    # -- vfio compat ------------------------------------------------------------------
    @rule(ioas=ioas, op=st.sampled_from([0, 1, 2]))
    def vfio_ioas(self, ioas: Ref, op: int) -> None:
        self.add("VFIO_IOAS", ioas_id=ioas, op=op)

    @rule(type_=st.sampled_from([1, 3, 8]))
    def vfio_set_iommu(self, type_: int) -> None:
        self.add("VFIO_SET_IOMMU", type=type_)

    @rule(iova=iova_values, pages=st.integers(1, 16), flags=st.sampled_from([3, 1, 2, 0, 4]))
    def vfio_map_dma(self, iova: int, pages: int, flags: int) -> None:
        self.add("VFIO_IOMMU_MAP_DMA", vaddr=BufPtr(0), iova=iova, size=pages * PAGE,
                 flags=flags)

    @rule(iova=iova_values, pages=st.integers(0, 16), flags=st.sampled_from([0, 2, 1, 4]))
    def vfio_unmap_dma(self, iova: int, pages: int, flags: int) -> None:
        self.add("VFIO_IOMMU_UNMAP_DMA", iova=iova if flags != 2 else 0,
                 size=pages * PAGE if flags != 2 else 0, flags=flags)

    @rule()
    def vfio_get_info(self) -> None:
        self.add("VFIO_IOMMU_GET_INFO")

    # -- anything else, malformed included --------------------------------------------------
    @rule(name=st.sampled_from(sorted(OPS)), data=st.data())
    def any_call(self, name: str, data: st.DataObject) -> None:
        gen = Generator(DataChooser(data))
        objs: dict[str, list[Ref]] = {}
        for j, op in enumerate(self.prog.ops):
            for out, kind in OPS[op.name].ref_outputs.items():
                objs.setdefault(kind, []).append(Ref(j, out))
        gen.append(self.prog, objs, name)

    # -- probes -------------------------------------------------------------------------------
    @invariant()
    def probe_iova_ranges_now_and_then(self) -> None:
        # Every 8th op, read back the first IOAS's allowed ranges: cheap state checks that
        # the comparison then holds against the model.
        n = len(self.prog.ops)
        if n and n % 8 == 0 and self.prog.ops[0].name == "IOAS_ALLOC":
            self.add("IOAS_IOVA_RANGES", ioas_id=Ref(0, "out_ioas_id"))

    def teardown(self) -> None:
        if not self.prog.ops or (Context.run is None and Context.backend is None):
            return
        out = (Context.run(self.prog) if Context.run
               else differential.run(self.prog, Context.backend))  # type: ignore[arg-type]
        if out.failed:
            Context.last_failure = out
            for cb in Context.on_failure:
                cb(out)
            from fuzz.cli import format_table

            raise AssertionError("kernel and model disagree (or the kernel splatted):\n"
                                 + format_table(out) + "\n\nprogram:\n" + self.prog.dumps())


def machine_settings(max_examples: int, seed_db: Path | None = None) -> settings:
    from hypothesis.database import DirectoryBasedExampleDatabase

    return settings(max_examples=max_examples, deadline=None, stateful_step_count=30,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                    database=DirectoryBasedExampleDatabase(str(seed_db)) if seed_db else None,
                    print_blob=True)


def main(argv: list[str] | None = None) -> None:
    """Campaign worker: run the machine in batches until the time is up."""
    from hypothesis.stateful import run_state_machine_as_test

    from fuzz.backend import VMBackend
    from fuzz.engines.common import WorkerState
    from fuzz.findings import FindingStore
    from fuzz.vm import VMConfig

    ap = argparse.ArgumentParser()
    for name in ("--kernel", "--corpus", "--findings", "--stats", "--workdir"):
        ap.add_argument(name, type=Path, required=True)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--worker", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    backend = VMBackend(a.kernel, VMConfig(kernel=a.kernel), workdir=a.workdir / "vm")
    state = WorkerState(backend, a.corpus, FindingStore(a.findings), a.stats, a.kernel, a.worker)
    Context.run = lambda prog: state.run(prog)[0]
    end = time.monotonic() + a.seconds
    try:
        while time.monotonic() < end:
            try:
                run_state_machine_as_test(IommufdMachine,
                                          settings=machine_settings(50, a.workdir / "hypo-db"))
            except AssertionError as e:
                out = Context.last_failure
                if out is not None:
                    # hypothesis replays the shrunk example last: this is the minimal program
                    from fuzz.findings import from_outcome

                    for f in from_outcome(out):
                        if (state.store.root / f.slug).is_dir():
                            out.prog.save(state.store.root / f.slug / "shrunk.json")
                    out.prog.save(a.workdir / f"shrunk-{int(time.time())}.json")
                print(str(e)[:4000], flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        state.write_stats(final=True)
        backend.close()


if __name__ == "__main__":
    main()
