"""The parts of bench/ that decide a figure: the long soak's judgement (what counts as
growth) and the oracle bench's corpus and mutants (run against the model alone)."""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import bench_oracle  # noqa: E402
import hunt_mutants  # noqa: E402
import soak  # noqa: E402


def row(t: float, **kw: object) -> dict:
    base = {"t_min": t, "procs": {"worker": {"rss_mb": 200.0, "uss_mb": 180.0}},
            "work_mb": 1.0, "logs_mb": 0.3, "cache_mb": 170.0, "findings_mb": 0.2,
            "finding_mb": {"planted": 0.1}, "corpus_mb": 1.0, "edges_mb": 0.1,
            "libfuzzer_units_mb": 1.0, "programs": 0, "edges": 0, "findings": 1}
    return {**base, **kw}


def test_logs_filling_up_to_their_caps_are_flat() -> None:
    cap = soak.log_caps_mb()
    out = soak.flatness([row(0), row(10), row(130, logs_mb=cap - 0.01, corpus_mb=9.0)])
    assert out["flat"], out["grew"]
    assert out["from_min"] == 10 and out["corpus_mb"] == [1.0, 9.0]


def test_logs_past_their_caps_are_growth() -> None:
    out = soak.flatness([row(10), row(130, logs_mb=soak.log_caps_mb() + 1)])
    assert not out["flat"] and out["grew"][0].startswith("logs_mb")


def test_other_work_files_growing_by_more_than_a_mib_are_growth() -> None:
    assert not soak.flatness([row(10), row(130, work_mb=2.5)])["flat"]
    assert not soak.flatness([row(10), row(130, cache_mb=200.0)])["flat"]


def test_a_finding_that_grows_with_each_sighting_is_growth_a_new_one_is_shown() -> None:
    grown = soak.flatness([row(10), row(130, finding_mb={"planted": 0.6})])
    assert not grown["flat"] and "planted" in grown["grew"][0]
    new = soak.flatness([row(10), row(130, finding_mb={"planted": 0.1, "other": 0.3})])
    assert new["flat"] and new["new_findings"] == ["other"]


def test_worker_memory_growth_past_ten_percent_and_16_mib_is_growth() -> None:
    ok = soak.flatness([row(10), row(130, procs={"worker": {"rss_mb": 230.0, "uss_mb": 190.0}})])
    assert ok["flat"]
    leak = soak.flatness([row(10), row(130, procs={"worker": {"rss_mb": 300.0,
                                                              "uss_mb": 190.0}})])
    assert not leak["flat"] and leak["grew"] == [
        "worker rss_mb 200.0 -> 300.0 net of libFuzzer's corpus"]


def test_worker_memory_that_grew_with_libfuzzers_corpus_is_flat_and_more_is_growth() -> None:
    def at(t: float, rss: float, corpus: float) -> dict:
        return row(t, procs={"worker": {"rss_mb": rss, "uss_mb": rss - 20}},
                   libfuzzer_corpus_mb=corpus)
    ok = soak.flatness([at(10, 200.0, 5.0), at(130, 250.0, 40.0)])
    assert ok["flat"], ok["grew"]
    assert ok["worker_rss_mb"] == [200.0, 250.0, 250.0]
    assert ok["worker_rss_mb_net_of_corpus"] == [195.0, 210.0]
    leak = soak.flatness([at(10, 200.0, 5.0), at(130, 280.0, 40.0)])
    assert leak["grew"] == ["worker rss_mb 195.0 -> 240.0 net of libFuzzer's corpus",
                            "worker uss_mb 175.0 -> 220.0 net of libFuzzer's corpus"]


def test_libfuzzers_corpus_size_is_read_from_its_last_status_line(tmp_path: Path) -> None:
    assert soak.libfuzzer_corpus_mb(tmp_path) is None
    (tmp_path / "worker.log.1").write_text("#9 NEW cov: 1 ft: 2 corp: 3/900Kb lim: 4\n")
    assert soak.libfuzzer_corpus_mb(tmp_path) == 0.88
    (tmp_path / "worker.log").write_text(
        "#10 NEW cov: 1 ft: 2 corp: 3/16000Kb lim: 4\nwrote corpus x\n"
        "#20 pulse cov: 1 ft: 2 corp: 4/17Mb lim: 4 exec/s: 1\n")
    assert soak.libfuzzer_corpus_mb(tmp_path) == 17.0


def test_bench_oracle_reads_the_corpus_and_every_mutant_compiles() -> None:
    named = bench_oracle.corpus_programs([bench_oracle.REPO / "corpus" / "seeds"])
    assert len(named) >= 40 and all(n.startswith("corpus/seeds/") for n, _ in named)
    cands = bench_oracle.all_sites()
    mutants = bench_oracle.sample(cands, 40, 0)
    assert len(mutants) >= 40 and {m.kind for m in mutants} >= {"errno", "compare"}
    for m in mutants:  # each applies to its file and still compiles
        tree = bench_oracle.ast.parse((bench_oracle.MODEL_DIR / m.file).read_text())
        compile(bench_oracle.apply(m, tree), m.file, "exec")


def test_bench_oracle_sample_moves_only_by_the_sites_that_changed() -> None:
    """A site gone from one file (an edit of the model) leaves every other file's sample
    as it was, and that file's but for the site itself and at most one mutant its
    smaller share drops."""
    cands = bench_oracle.all_sites()
    before = set(bench_oracle.sample(cands, 300, 0))
    gone = next(m for m in cands if m in before and m.file == "iopt.py")
    after = set(bench_oracle.sample([m for m in cands if m != gone], 300, 0))
    assert {m for m in after if m.file != "iopt.py"} == {m for m in before
                                                         if m.file != "iopt.py"}
    assert gone not in after and len(before - after - {gone}) <= 1
    assert len(after - before) <= 1  # the next by rank, where the share stayed
    assert bench_oracle.sample(cands, 300, 1) != bench_oracle.sample(cands, 300, 0)


def test_the_soak_plant_claims_enomem_only_where_the_model_predicts() -> None:
    """A soak finding (IOAS_MAP kernel EFAULT, model ENOMEM): after a race group the model
    could not follow (poisoned), every op is unsure with errno 0 as a placeholder; the
    plant made that an ENOMEM prediction. It must leave unsure ops as they are."""
    from fuzz.prog import Buffer, BufPtr, Op, Program, Ref

    big = {"ioas_id": Ref(0, "out_ioas_id"), "user_va": BufPtr(0), "length": 32 * 4096,
           "flags": 7}
    p = Program([Op("IOAS_ALLOC"), Op("IOAS_MAP", {**big, "iova": 1 << 24})],
                [Buffer(32 * 4096)])
    sure = soak.PlantedModel(p)
    sure.step(0)
    r = sure.step(1)
    assert r.errno == errno.ENOMEM and r.unsure is None
    unsure = soak.PlantedModel(p)
    unsure.step(0)
    unsure.poisoned = "after the race group at op 0: (the reason)"  # as differential sets it
    r = unsure.step(1)
    assert r.errno == 0 and r.unsure is not None


def test_bench_oracles_recorded_races_are_kernel_runs_that_need_their_rule() -> None:
    """bench/recorded: each run names the kernel it ran on and when, and the race rule
    about.json names is still needed to judge it (the oracle's verdict changes with the
    rule off); a run that no longer needs one tests nothing and is to be recorded again."""
    import json

    import record_races

    named, results = bench_oracle.recorded_programs(bench_oracle.REPO / "bench" / "recorded")
    assert len(named) >= 20
    for (name, prog), res in zip(named, results):
        d = bench_oracle.REPO / "bench" / "recorded" / name.removeprefix("recorded ")
        about = json.loads((d / "about.json").read_text())
        assert about["kernel"]["key"] and about["kernel"]["kernel_version"] and \
            about["recorded_at"], d
        rule = about["rules"][0].split(":")[0]
        full = record_races.verdict(prog, res)
        with record_races.rule_off(rule):
            assert record_races.verdict(prog, res) != full, f"{d}: {rule} no longer needed"


def test_bench_oracles_wrong_kernels_are_ones_the_oracle_rejects() -> None:
    """Next to a recorded race run (which agrees), one racing result changed; kept only
    where the unmutated oracle rejects it, so a mutant that accepts it is told apart."""
    from fuzz import differential

    named, results = bench_oracle.recorded_programs(bench_oracle.REPO / "bench" / "recorded")
    wrong = bench_oracle.wrong_kernels(differential, named[:6], results[:6], 2, 0)
    assert len(wrong) >= 6
    for (name, prog), res in zip(named[:6], results[:6]):
        right = set(bench_oracle.verdicts(differential, prog, res)[0])
        for w_name, w_prog, w_res in wrong:
            if w_name.startswith(name + ","):
                assert w_prog is prog and w_res != res
                assert set(bench_oracle.verdicts(differential, w_prog, w_res)[0]) - right


def _plant_unsure_from_op(op: int) -> Any:
    """bench_oracle.apply for a planted model that gives up on every op from `op` on (a
    mutant of the unsure bookkeeping that makes the model blind where it knew)."""
    import ast

    def plant(m: bench_oracle.Mutant, tree: ast.Module) -> ast.Module:
        step = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                    and n.name == "step" and n.args.args[1].arg == "index")
        step.body.insert(1, ast.parse(f"if index >= {op}: self.poisoned = 'planted'").body[0])
        return ast.fix_missing_locations(tree)

    return plant


def _check_in_child(m: bench_oracle.Mutant, state: tuple) -> tuple[str, str]:
    """bench_oracle.check in a forked worker as the bench runs it (the mutant's modules
    and the worker's limits stay out of this process)."""
    import multiprocessing as mp

    with mp.get_context("fork").Pool(1, bench_oracle._init, state) as pool:
        _, verdict, why = pool.apply(bench_oracle.check, (m,))
    return verdict, why


def test_a_mutant_that_makes_a_seeds_sure_op_unsure_is_killed_and_elsewhere_only_marked(
        vm: Any, monkeypatch: Any) -> None:
    """test_differential fails on the kernel when a seed's op is unsure and its builder
    does not declare it so: the oracle bench counts that mutant killed. The same program
    outside the seeds only marks it "unsure" (the oracle stops comparing: not a kill),
    unless it is among the generated programs test_differential runs and the mutant is
    unsure of more of their ops than that test allows."""
    from fuzz import differential

    named = bench_oracle.corpus_programs([bench_oracle.REPO / "corpus" / "seeds"])
    held, generated, limit = bench_oracle.declared_unsure(named)
    assert generated == [] and len(held) == len(named) and None not in held
    k = next(i for i, (_, p) in enumerate(named) if held[i] == frozenset() and len(p.ops) > 3)
    prog = named[k][1]
    res = differential.run(prog, vm).execution.results
    base = bench_oracle.verdicts(differential, prog, res)
    assert base[1] == [], f"{named[k][0]}: the model is unsure of {base[1]}"
    monkeypatch.setattr(bench_oracle, "apply", _plant_unsure_from_op(2))
    planted = bench_oracle.Mutant("model.py", "planted", 0, 0, "", "")
    verdict, why = _check_in_child(planted, ([prog], [res], [base], ([frozenset()], [], limit),
                                             60, 1))
    assert verdict == "killed-unsure" and "op 2 unsure" in why, (verdict, why)
    verdict, why = _check_in_child(planted, ([prog], [res], [base], ([None], [], limit), 60, 1))
    assert verdict == "unsure", (verdict, why)
    n = limit // (len(prog.ops) - 2) + 1  # enough generated programs to pass the limit
    verdict, why = _check_in_child(planted, ([prog] * n, [res] * n, [base] * n,
                                             ([None] * n, list(range(n)), limit), 60, n))
    assert verdict == "killed-unsure" and f"allows {limit}" in why, (verdict, why)


def test_bench_oracles_wrong_kernels_change_a_faulted_op_and_the_oracle_rejects_them(
        vm: Any) -> None:
    """A fault program run on the kernel, with one result of its faulted op changed: a
    mutant that widens what a fault may do accepts it, the unmutated oracle does not."""
    from fuzz import differential

    named = bench_oracle.corpus_programs([bench_oracle.REPO / "corpus" / "faults"])[:4]
    results = [differential.run(p, vm).execution.results for _, p in named]
    wrong = bench_oracle.wrong_kernels(differential, named, results, 2, 0)
    assert len(wrong) >= 4
    for w_name, w_prog, w_res in wrong:
        prog, res = next((p, r) for (n, p), r in zip(named, results)
                         if w_name.startswith(n + ","))
        assert w_prog is prog
        changed = [k for k, (a, b) in enumerate(zip(res, w_res)) if a != b]
        assert len(changed) == 1 and prog.ops[changed[0]].fail_nth, (w_name, changed)
        right = set(bench_oracle.verdicts(differential, prog, res)[0])
        assert set(bench_oracle.verdicts(differential, prog, w_res)[0]) - right, w_name


def test_every_mutant_reviewed_as_equivalent_names_a_site_of_the_model_as_it_is() -> None:
    """bench/equivalent.py names lines by their text: an entry whose line changed or went
    away covers nothing and is stale, and one with a reason must carry its hunt."""
    import equivalent

    assert equivalent.stale(bench_oracle.all_sites()) == []
    for e in equivalent.EQUIVALENT:
        assert e.reason and e.hunted > 0 and 0 <= e.ran_line <= e.hunted, e


def test_an_equivalent_entry_covers_its_mutant_by_the_lines_text() -> None:
    import equivalent

    m = next(m for m in bench_oracle.all_sites() if m.file == "iopt.py" and m.kind == "compare")
    e = equivalent.Equivalent(m.file, m.kind, m.was, m.now, hunted=1, ran_line=1,
                              at=(equivalent.occurrence(m.file, m.line),), nth=(1,),
                              text=equivalent.line_text(m.file, m.line), reason="a reason")
    assert equivalent.reviewed(m, (e,)) == e
    assert equivalent.reviewed(replace(m, now=m.was), (e,)) is None
    assert equivalent.stale([m], (e,)) == [] and \
        equivalent.stale([], (e,)) == [e]


def _hunt_programs() -> list:
    from fuzz.prog.gen import generate

    named = bench_oracle.corpus_programs([bench_oracle.REPO / "corpus" / "seeds"])
    return named + [(f"gen seed {k}", generate(k, 8)) for k in range(10)]


HUNT_OPTS = {"mutations": 20, "budget": 20.0, "shrink": 10.0}


@pytest.fixture
def own_model_modules() -> Iterator[None]:
    """hunt_mutants.Base imports fuzz.model and fuzz.differential afresh in this process:
    the session's modules are put back after, or a later test patches one module object
    (differential.Model) while the code under test runs the other."""
    import fuzz.differential  # noqa: F401  (what is saved must be there, run alone too)
    import fuzz.model  # noqa: F401

    saved = bench_oracle.model_modules()
    meta = list(sys.meta_path)
    pkg = sys.modules["fuzz"]
    attrs = {a: getattr(pkg, a) for a in ("model", "differential")}
    yield
    for n in bench_oracle.model_modules():
        del sys.modules[n]
    sys.modules.update(saved)
    sys.meta_path[:] = meta
    for a, v in attrs.items():
        setattr(pkg, a, v)


def test_the_hunt_distinguishes_a_planted_mutant_and_shrinks_its_program(
        own_model_modules: None) -> None:
    # vfio.py's VFIO_SET_IOMMU type check flipped (`not in` for `in`): every type is
    # refused as the right ones were; a seed setting type1 tells it apart
    planted = [m for m in bench_oracle.all_sites() if m.file == "vfio.py"
               and m.kind == "compare" and m.was == "NotIn"
               and "VFIO_TYPE1" in (bench_oracle.MODEL_DIR / "vfio.py").read_text()
               .splitlines()[m.line - 1]]
    assert planted, "the planted site moved: pick another VFIO_SET_IOMMU check"
    _, (r,) = hunt_mutants.hunt_all(planted[:1], _hunt_programs(), HUNT_OPTS)
    assert r["verdict"] == "distinguished", r
    assert r["diff"]["name"] == "VFIO_SET_IOMMU" and r["diff"]["field"] == "errno", r
    prog = bench_oracle.Program.loads(r["program"])
    assert len(prog.ops) <= r["ops_before_shrink"] and \
        any(op.name == "VFIO_SET_IOMMU" for op in prog.ops)


def test_the_hunt_finds_nothing_between_the_model_and_itself(own_model_modules: None) -> None:
    # a "mutant" that changes nothing (no site of its kind): compiled afresh from the same
    # source, stepped by the same oracle, over the same programs and their mutations
    same = bench_oracle.Mutant("iopt.py", "none", 0, -1, "", "")
    _, (r,) = hunt_mutants.hunt_all([same], _hunt_programs(), HUNT_OPTS)
    assert r["verdict"] == "not distinguished", r
    assert r["tried"] > len(_hunt_programs()) and r["ran_line"] == 0


def test_an_equivalent_entry_covers_only_the_mutations_of_its_line_it_names() -> None:
    """Two mutations of one kind and was -> now on one line (both 8 -> 9 in
    `offset % 8 == 0 and end - offset >= 8`) are two mutants: a reason for one is not
    one for the other, nor for another line of the file with the same text."""
    import equivalent

    sites = bench_oracle.all_sites()
    first, second = (m for m in sites if m.file == "iova_bitmap.py" and m.was == "8"
                     and equivalent.line_text(m.file, m.line).startswith("if offset % 8 == 0"))
    e = equivalent.Equivalent(first.file, first.kind, first.was, first.now, hunted=1,
                              ran_line=1, at=(1,), nth=(equivalent.nth_on_line(first, sites),),
                              text=equivalent.line_text(first.file, first.line), reason="r")
    assert equivalent.reviewed(first, (e,)) == e and equivalent.reviewed(second, (e,)) is None
    twice = [m for m in sites if m.file == "selftest.py" and m.kind == "drop-check"
             and equivalent.line_text(m.file, m.line) == "if acc.ioas is None:"]
    assert [equivalent.occurrence(m.file, m.line) for m in twice] == \
        list(range(1, len(twice) + 1)) and len(twice) > 1
    e = replace(e, file="selftest.py", kind="drop-check", was=twice[0].was, now=twice[0].now,
                text="if acc.ioas is None:", at=(2,), nth=(1,))
    assert [equivalent.reviewed(m, (e,)) for m in twice] == \
        [None, e] + [None] * (len(twice) - 2)
