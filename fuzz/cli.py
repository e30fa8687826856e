"""The `iommufd-fuzz` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from fuzz import kernel
from fuzz.inputs import InputError, at_least, duration, existing_dir, writable_dir


def _kernel_arg(arg: str | None) -> Path | None:
    """--kernel DIR, checked (before anything else is done), or None for the default."""
    if not arg:
        return None
    p = Path(arg)
    if not (p / "bzImage").is_file():
        raise InputError(f"--kernel {p}: no bzImage there (build one with "
                         "`iommufd-fuzz kernel build`)")
    return p


def _kernel_dir(arg: str | None) -> Path:
    """--kernel DIR, or the default kernel (which is built if it is not cached)."""
    return _kernel_arg(arg) or kernel.default_kernel()


def _recorded_kernel(arg: str | None, manifest: dict, what: str) -> Path:
    """The kernel a finding or reproducer was recorded on (its manifest's key, in the
    cache), else --kernel or the default one, said loudly when it is another."""
    key = manifest.get("key")
    recorded = kernel.recorded_kernel(manifest)
    given = _kernel_arg(arg)
    desc = f"{manifest.get('source', '?')}, key {key}"
    if given is not None:
        if key and (kernel.manifest_or_empty(given).get("key") != key):
            _warn(f"{what} was recorded on another kernel ({desc}); --kernel {given} "
                  "is used as asked, and it may not reproduce there")
        return given
    if recorded is not None:
        print(f"kernel: {recorded} (the one {what} was recorded on)", file=sys.stderr)
        return recorded
    kdir = kernel.default_kernel()
    if not key:
        _warn(f"{what} does not say which kernel it was recorded on (no manifest): "
              f"using the default kernel {kdir}")
    elif kdir.name != key:
        _warn(f"{what} was recorded on a kernel that is not in this machine's cache ({desc}); "
              f"using the DEFAULT kernel {kdir} instead, where it may not reproduce. "
              f"Build the recorded one with: {kernel.build_hint(manifest)}")
    return kdir


def _warn(msg: str) -> None:
    print(f"iommufd-fuzz: WARNING: {msg}", file=sys.stderr)


def cmd_kernel_build(a: argparse.Namespace) -> int:
    import re

    at_least(a.jobs, 1, "--jobs")
    if not re.fullmatch(r"[0-9][A-Za-z0-9.+~-]*", a.debian_version):
        raise InputError(f"--debian-version {a.debian_version!r}: not a Debian version "
                         f"(like {kernel.DEFAULT_DEBIAN_VERSION})")
    for what, paths in (("--patch", a.patch), ("--fragment", a.fragment)):
        for f in paths:
            if not Path(f).is_file():
                raise InputError(f"{what} {f}: no such file")
    if a.source and not Path(a.source).exists():
        raise InputError(f"--source {a.source}: no such file or directory")
    req = kernel.BuildRequest(debian_version=a.debian_version,
                              source=Path(a.source) if a.source else None,
                              patches=[Path(p) for p in a.patch],
                              fragments=[Path(f) for f in a.fragment], jobs=a.jobs,
                              coverage=a.coverage)
    out = kernel.build(req)
    print(out)
    return 0


def cmd_vm_check(a: argparse.Namespace) -> int:
    from fuzz.backend import VMBackend
    from fuzz.smoke import check_results, smoke_program
    from fuzz.vm import VMConfig

    kdir = _kernel_dir(a.kernel)
    cfg = VMConfig(kernel=kdir, accel=a.accel)
    t0 = time.monotonic()
    be = VMBackend(kdir, cfg)
    try:
        prog, expects = smoke_program()
        ex = be.run(prog)
        fails = check_results(ex.results, expects) if not (ex.crash or ex.setup_error) else \
            [ex.crash or ex.setup_error or ""]
        pcs = sum(len(ex.call_pcs(i)) for i in range(len(ex.results))) if ex.raw else 0
        summary = {
            "kernel": str(kdir), "kernel_version": be.vm.hello.get("uname"),
            "boot_seconds": round(be.vm.boot_seconds, 2), "accel": be.vm.accel,
            "restored_snapshot": be.vm.restored,
            "kcov": be.vm.hello.get("kcov"), "ops_run": len(ex.results),
            "kcov_pcs": pcs, "splats": [r.title for r in ex.reports],
            "failures": fails, "seconds": round(time.monotonic() - t0, 2),
        }
    finally:
        be.close()
    print(json.dumps(summary, indent=1))
    return 0 if not fails and not summary["splats"] and summary["kcov"] else 1


def _backend(name: str, kernel_arg: str | None, accel: str = "auto"):  # type: ignore[no-untyped-def]
    """The kernel side of a run. The host's own kernel only when named explicitly."""
    if name == "local":
        from fuzz.backend import LocalBackend

        print("iommufd-fuzz: --backend local: running ioctls on THIS machine's kernel",
              file=sys.stderr)
        return LocalBackend()
    from fuzz.backend import VMBackend
    from fuzz.vm import VMConfig

    kdir = _kernel_dir(kernel_arg)
    return VMBackend(kdir, VMConfig(kernel=kdir, accel=accel))


def cmd_run(a: argparse.Namespace) -> int:
    from fuzz import differential
    from fuzz.model import run_model
    from fuzz.prog import Program, ProgramError
    from fuzz.table import format_table, model_cell

    try:
        progs = [(p, Program.load(p)) for p in a.program]
    except ProgramError as e:
        print(f"iommufd-fuzz: {e}", file=sys.stderr)
        return 2
    _kernel_arg(a.kernel)
    if a.backend == "model":
        for path, prog in progs:
            print(f"== {path} (model only)")
            for i, (op, r) in enumerate(zip(prog.ops, run_model(prog))):
                print(f"{i:>3}  {op.name:<26} {model_cell(r)}")
                if r.unsure:
                    print(f"       ^ model unsure: {r.unsure}")
        return 0
    be = _backend(a.backend, a.kernel)
    status = 0
    try:
        for path, prog in progs:
            out = differential.run(prog, be)
            print(f"== {path}")
            print(format_table(out))
            verdict = "FAIL" if out.failed_new else "KNOWN BUG" if out.failed else "agree"
            print(f"{verdict}: {len(out.mismatches)} mismatches, {len(out.unsure)} unsure, "
                  f"{len(out.execution.reports)} splats")
            status |= 1 if out.failed else 0
    finally:
        be.close()
    return status


def cmd_gen(a: argparse.Namespace) -> int:
    from fuzz.prog.gen import generate

    at_least(a.count, 1, "--count")
    at_least(a.max_ops, 1, "--max-ops")
    if a.stats:
        return _gen_stats(a)
    if not a.out:
        raise InputError("gen: --out DIR is needed (or --stats)")
    out = writable_dir(a.out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    for k in range(a.count):
        generate(a.seed + k, a.max_ops).save(out / f"gen-{a.seed + k:08d}.json")
    print(f"wrote {a.count} programs to {out}")
    return 0


def _gen_stats(a: argparse.Namespace) -> int:
    from fuzz import genstats

    _kernel_arg(a.kernel)
    if a.backend == "model":
        from fuzz.model import run_model

        st = genstats.collect(a.count, a.seed, a.max_ops, run_model)
        print(genstats.table(st, "the model alone"))
        return 0
    be = _backend(a.backend, a.kernel)
    try:
        st = genstats.collect(a.count, a.seed, a.max_ops,
                              lambda prog: be.run(prog, kcov=False).results)
    finally:
        be.close()
    print(genstats.table(st, "the kernel" if a.backend == "vm" else "this machine's kernel"))
    return 0


def cmd_check_model(a: argparse.Namespace) -> int:
    from fuzz.batch import run_batch

    at_least(a.count, 1, "--count")
    at_least(a.vms, 1, "--vms")
    at_least(a.max_ops, 1, "--max-ops")
    writable_dir(a.findings, "--findings")
    kdir = _kernel_dir(a.kernel)
    res = run_batch(kdir, Path(a.findings), a.seed, a.count, a.vms, a.max_ops)
    print(f"{res.programs} programs ({res.ops} ops) in {res.seconds:.0f} s on {a.vms} VM(s): "
          f"{res.programs / max(res.seconds, 1e-9):.1f} programs/s, "
          f"{res.ops / max(res.seconds, 1e-9):.0f} ops/s")
    print(f"agreed: {res.agreed}/{res.programs} programs; model unsure on {res.unsure_ops} ops; "
          f"guest crashes: {res.crashes}")
    for sig, n in res.signatures.most_common():
        print(f"  {n:>6}  {sig}  (first: gen seed {res.examples[sig]})")
    print(f"\n{'op mix':28} {'calls':>7} {'share':>6} {'kernel ok':>9} {'unsure':>7}")
    for name, n in sorted(res.op_calls.items()):
        print(f"{name:28} {n:7} {n / max(res.ops, 1):6.3f} {res.op_ok[name] / n:9.2f} "
              f"{res.op_unsure[name] / n:7.3f}")
    return 0 if res.agreed == res.programs else 1


def cmd_fuzz(a: argparse.Namespace) -> int:
    from fuzz.campaign import CampaignConfig, prepare, run_campaign

    # everything checked before a kernel is built or a VM booted
    run_ray = ray_runner(a) if a.ray else None
    seconds = duration(a.time, "--time")
    at_least(a.vms, 1, "--vms")
    at_least(a.timeout, 1, "--timeout")
    dirs = {k: writable_dir(getattr(a, k), f"--{k}") for k in ("corpus", "findings", "workdir")}
    if a.no_seeds:
        seeds = ()
    elif a.seeds:
        seeds = tuple(existing_dir(p, "--seeds") for p in a.seeds)
    else:
        # the fault walk's kept programs inject faults: not for a campaign without them
        default = ("corpus/seeds",) if a.no_faults_threads else ("corpus/seeds", "corpus/faults")
        seeds = tuple(Path(p) for p in default if Path(p).is_dir())
    _kernel_arg(a.kernel)
    prepare(dirs["corpus"], dirs["findings"], dirs["workdir"], seeds)
    kdir = _kernel_dir(a.kernel)
    cfg = CampaignConfig(kernel=kdir, corpus=dirs["corpus"], findings=dirs["findings"],
                         workdir=dirs["workdir"], engine=a.engine, seconds=seconds, vms=a.vms,
                         feedback=not a.no_feedback, seeds=seeds, program_timeout=a.timeout,
                         cpus=a.cpus, kmemleak=a.kmemleak,
                         fault_walk_every=0 if a.no_faults_threads else a.fault_walk_every,
                         schedule=not a.no_faults_threads)
    s = run_ray(cfg) if run_ray else run_campaign(cfg, prepared=True)
    print(f"stats log: {cfg.workdir / 'stats.jsonl'}  (plot: iommufd-fuzz plot "
          f"{cfg.workdir / 'stats.jsonl'})")
    print(f"findings: {s['findings']} under {cfg.findings} (list: iommufd-fuzz findings)")
    return 0


def ray_runner(a: argparse.Namespace) -> Any:
    """For --ray: the function that runs a campaign on the cluster (the `ray` extra),
    checked before anything is built or booted."""
    if a.vms_per_node is not None and a.vms_per_node < 1:
        raise SystemExit(f"iommufd-fuzz fuzz: --vms-per-node {a.vms_per_node}: give at least 1")
    if a.ray == "local":  # one machine: Ray on the loopback only (read when ray is imported)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        from fuzz.cluster.ray_campaign import RayOptions, WorkerError, run_ray_campaign
    except ImportError as e:
        raise SystemExit(f"iommufd-fuzz fuzz --ray: Ray is not installed ({e}); install the "
                         "extra: .venv/bin/pip install -e '.[ray]'") from None
    opts = RayOptions(address=a.ray, vms_per_node=a.vms_per_node)

    def run(cfg: Any) -> dict:
        try:
            return run_ray_campaign(cfg, opts)
        except WorkerError as e:
            raise SystemExit(f"iommufd-fuzz fuzz: {e}") from None
    return run


def cmd_recheck(a: argparse.Namespace) -> int:
    """The model of this checkout against the kernel's results a finding recorded: does
    a model fix explain a finding that does not reproduce (a race, a fault)?"""
    from fuzz import differential
    from fuzz.backend import Execution
    from fuzz.findings import RESULTS_FILE, load_finding, recheck_verdict
    from fuzz.table import format_table

    stored = [load_finding(Path(d)) for d in a.finding]  # every one checked first
    status = 0
    for sf in stored:
        print(f"== {sf.dir} ({sf.finding.title})")
        if not sf.results:
            print(f"iommufd-fuzz: {sf.dir}: no {RESULTS_FILE} (recorded before findings kept "
                  "the kernel's results, or no op ran): use `minimize` or `run`")
            status |= 2
            continue
        out = differential.Outcome(sf.prog, Execution(results=sf.results))
        out.model, out.mismatches, out.unsure = differential.model_alongside(
            sf.prog, sf.results, orders=out.orders)
        print(format_table(out))
        print(f"{recheck_verdict(sf.finding, out)}: {len(out.mismatches)} mismatches, "
              f"{len(out.unsure)} unsure "
              f"(the kernel's results as recorded; splats are not re-judged)")
        status |= 1 if out.failed_new else 0
    return status


def cmd_findings(a: argparse.Namespace) -> int:
    from fuzz.findings import FindingStore

    root = Path(a.findings or "findings")
    if not root.exists():
        if a.findings:
            raise InputError(f"--findings {root}: no such directory")
        print(f"no findings yet ({root}/ does not exist)")
        return 0
    existing_dir(root, "--findings")
    rows = FindingStore(root).list()
    if not rows:
        print(f"no findings under {a.findings}")
        return 0
    print(f"{'count':>5}  {'first seen':<20}  {'kind':<8}  title")
    for f, d in sorted(rows, key=lambda t: t[0].first_seen):
        more = (f" [+{len(f.also)} more in its run]" if f.also else "") + \
            (" [deferred: logged after its program]" if f.deferred else "")
        print(f"{f.count:>5}  {f.first_seen:<20}  {f.kind:<8}  {f.title}{more}  ({d.name})"
              + (f"  report: {f.known}" if f.known else ""))
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    from fuzz.plot import plot

    writable_dir(Path(a.out).parent, "--out's directory")
    out = plot(Path(a.stats), Path(a.out))
    print(out)
    return 0


def cmd_corpus_minimize(a: argparse.Namespace) -> int:
    from fuzz import corpus, coverage, differential

    d = existing_dir(a.corpus, "corpus")
    entries = corpus.load(d, quarantine_bad=not a.dry_run)
    if not entries:
        raise InputError(f"{d}: no programs to minimize")
    be = _backend("vm", a.kernel)
    measured = []
    try:
        for path, prog in entries:
            out = differential.run(prog, be)
            measured.append((path, prog, coverage.edges(out.execution)))
    finally:
        be.close()
    keep = set(corpus.minimize(measured))
    drop = [p for p, _, _ in measured if p not in keep]
    edges = set().union(*(e for _, _, e in measured)) if measured else set()
    if a.dry_run:
        print(f"would keep {len(keep)} of {len(measured)} ({len(edges)} edges)")
        return 0
    attic = d / corpus.QUARANTINE / "minimized-out"
    attic.mkdir(parents=True, exist_ok=True)
    for p in drop:
        p.rename(attic / p.name)  # set aside, never deleted
    print(f"kept {len(keep)} of {len(measured)} programs with the same {len(edges)} edges; "
          f"{len(drop)} moved to {attic}")
    return 0


def cmd_minimize(a: argparse.Namespace) -> int:
    from fuzz.backend import VMBackend
    from fuzz.findings import load_finding
    from fuzz.minimize import minimize
    from fuzz.prog.ir import remove_stale_temps
    from fuzz.repro import write_reproducer
    from fuzz.repro.verify import verify
    from fuzz.vm import VMConfig

    at_least(a.rate_runs, 1, "--rate-runs")
    at_least(a.max_runs, 1, "--max-runs")
    if a.time_limit is not None and not a.time_limit > 0:
        raise InputError(f"--time-limit {a.time_limit}: give a positive number of seconds")
    d = Path(a.finding)
    stored = load_finding(d)  # every file of it checked before the VM boots
    if stored.finding.field == "model_error":
        raise InputError(f"{d}: a bug of the model, not of the kernel (it raised stepping op "
                         f"{stored.finding.op}): no kernel reproducer to write; "
                         f"`iommufd-fuzz recheck {d}` replays it without a VM")
    root = writable_dir(a.out, "--out")
    kdir = _recorded_kernel(a.kernel, stored.manifest, f"the finding {d.name}")
    manifest = stored.manifest or kernel.manifest_or_empty(kdir)
    remove_stale_temps(root)  # what a killed minimize left
    be = VMBackend(kdir, VMConfig(kernel=kdir))
    try:
        res = minimize(d, be, rate_runs=a.rate_runs, max_runs=a.max_runs,
                       time_limit=a.time_limit, log=lambda s: print(s, flush=True))
        exp = res.expectation()
        out = root / d.resolve().name
        kw: dict[str, Any] = {"expected": res.outcome.model, "splat_text": res.splat_text(),
                              "stats": res.stats(), "history": res.history}
        write_reproducer(out, res.prog, exp, manifest, **kw)
        checks = verify(out, be)
    finally:
        be.close()
    verified = [f"{'REPRODUCED' if ok else 'NOT reproduced'}  {n}: {how}"
                for n, (ok, how) in checks.items()]
    verified.append(f"kernel: {kdir}; whole check: iommufd-fuzz repro {out} --kernel {kdir}")
    write_reproducer(out, res.prog, exp, manifest, verified=verified, **kw)
    s = res.stats()
    print(f"{exp.title}\n  signature {exp.signature}\n  ops {s['original_ops']} -> "
          f"{s['minimized_ops']}, buffers {s['original_buffers']} -> {s['minimized_buffers']}, "
          f"{s['runs']} runs in {s['seconds']:.0f} s, original reproduced {s['hits']}/"
          f"{s['rate_runs']}")
    if res.history:
        print(f"  needs history: {len(res.history)} of the {s['history_searched']} program(s) "
              "the VM ran before it, replayed first")
    for line in verified:
        print("  " + line)
    print(f"reproducer: {out}")
    return 0 if all(ok for ok, _ in checks.values()) else 1


def cmd_repro(a: argparse.Namespace) -> int:
    from fuzz.backend import VMBackend
    from fuzz.repro.verify import load_repro, verify
    from fuzz.vm import VMConfig

    d = Path(a.dir)
    rd = load_repro(d)  # every file checked before the VM boots
    kdir = _recorded_kernel(a.kernel, rd.manifest, f"the reproducer {d.name}")
    be = VMBackend(kdir, VMConfig(kernel=kdir))
    try:
        checks = verify(d, be)
    finally:
        be.close()
    exp = rd.exp
    print(f"{exp.title} ({exp.signature}) on {kdir}")
    for n, (ok, how) in checks.items():
        print(f"  {'REPRODUCED    ' if ok else 'NOT REPRODUCED'}  {n}: {how}")
    return 0 if all(ok for ok, _ in checks.values()) else 1


def add_repro_commands(sub: Any) -> None:
    """The `minimize` and `repro` subcommands."""
    from fuzz.minimize import RATE_RUNS
    mn = sub.add_parser("minimize", help="shrink a finding and write a standalone reproducer")
    mn.add_argument("finding", help="a finding directory (findings/<slug>)")
    mn.add_argument("--kernel", help="kernel dir (default: the one the finding was recorded on)")
    mn.add_argument("--out", default="reproducers", help="reproducers root (default: %(default)s)")
    mn.add_argument("--rate-runs", type=int, default=RATE_RUNS,
                    help="runs of the original to measure flakiness (default: %(default)s)")
    mn.add_argument("--max-runs", type=int, default=2000)
    mn.add_argument("--time-limit", type=float, default=None, help="seconds")
    mn.set_defaults(fn=cmd_minimize)
    rp = sub.add_parser("repro", help="check that a reproducer directory still reproduces")
    rp.add_argument("dir")
    rp.add_argument("--kernel", help="kernel dir (default: the one it was recorded on)")
    rp.set_defaults(fn=cmd_repro)


def cmd_coverage(a: argparse.Namespace) -> int:
    from fuzz.coverage.command import run

    for p in a.corpus:
        if not Path(p).exists():
            raise InputError(f"{p}: no such file or directory")
    at_least(a.timeout, 1, "--timeout")
    at_least(a.top, 0, "--top")
    writable_dir(a.out, "--out")
    _kernel_arg(a.kernel)
    return run(a, _kernel_dir(a.kernel))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="iommufd-fuzz", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    k = sub.add_parser("kernel", help="the test kernel").add_subparsers(dest="kcmd", required=True)
    kb = k.add_parser("build", help="build (or find cached) the test kernel; prints its dir")
    kb.add_argument("--debian-version", default=kernel.DEFAULT_DEBIAN_VERSION)
    kb.add_argument("--source", help="a kernel tree or tarball to build instead")
    kb.add_argument("--patch", action="append", default=[], help="apply this patch (repeatable)")
    kb.add_argument("--fragment", action="append", default=[], help="extra config fragment")
    kb.add_argument("--jobs", type=int, default=kernel.BuildRequest().jobs)
    kb.add_argument("--coverage", choices=sorted(kernel.COVERAGE_VARIANTS),
                    help="gcov: a variant with GCOV counters in drivers/iommu/iommufd/")
    kb.set_defaults(fn=cmd_kernel_build)

    v = sub.add_parser("vm", help="the VM").add_subparsers(dest="vcmd", required=True)
    vc = v.add_parser("check", help="boot the kernel, run the smoke sequence, print JSON")
    vc.add_argument("--kernel", help="kernel dir (default: build/find the default kernel)")
    vc.add_argument("--accel", default="auto", choices=["auto", "tcg", "kvm"],
                    help="auto: KVM where it runs guest code at hardware speed, else TCG")
    vc.set_defaults(fn=cmd_vm_check)

    r = sub.add_parser("run", help="run programs on the model and a kernel, side by side")
    r.add_argument("program", nargs="+")
    r.add_argument("--backend", default="vm", choices=["vm", "model", "local"],
                   help="vm (default): the test kernel in qemu; model: the model alone; "
                        "local: THIS machine's kernel (explicit opt-in)")
    r.add_argument("--kernel", help="kernel dir (default: the default kernel)")
    r.set_defaults(fn=cmd_run)

    g = sub.add_parser("gen", help="write random programs, or (--stats) tabulate what "
                       "the generator makes and what the kernel accepts of it")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--count", type=int, default=100)
    g.add_argument("--max-ops", type=int, default=24)
    g.add_argument("--out", help="directory for the programs")
    g.add_argument("--stats", action="store_true",
                   help="run them (VM by default) and print each op's share of successful "
                        "calls and the kinds of values drawn per argument")
    g.add_argument("--backend", default="vm", choices=["vm", "model", "local"])
    g.add_argument("--kernel", help="kernel dir (default: the default kernel)")
    g.set_defaults(fn=cmd_gen)

    cm_ = sub.add_parser("check-model", help="generated programs on model and kernel: "
                         "agreement rate; disagreements become findings")
    cm_.add_argument("--seed", type=int, default=0)
    cm_.add_argument("--count", type=int, default=1000)
    cm_.add_argument("--vms", type=int, default=1)
    cm_.add_argument("--max-ops", type=int, default=24)
    cm_.add_argument("--findings", default="findings")
    cm_.add_argument("--kernel")
    cm_.set_defaults(fn=cmd_check_model)

    f = sub.add_parser("fuzz", help="run a campaign")
    f.add_argument("--engine", default="atheris", choices=["atheris", "hypothesis"])
    f.add_argument("--time", default="10m", help="duration: 90s, 10m, 2h, 1d")
    f.add_argument("--vms", type=int, default=1)
    f.add_argument("--corpus", default="corpus/campaign")
    f.add_argument("--seeds", action="append", help="extra read-only corpus dirs "
                   "(default corpus/seeds and corpus/faults; corpus/seeds alone with "
                   "--no-faults-threads)")
    f.add_argument("--no-seeds", action="store_true",
                   help="start from --corpus alone (an empty one: from nothing), no seeds")
    f.add_argument("--findings", default="findings")
    f.add_argument("--workdir", default="workdir/campaign")
    f.add_argument("--kernel")
    f.add_argument("--timeout", type=float, default=120.0,
                   help="seconds a program may take before it counts as a hang "
                        "(default: %(default)s)")
    f.add_argument("--no-feedback", action="store_true",
                   help="do not feed kernel coverage to libFuzzer (for comparison)")
    f.add_argument("--cpus", type=int, default=1, help="vCPUs per VM (2: racing threads "
                   "run in parallel for real)")
    f.add_argument("--kmemleak", action="store_true",
                   help="boot with kmemleak=on and report leaks it finds (every 2 minutes)")
    f.add_argument("--fault-walk-every", type=int, default=8, help="a step of the systematic "
                   "fault walk on a corpus program after every N programs (0: none)")
    f.add_argument("--no-faults-threads", action="store_true", help="no injected faults, no "
                   "threads, no fault walk: the campaign as before them, for comparison")
    f.add_argument("--ray", metavar="ADDRESS", help="run the workers as Ray actors on a "
                   "cluster's nodes: its address, `auto` (the cluster `ray start` joined this "
                   "machine to) or `local` (Ray on this machine only); needs the `ray` extra")
    f.add_argument("--vms-per-node", type=int, help="with --ray: VMs (workers) per node "
                   "(default: one per CPU Ray sees on the node)")
    f.set_defaults(fn=cmd_fuzz)

    fl = sub.add_parser("findings", help="list findings (title, count, first seen)")
    fl.add_argument("--findings", help="findings directory (default: findings)")
    fl.set_defaults(fn=cmd_findings)

    rc = sub.add_parser("recheck", help="the model of this checkout against the kernel "
                        "results a finding recorded (no VM): does a model fix explain it?")
    rc.add_argument("finding", nargs="+", help="finding directories (findings/<slug>)")
    rc.set_defaults(fn=cmd_recheck)

    pl = sub.add_parser("plot", help="draw coverage and findings over time as a PNG")
    pl.add_argument("stats", nargs="?", default="workdir/campaign/stats.jsonl")
    pl.add_argument("--out", default="workdir/campaign/campaign.png")
    pl.set_defaults(fn=cmd_plot)

    c = sub.add_parser("corpus", help="corpus tools").add_subparsers(dest="ccmd", required=True)
    cm = c.add_parser("minimize", help="keep the smallest set with the same kernel edges")
    cm.add_argument("corpus", nargs="?", default="corpus/campaign")
    cm.add_argument("--kernel")
    cm.add_argument("--dry-run", action="store_true")
    cm.set_defaults(fn=cmd_corpus_minimize)

    cv = sub.add_parser("coverage", help="lines reached in drivers/iommu/iommufd/ by the "
                        "corpus (and the kernel's selftests): table, lcov, HTML, JSON")
    from fuzz.coverage.command import add_arguments

    add_arguments(cv)
    cv.set_defaults(fn=cmd_coverage)

    fw = sub.add_parser("faults", help="fail each fault point of programs' ops in turn "
                        "(1st, 2nd, ...), as iommufd_fail_nth does, checked against the model")
    from fuzz.faults import add_arguments as fault_arguments
    from fuzz.faults import command as faults_command

    fault_arguments(fw)
    fw.set_defaults(fn=faults_command)

    add_repro_commands(sub)  # minimize, repro
    return ap


def main(argv: list[str] | None = None) -> int:
    from fuzz.minimize import MinimizeError
    from fuzz.vm import GuestCrash, VMError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except InputError as e:  # a program, a finding, a reproducer, an argument (ProgramError too)
        print(f"iommufd-fuzz: {e}", file=sys.stderr)
        return 2
    except MinimizeError as e:
        print(f"iommufd-fuzz: minimize {getattr(args, 'finding', '')}: {e}", file=sys.stderr)
        return 1
    except kernel.KernelError as e:
        print(f"iommufd-fuzz: kernel: {e}", file=sys.stderr)
        return 2
    except (VMError, GuestCrash) as e:
        print(f"iommufd-fuzz: vm: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, an unwritable corpus or findings directory
        print(f"iommufd-fuzz: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
