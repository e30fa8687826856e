"""Crash-safety and long-run soak of a campaign (issue 14).

    .venv/bin/python bench/soak.py kills [--quick] [--kernel DIR] [--out DIR] [--seed N]
    .venv/bin/python bench/soak.py long [--hours 2] [--kernel DIR] [--out DIR]

kills: rounds of `iommufd-fuzz fuzz` (one VM) killed with SIGKILL - the whole
process group, as a crash or the OOM killer of a session would - at random moments
and at chosen ones: half-way through a corpus write or a finding write (the
crash points of fuzz/crashpoint.py: the kill lands with half the bytes in the
temporary file, or all of them before the rename), during the VM's restore, its cold
boot and its snapshot, and during `iommufd-fuzz minimize` and its reproducer
writes; the manager alone; qemu SIGSTOPped and SIGKILLed under a running worker;
the findings directory on a small tmpfs filled to the last byte; corpus files
damaged between runs. After every round it checks that every corpus entry and
finding a worker reported as written ("wrote corpus ..", "wrote finding .." in its
log) is intact, that nothing damaged or half-written is visible where libFuzzer or
the corpus loader looks, and that the next campaign resumes; it prints what was
lost, which must be nothing. --quick: one round of each kind (about 15 rounds,
10-15 minutes) instead of the 31 rounds (about 40 minutes).

long: one campaign for --hours (default 2) plus 10 minutes, niced, one VM; every
minute each host process's memory (RSS and USS, psutil: the manager, the worker,
its qemu), the disk used by the work directory, its bounded logs (judged against
their caps), the private cache and each finding (and, apart, the corpus, the edge
sets and libFuzzer's own unit directory, which grow with coverage); prints the
figures at minute 10 and at the end and whether they stayed flat.

Findings come from a planted model (this file's PlantedModel, in the workers and in
minimize only): "stable" claims IOAS_MAP of more than 16 pages fails with ENOMEM
(one signature, seen over and over: count updates); "churn" also disagrees on the
last op of 1 program in 32 with an errno picked by the program's hash (new
findings all the time, for the kill rounds). The VM's snapshots go to a private
cache (IOMMUFD_FUZZ_CACHE, kernels linked from the real one), so cold boots and
snapshot saves can be killed without touching the shared cache.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from fuzz.model import Model  # noqa: E402
from fuzz.result import OpResult  # noqa: E402

PLANTED_PAGES = 16
CHURN_ERRNOS = (errno.EINVAL, errno.ENOENT, errno.EBUSY, errno.ENOSPC, errno.E2BIG,
                errno.EFAULT, errno.EPERM, errno.EEXIST, errno.ERANGE, errno.EOVERFLOW,
                errno.ENODEV, errno.EOPNOTSUPP, errno.EBADF, errno.EDOM, errno.ENXIO,
                errno.EAGAIN)
MODE = "stable"


class PlantedModel(Model):
    """The model, wrong on purpose (see the module docstring)."""

    def step(self, index: int, kernel: OpResult | None = None) -> OpResult:
        r = super().step(index, kernel)
        op = self.program.ops[index]
        length = op.args.get("length")
        # not under an injected fault: its ENOMEM would pass for the plant's while the
        # model's state has the map (a new signature each time, not the planted one);
        # not where the model is unsure: its errno 0 is no prediction (a poisoned state
        # answers 0 for every op), and the plant's ENOMEM made it one - a finding of an
        # op the model cannot judge, with the kernel's errno in its signature
        if (op.name == "IOAS_MAP" and r.errno == 0 and r.unsure is None
                and isinstance(length, int) and length > PLANTED_PAGES * 4096
                and not op.fail_nth):
            return OpResult(errno=errno.ENOMEM, out=dict(r.out))
        if MODE == "churn" and r.errno == 0 and index == len(self.program.ops) - 1:
            h = hashlib.sha1(self.program.dumps().encode()).digest()
            if h[0] < 8:
                return OpResult(errno=CHURN_ERRNOS[h[1] % len(CHURN_ERRNOS)], out=dict(r.out))
        return r


def plant(mode: str) -> None:
    global MODE
    MODE = mode
    if mode == "none":
        return
    from fuzz import differential

    differential.Model = PlantedModel  # type: ignore[misc]


WORKER = """import sys
sys.path.insert(0, {bench!r})
import {module} as engine  # first: atheris instruments fuzz.model as it is imported
import soak
soak.plant({mode!r})
engine.main(sys.argv[1:])
"""


def child(argv: list[str]) -> int:
    """`soak.py child MODE -- iommufd-fuzz ARGS`: the CLI with the model planted (in the
    workers of a campaign, in-process for minimize)."""
    mode, rest = argv[0], argv[argv.index("--") + 1:]
    if rest[0] == "fuzz":
        import fuzz.campaign as campaign

        orig = campaign._worker_argv

        def wrapped(cfg: Any, k: int) -> list[str]:
            a = orig(cfg, k)
            i = a.index("-m")
            return [a[0], "-c", WORKER.format(bench=str(BENCH), module=a[i + 1], mode=mode),
                    *a[i + 2:]]

        campaign._worker_argv = wrapped  # type: ignore[assignment]
    else:
        plant(mode)
    from fuzz.cli import main

    return main(rest)


# ---------------------------------------------------------------------------------------
# The kill rounds.


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Soak:
    root: Path
    kernel: Path
    rng: random.Random
    corpus: Path = field(init=False)
    findings: Path = field(init=False)
    work: Path = field(init=False)
    reproducers: Path = field(init=False)
    cache: Path = field(init=False)
    claimed_corpus: set[str] = field(default_factory=set)
    claimed_findings: set[tuple[Path, str]] = field(default_factory=set)  # (root, slug)
    corrupted: set[str] = field(default_factory=set)
    lost: list[str] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)  # a kill that came too late, a point missed
    rounds: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.corpus = self.root / "corpus"
        self.findings = self.root / "findings"
        self.work = self.root / "work"
        self.reproducers = self.root / "reproducers"
        self.cache = self.root / "cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        real = Path(os.environ.get("IOMMUFD_FUZZ_CACHE",
                                   Path.home() / ".cache" / "iommufd-fuzz"))
        if not (self.cache / "kernels").exists():
            (self.cache / "kernels").symlink_to(real / "kernels")

    # -- processes ------------------------------------------------------------------------
    def env(self, crash_at: str = "") -> dict[str, str]:
        e = {**os.environ, "IOMMUFD_FUZZ_CACHE": str(self.cache)}
        e.pop("IOMMUFD_FUZZ_CRASH_AT", None)
        if crash_at:
            e["IOMMUFD_FUZZ_CRASH_AT"] = crash_at
        return e

    def start(self, mode: str, args: list[str], crash_at: str = "",
              logname: str = "campaign.log") -> subprocess.Popen[bytes]:
        out = open(self.root / logname, "ab")
        for f in self.work.glob("worker-*/stats.jsonl"):
            f.unlink()  # the last campaign's: "resumed" is this one's first program
        argv = ["nice", "-n", "10", sys.executable, str(BENCH / "soak.py"), "child", mode,
                "--", *args]
        return subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                env=self.env(crash_at), cwd=REPO, start_new_session=True)

    def fuzz_args(self, findings: Path | None = None, timeout: float = 20) -> list[str]:
        return ["fuzz", "--time", "20m", "--vms", "1", "--kernel", str(self.kernel),
                "--corpus", str(self.corpus), "--findings", str(findings or self.findings),
                "--workdir", str(self.work), "--seeds", str(REPO / "corpus" / "seeds"),
                "--timeout", str(timeout)]

    @staticmethod
    def group_alive(pgid: int) -> list[int]:
        import psutil

        alive = []
        for p in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(p.pid) == pgid:
                    alive.append(p.pid)
            except (ProcessLookupError, psutil.Error, OSError):
                continue
        return alive

    def kill_group(self, p: subprocess.Popen[bytes]) -> float:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        return self.wait_gone(p.pid)

    def wait_gone(self, pgid: int, limit: float = 15) -> float:
        t0 = time.monotonic()
        while self.group_alive(pgid) and time.monotonic() - t0 < limit:
            time.sleep(0.1)
        left = self.group_alive(pgid)
        if left:
            self.lost.append(f"processes {left} of a killed campaign still alive after "
                             f"{limit:.0f} s")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return time.monotonic() - t0

    def worker_stats(self) -> dict:
        from fuzz.logs import last_json

        return last_json(self.work / "worker-0" / "stats.jsonl")

    def wait_programs(self, p: subprocess.Popen[bytes], limit: float = 180) -> float | None:
        """Seconds until the campaign's worker has run a program (None: it did not)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if self.worker_stats().get("programs", 0) > 0:
                return time.monotonic() - t0
            if p.poll() is not None:
                return None
            time.sleep(0.5)
        return None

    # -- what was claimed, what is there ------------------------------------------------------
    def read_claims(self, findings: Path | None = None) -> tuple[int, int]:
        """What the workers of the campaign just killed said they wrote; their logs
        are then moved to logs/ (each line is read once, with the round's findings dir)."""
        nc = nf = 0
        (self.root / "logs").mkdir(exist_ok=True)
        for lf in sorted(self.work.glob("worker-*/worker.log*")):
            lines = lf.read_text(errors="replace").splitlines()
            lf.rename(self.root / "logs" / f"{len(self.rounds):02d}-{lf.parent.name}-{lf.name}")
            for line in lines:
                m = re.match(r"wrote (corpus|finding) (\S+)$", line)
                if not m:
                    continue
                if m.group(1) == "corpus" and m.group(2) not in self.claimed_corpus:
                    self.claimed_corpus.add(m.group(2))
                    nc += 1
                elif m.group(1) == "finding":
                    key = (findings or self.findings, m.group(2))
                    if key not in self.claimed_findings:
                        self.claimed_findings.add(key)
                        nf += 1
        return nc, nf

    def check(self, what: str) -> list[str]:
        """Everything claimed is intact; nothing damaged is visible. Returns the losses."""
        from fuzz import corpus
        from fuzz.findings import FindingStore, load_finding
        from fuzz.prog import ProgramError
        from fuzz.prog.jsonio import InputError

        lost = []
        for name in sorted(self.claimed_corpus - self.corrupted):
            p = self.corpus / name
            try:
                corpus.check(p)
            except ProgramError as e:
                lost.append(f"{what}: corpus entry {name} reported written: {e}")
        for root, slug in sorted(self.claimed_findings):
            try:
                load_finding(root / slug)
            except InputError as e:
                lost.append(f"{what}: finding {slug} reported written: {e}")
        for root in {self.findings, *(r for r, _ in self.claimed_findings)}:
            for _, d in FindingStore(root).list():
                try:
                    load_finding(d)
                except InputError as e:
                    lost.append(f"{what}: a half-written finding is listed: {e}")
        for p in corpus.files(self.corpus):
            if p.name in self.corrupted:
                continue
            try:
                corpus.check(p)
            except ProgramError as e:
                lost.append(f"{what}: a damaged corpus file is visible: {e}")
        self.lost += lost
        return lost

    def visible_after_prepare(self, what: str) -> dict:
        """What the next campaign's start (fuzz.campaign.prepare) leaves where libFuzzer
        reads (every subdirectory but dot-directories, dotfiles included): all of it
        must be programs."""
        from fuzz import corpus
        from fuzz.campaign import prepare
        from fuzz.prog import ProgramError

        temps = [p for p in self.root.rglob(".tmp-*") if "cache" not in p.parts]
        prepare(self.corpus, self.findings, self.work, (REPO / "corpus" / "seeds",))
        bad = []
        dirs = [self.corpus, *sorted(self.work.glob("worker-*/libfuzzer-corpus"))]
        for d in dirs:
            for p in d.rglob("*"):
                rel = p.relative_to(d).parts
                if p.is_dir() or any(x.startswith(".") for x in rel[:-1]):
                    continue
                try:
                    if not p.is_file():
                        raise ProgramError(f"{p}: not a regular file")
                    corpus.check(p) if d == self.corpus else _load_unit(p)
                except ProgramError as e:
                    bad.append(f"{what}: libFuzzer would read a damaged file: {e}")
        q = {p.name.split(".")[0] for p in (self.corpus / corpus.QUARANTINE).glob("*")} \
            if (self.corpus / corpus.QUARANTINE).is_dir() else set()
        missing_q = sorted(self.corrupted - q)
        if missing_q:
            bad.append(f"{what}: damaged corpus files not quarantined: {missing_q}")
        left = [p for p in self.root.rglob(".tmp-*") if "cache" not in p.parts]
        self.lost += bad
        return {"temps_from_last_kill": len(temps), "temps_after_prepare": len(left),
                "quarantined": len(q)}

    def corrupt_corpus(self, k: int = 3) -> list[str]:
        from fuzz import corpus

        files = [p for p in corpus.files(self.corpus) if re.fullmatch(r"[0-9a-f]{40}", p.name)
                 and p.name not in self.corrupted]
        picked = self.rng.sample(files, min(k, len(files)))
        how = []
        for i, p in enumerate(picked):
            kind = ("truncate", "flip", "binary", "fifo")[i % 4]
            data = p.read_bytes()
            if kind == "truncate":
                p.write_bytes(data[: len(data) // 2])
            elif kind == "flip":  # a digit changed: still JSON, maybe still a program
                m = list(re.finditer(rb"\d", data))
                j = self.rng.choice(m).start() if m else 0
                p.write_bytes(data[:j] + (b"7" if data[j:j + 1] != b"7" else b"3")
                              + data[j + 1:])
            elif kind == "binary":
                p.write_bytes(os.urandom(len(data)))
            else:
                p.unlink()
                os.mkfifo(p)
            self.corrupted.add(p.name)
            how.append(f"{kind} {p.name[:8]}")
        return how

    # -- rounds ---------------------------------------------------------------------------------
    def campaign_round(self, name: str, *, mode: str = "churn", crash_at: str = "",
                       kill_after: tuple[float, float] | None = None,
                       kill_early: tuple[float, float] | None = None, corrupt: bool = False,
                       manager_only: bool = False, limit: float = 150) -> dict:
        r: dict[str, Any] = {"round": name, "crash_at": crash_at}
        if corrupt:
            r["corrupted"] = self.corrupt_corpus()
        r.update(self.visible_after_prepare(name))
        t0 = time.monotonic()
        p = self.start(mode, self.fuzz_args(), crash_at)
        if kill_early:  # while the VM boots or restores
            time.sleep(self.rng.uniform(*kill_early))
            r["killed_at_s"] = round(time.monotonic() - t0, 1)
            r["gone_s"] = round(self.kill_group(p), 2)
        else:
            started = self.wait_programs(p)
            r["resumed_s"] = None if started is None else round(started, 1)
            if started is None and not crash_at:
                self.lost.append(f"{name}: the campaign did not resume (no program in 180 s)")
            if started is not None:
                r["corpus_at_resume"] = have = self.worker_stats().get("corpus", 0)
                if have < len(self.claimed_corpus - self.corrupted):
                    self.lost.append(f"{name}: resumed with {have} corpus entries, "
                                     f"{len(self.claimed_corpus - self.corrupted)} were written")
            if crash_at:
                end = time.monotonic() + limit
                while p.poll() is None and time.monotonic() < end:
                    time.sleep(0.2)
                r["crash_point_hit"] = p.poll() is not None
                if not r["crash_point_hit"]:
                    self.untested.append(f"{name}: the crash point was not reached in "
                                         f"{limit:.0f} s (killed from outside instead)")
                r["killed_at_s"] = round(time.monotonic() - t0, 1)
                r["gone_s"] = round(self.kill_group(p), 2)
            elif manager_only:
                time.sleep(self.rng.uniform(5, 15))
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                r["killed_at_s"] = round(time.monotonic() - t0, 1)
                r["workers_gone_s"] = round(self.wait_gone(p.pid, 10), 2)
            else:
                assert kill_after is not None
                time.sleep(self.rng.uniform(*kill_after))
                r["killed_at_s"] = round(time.monotonic() - t0, 1)
                r["gone_s"] = round(self.kill_group(p), 2)
        r["killed"] = r.get("crash_point_hit", True)
        nc, nf = self.read_claims()
        r["claimed"] = {"corpus": nc, "findings": nf}
        r["total_claimed"] = {"corpus": len(self.claimed_corpus),
                              "findings": len(self.claimed_findings)}
        r["lost"] = self.check(name)
        self.rounds.append(r)
        log(json.dumps(r))
        return r

    def minimize_round(self, name: str, *, crash_at: str = "",
                       kill_after: tuple[float, float] | None = None) -> dict:
        from fuzz.findings import FindingStore
        from fuzz.repro.verify import load_repro

        r: dict[str, Any] = {"round": name, "crash_at": crash_at}
        fdir = next((d for f, d in FindingStore(self.findings).list()
                     if f.title == "model/kernel mismatch in IOAS_MAP.errno"), None)
        if fdir is None:
            self.lost.append(f"{name}: no stable planted finding to minimize")
            return r
        before = {p.name: p.read_bytes() for p in fdir.iterdir() if p.is_file()
                  and p.name != "finding.json"}
        args = ["minimize", str(fdir), "--out", str(self.reproducers), "--kernel",
                str(self.kernel), "--rate-runs", "2"]
        t0 = time.monotonic()
        p = self.start("stable", args, crash_at, logname="minimize.log")
        if crash_at:
            try:
                p.wait(timeout=300)
            except subprocess.TimeoutExpired:
                pass
            r["crash_point_hit"] = p.returncode == -signal.SIGKILL
            if not r["crash_point_hit"]:
                self.untested.append(f"{name}: the crash point was not reached")
        elif kill_after is not None:  # in the middle of it: once it shrinks candidates
            logf = self.root / "minimize.log"
            size0 = logf.stat().st_size if logf.exists() else 0
            end = time.monotonic() + 120
            while p.poll() is None and time.monotonic() < end:
                with open(logf, "rb") as f:
                    f.seek(size0)
                    if b"tries per candidate" in f.read():
                        break
                time.sleep(0.05)
            time.sleep(self.rng.uniform(*kill_after))
            r["alive_at_kill"] = p.poll() is None
            if not r["alive_at_kill"]:
                self.untested.append(f"{name}: minimize ended before the kill")
        else:
            p.wait(timeout=900)
            r["rc"] = p.returncode
        r["killed_at_s"] = round(time.monotonic() - t0, 1)
        r["killed"] = bool(r.get("crash_point_hit") or r.get("alive_at_kill"))
        r["gone_s"] = round(self.kill_group(p), 2)
        lost = []
        after = {p.name: p.read_bytes() for p in fdir.iterdir() if p.is_file()
                 and p.name != "finding.json"}
        if after != before:
            lost.append(f"{name}: minimize changed the finding's files")
        out = self.reproducers / fdir.name
        if out.exists():
            try:
                rd = load_repro(out)
                r["reproducer"] = f"complete ({len(rd.prog.ops)} ops)"
            except Exception as e:  # noqa: BLE001 - any failure is a half-written reproducer
                lost.append(f"{name}: a half-written reproducer is visible: {e}")
        else:
            r["reproducer"] = "absent"
        if not crash_at and kill_after is None:
            report = (out / "report.txt").read_text() if out.exists() else ""
            r["verified"] = report.count("REPRODUCED  ")
            if r.get("rc") != 0 or r["verified"] != 3:
                lost.append(f"{name}: minimize after the kills did not finish with 3 "
                            f"reproducing forms (rc {r.get('rc')})")
        temps = [q.name for q in self.reproducers.glob(".tmp-*")] if self.reproducers.exists() \
            else []
        r["temps_left_by_this_kill"] = len(temps)
        r["lost"] = lost
        self.lost += lost
        self.rounds.append(r)
        log(json.dumps(r))
        return r

    def qemu_round(self, name: str, sig: signal.Signals, timeout: float = 20) -> dict:
        """qemu stopped or killed under a running worker: back within its timeout, the
        program that was running reported as a finding."""
        import psutil

        from fuzz.findings import FindingStore, load_finding

        r: dict[str, Any] = {"round": name, "signal": sig.name, "timeout_s": timeout}
        p = self.start("stable", self.fuzz_args(timeout=timeout))
        if self.wait_programs(p) is None:
            self.lost.append(f"{name}: the campaign did not start")
            self.kill_group(p)
            return r
        time.sleep(5)
        wpid = self.worker_stats().get("pid")
        qemus = [c for c in psutil.Process(wpid).children(recursive=True)
                 if "qemu" in c.name()]
        if not qemus:
            self.lost.append(f"{name}: no qemu under worker {wpid}")
            self.kill_group(p)
            return r
        known = {d.name for _, d in FindingStore(self.findings).list()}
        progs0 = self.worker_stats().get("programs", 0)
        restarts0 = self.worker_stats().get("restarts", 0)
        t0 = time.monotonic()
        os.kill(qemus[0].pid, sig)
        found = back = None
        while time.monotonic() - t0 < timeout + 90:
            if found is None:
                new = [(f, d) for f, d in FindingStore(self.findings).list()
                       if d.name not in known and f.kind == "crash"]
                if new:
                    found = new[0]
                    r["finding_s"] = round(time.monotonic() - t0, 1)
            st = self.worker_stats()
            if found is not None and st.get("programs", 0) > progs0 and \
                    st.get("restarts", 0) > restarts0:
                back = time.monotonic() - t0
                break
            time.sleep(0.5)
        r["back_s"] = None if back is None else round(back, 1)
        if found is None:
            self.lost.append(f"{name}: no finding for the program that was running")
        else:
            f, d = found
            st = load_finding(d)
            r["finding"] = f.title
            r["program_ops"] = len(st.prog.ops)
            r["history_programs"] = len(st.history)
        if back is None or back > timeout + 30:
            self.lost.append(f"{name}: the worker was not back within {timeout:.0f} s + 30 s "
                             f"(back: {r['back_s']})")
        r["gone_s"] = round(self.kill_group(p), 2)
        self.read_claims()
        r["lost"] = self.check(name)
        self.rounds.append(r)
        log(json.dumps(r))
        return r

    def disk_full_round(self, name: str, size_mb: int = 4) -> dict:
        """The findings directory on a small tmpfs, filled: workers say what they could
        not write and fuzz on; once there is room again, the retries land."""
        from fuzz.findings import FindingStore

        r: dict[str, Any] = {"round": name, "tmpfs_mb": size_mb}
        mnt = self.root / "findings-tmpfs"
        mnt.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mnt)],
                       check=True)
        try:
            fdir = mnt / "findings"
            fdir.mkdir()
            filler = mnt / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                chunk = 1 << 16
                while chunk:  # to the last byte tmpfs has
                    try:
                        os.write(fd, b"\0" * chunk)
                    except OSError as e:
                        assert e.errno == errno.ENOSPC, e
                        chunk //= 2
            finally:
                os.close(fd)
            p = self.start("churn", self.fuzz_args(findings=fdir))
            if self.wait_programs(p) is None:
                self.lost.append(f"{name}: the campaign did not start with a full findings disk")
            time.sleep(40)
            st1 = self.worker_stats()
            worker_log = (self.work / "worker-0" / "worker.log").read_text(errors="replace")
            r["not_written_warnings"] = worker_log.count("NOT written")
            r["write_errors_while_full"] = st1.get("write_errors", 0)
            r["findings_listed_while_full"] = len(FindingStore(fdir).list())
            filler.unlink()
            time.sleep(30)
            st2 = self.worker_stats()
            r["programs_while_full"] = st1.get("programs", 0)
            r["programs_after"] = st2.get("programs", 0)
            if p.poll() is not None:
                self.lost.append(f"{name}: the campaign died on the full disk")
            r["gone_s"] = round(self.kill_group(p), 2)
            nc, nf = self.read_claims(findings=fdir)
            r["claimed"] = {"corpus": nc, "findings": nf}
            if not r["write_errors_while_full"]:
                self.lost.append(f"{name}: no write error was seen: the disk was not full")
            if r["programs_after"] <= r["programs_while_full"]:
                self.lost.append(f"{name}: the worker did not fuzz on")
            r["lost"] = self.check(name)
            if not nf:
                self.lost.append(f"{name}: nothing written once there was room again "
                                 "(the retries did not land)")
            self.claimed_findings = {c for c in self.claimed_findings if c[0] != fdir}
        finally:
            subprocess.run(["umount", str(mnt)], check=False)
            mnt.rmdir()
        self.rounds.append(r)
        log(json.dumps(r))
        return r


def _load_unit(p: Path) -> None:
    """A libFuzzer unit in its scratch directory: a content-named program file (the
    worker writes programs; libFuzzer may also keep raw inputs, which decode too)."""
    from fuzz import corpus
    from fuzz.prog import ProgramError

    data = p.read_bytes()
    if re.fullmatch(r"[0-9a-f]{40}", p.name) and corpus.content_name(data) != p.name:
        raise ProgramError(f"{p}: its bytes do not match its content name (cut short)")


def run_kills(a: argparse.Namespace) -> int:
    from fuzz import kernel

    kdir = Path(a.kernel) if a.kernel else kernel.default_kernel()
    root = Path(a.out) / f"kills-{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True)
    s = Soak(root, kdir, random.Random(a.seed))
    log(f"soak kills in {root} on {kdir}")
    t0 = time.monotonic()
    s.campaign_round("warm-up (killed at a random moment)", kill_after=(60, 70))
    # quick: one round of each kind; else five random moments, and every crash point
    # of the corpus and finding writes more than once
    n = (lambda full: 1) if a.quick else (lambda full: full)
    plan: list[tuple[str, dict]] = []
    for k in range(n(5)):
        plan.append((f"random {k + 1}", {"kill_after": (3, 45), "corrupt": k in (1, 3)}))
    cdir, fdir = f"{s.corpus}/", f"{s.findings}/"
    for k in range(n(3)):
        plan.append((f"corpus write, half written {k + 1}",
                     {"crash_at": f"write.partial@{cdir}:{s.rng.randint(1, 4)}"}))
    for k in range(n(2)):
        plan.append((f"corpus write, before rename {k + 1}",
                     {"crash_at": f"write.complete@{cdir}:{s.rng.randint(1, 4)}",
                      "corrupt": k == 0}))
    for k in range(n(3)):
        plan.append((f"finding write, half written {k + 1}",
                     {"crash_at": f"write.partial@{fdir}:{s.rng.randint(1, 8)}"}))
    for k in range(n(2)):
        plan.append((f"finding write, before rename {k + 1}",
                     {"crash_at": f"write.complete@{fdir}:{s.rng.randint(1, 8)}"}))
    plan.append(("VM restore (crash point)", {"crash_at": "vm.boot:1"}))
    plan.append(("VM start (random moment)", {"kill_early": (0.3, 4.0)}))
    for name, kw in plan:
        s.campaign_round(name, **kw)
    # a cold boot and its snapshot: the private cache's snapshots go first
    for name, spec in (("VM cold boot (crash point)", "vm.boot:1"),
                       ("VM snapshot save (crash point)", "vm.snapshot:1")):
        shutil.rmtree(s.cache / "snapshots", ignore_errors=True)
        s.campaign_round(name, crash_at=spec)
    s.campaign_round("the manager alone", manager_only=True)
    for k in range(n(2)):
        s.minimize_round(f"minimize, random moment {k + 1}", kill_after=(0, 1.5))
    rdir = f"{s.reproducers}/"
    s.minimize_round("minimize, reproducer half written",
                     crash_at=f"write.partial@{rdir}:{s.rng.randint(1, 5)}")
    s.minimize_round("minimize, reproducer before rename",
                     crash_at=f"write.complete@{rdir}:{s.rng.randint(1, 5)}")
    s.minimize_round("minimize after the kills, to the end")
    s.qemu_round("qemu SIGSTOPped under the worker", signal.SIGSTOP)
    s.qemu_round("qemu SIGKILLed under the worker", signal.SIGKILL)
    s.disk_full_round("findings directory on a full tmpfs")
    s.campaign_round("resume after everything", kill_after=(40, 50), corrupt=True)
    minutes = (time.monotonic() - t0) / 60
    kills = sum(1 for r in s.rounds if r.get("killed"))
    summary = {"kills": kills, "rounds": len(s.rounds), "minutes": round(minutes, 1),
               "corpus_entries_claimed": len(s.claimed_corpus),
               "findings_claimed": len(s.claimed_findings),
               "corrupted_on_purpose": len(s.corrupted),
               "crash_points_hit": sum(1 for r in s.rounds if r.get("crash_point_hit")),
               "crash_points": sum(1 for r in s.rounds if r.get("crash_at")),
               "lost": s.lost, "not_tested": s.untested}
    (root / "rounds.json").write_text(json.dumps(s.rounds, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print("LOST: nothing" if not s.lost else "LOST:\n  " + "\n  ".join(s.lost))
    if s.untested:
        print("NOT TESTED:\n  " + "\n  ".join(s.untested))
    return 0 if not s.lost and not s.untested else 1


# ---------------------------------------------------------------------------------------
# The long stretch.


# Files that grow with coverage (shown, not judged) and the logs bounded by a cap
# (judged against the cap); everything else must stay flat.
GROWS_WITH_COVERAGE = re.compile(r"stats(\.\w+)?\.edges$")
BOUNDED_LOGS = re.compile(r"(stats\.jsonl|worker\.log(\.1)?|console\.log(\.1)?)$")


def log_caps_mb(workers: int = 1) -> float:
    """What the bounded logs may reach together: each rotated log twice its cap (the
    log and its .1), each thinned stats.jsonl its cap plus one line."""
    from fuzz import campaign, vm
    from fuzz.engines import common

    per_worker = (2 * vm.CONSOLE_LOG_MAX_BYTES + 2 * campaign.WORKER_LOG_MAX_BYTES
                  + common.STATS_MAX_BYTES + 4096)
    return (workers * per_worker + campaign.STATS_MAX_BYTES + 4096) / 2**20


def du(p: Path, skip: tuple[str, ...] = (), only: re.Pattern[str] | None = None,
       but: tuple[re.Pattern[str], ...] = ()) -> int:
    total = 0
    for dirpath, dirnames, files in os.walk(p):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for f in files:
            if (only and not only.search(f)) or any(b.search(f) for b in but):
                continue
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                continue
    return total


LIBFUZZER_CORPUS = re.compile(rb"corp: \d+/(\d+)(b|Kb|Mb)")
UNIT = {b"b": 1, b"Kb": 1 << 10, b"Mb": 1 << 20}


def libfuzzer_corpus_mb(work: Path) -> float | None:
    """The size of the corpus libFuzzer holds in memory, from its last status line
    in the worker's log ("corp: N/SIZE"): it grows with coverage, as the corpus on
    disk does (libFuzzer keeps each unit's bytes, and little more)."""
    for log in (work / "worker.log", work / "worker.log.1"):
        try:
            with log.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - (64 << 10)))
                hits = LIBFUZZER_CORPUS.findall(f.read())
        except OSError:
            continue
        if hits:
            n, unit = hits[-1]
            return round(int(n) * UNIT[unit] / 2**20, 2)
    return None


def sample(manager: int, s: Soak) -> dict:
    import psutil

    procs: dict[str, dict] = {}
    try:
        top = psutil.Process(manager)
        for pr in [top, *top.children(recursive=True)]:
            try:
                if pr.pid == manager:
                    role = "manager"
                elif "qemu" in pr.name():
                    role = "qemu"
                elif "engine" in " ".join(pr.cmdline()):
                    role = "worker"
                else:
                    continue  # nice, gcc and other passers-by
                if pr.status() == psutil.STATUS_ZOMBIE:
                    continue
                m = pr.memory_full_info()
                procs[role] = {"pid": pr.pid, "rss_mb": round(m.rss / 2**20, 1),
                               "uss_mb": round(m.uss / 2**20, 1)}
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    st = s.worker_stats()
    mb = 2**20
    units = ("libfuzzer-corpus",)
    return {"t_min": None, "procs": procs,
            "work_mb": round(du(s.work, skip=units, but=(GROWS_WITH_COVERAGE, BOUNDED_LOGS))
                             / mb, 2),
            "logs_mb": round(du(s.work, skip=units, only=BOUNDED_LOGS) / mb, 2),
            "cache_mb": round(du(s.cache, skip=("kernels",)) / mb, 2),
            "findings_mb": round(du(s.findings) / mb, 2),
            "finding_mb": {d.name: round(du(d) / mb, 3)
                           for d in s.findings.glob("*") if (d / "finding.json").exists()},
            "corpus_mb": round(du(s.corpus) / mb, 2),
            "edges_mb": round(du(s.work, skip=units, only=GROWS_WITH_COVERAGE) / mb, 2),
            "libfuzzer_units_mb": round(sum(du(d) for d in
                                            s.work.glob("worker-*/libfuzzer-corpus")) / mb, 2),
            "libfuzzer_corpus_mb": libfuzzer_corpus_mb(s.work / "worker-0"),
            "programs": st.get("programs", 0), "edges": st.get("edges", 0),
            "findings": len(list(s.findings.glob("*/finding.json")))}


def run_long(a: argparse.Namespace) -> int:
    from fuzz import kernel

    kdir = Path(a.kernel) if a.kernel else kernel.default_kernel()
    root = Path(a.out) / f"long-{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True)
    s = Soak(root, kdir, random.Random(a.seed))
    total = a.hours * 3600 + 600
    # the campaign's own program timeout: the kills' short one (for a stopped qemu) is
    # below the kernel's hung-task and soft-lockup reports, and a slow guest under
    # load then passes for a hung one
    from fuzz.campaign import CampaignConfig

    args = s.fuzz_args(timeout=CampaignConfig.program_timeout)
    args[args.index("--time") + 1] = f"{int(total)}s"
    log(f"soak long: {total / 3600:.2f} h campaign in {root} on {kdir} (model: {a.plant})")
    p = s.start(a.plant, args)
    t0 = time.monotonic()
    series = []
    try:
        while p.poll() is None and time.monotonic() - t0 < total + 300:
            time.sleep(60)
            row = sample(p.pid, s)
            row["t_min"] = round((time.monotonic() - t0) / 60, 1)
            series.append(row)
            (root / "series.json").write_text(json.dumps(series) + "\n")
            log(json.dumps(row))
    except KeyboardInterrupt:  # Ctrl-C: the judgement of the samples so far
        log(f"soak long: interrupted after {len(series)} samples")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                s.kill_group(p)
    print(json.dumps(flatness(series), indent=1))
    return 0 if flatness(series)["flat"] else 1


def flatness(series: list[dict], start_min: float = 10) -> dict:
    """Figures at minute `start_min` and at the end, and whether they stayed flat:
    memory within 10% + 16 MiB (the worker's net of the corpus libFuzzer holds in
    memory); the work directory and the private cache within 1 MiB; the bounded logs
    under their caps together; each finding present at the start within 256 KiB. The
    corpus (on disk and in libFuzzer's memory), libFuzzer's units, the edge sets and
    new findings grow with coverage: shown, not judged."""
    if not series:
        return {"flat": False, "why": "no samples"}
    first = next((r for r in series if r["t_min"] >= start_min), series[0])
    last = series[-1]
    out: dict[str, Any] = {"from_min": first["t_min"], "to_min": last["t_min"], "flat": True,
                           "grew": []}
    later = [r for r in series if r["t_min"] >= first["t_min"]]
    for role in sorted(set(first["procs"]) | set(last["procs"])):
        # the last sample with the process alive (the last one may come after the end)
        a = first["procs"].get(role, {})
        last_alive = next((r for r in reversed(later) if role in r["procs"]), last)
        b = last_alive["procs"].get(role, {})
        for k in ("rss_mb", "uss_mb"):
            x, y = a.get(k), b.get(k)
            peak = max(((r["procs"].get(role, {}).get(k) or 0) for r in later), default=0)
            out[f"{role}_{k}"] = [x, y, peak]
            if role == "worker" and x is not None and y is not None:
                # the worker's corpus in libFuzzer's memory at those two samples
                ca, cb = (r.get("libfuzzer_corpus_mb") or 0.0 for r in (first, last_alive))
                x, y = round(x - ca, 1), round(y - cb, 1)
                out[f"worker_{k}_net_of_corpus"] = [x, y]
            if x is not None and y is not None and y > x * 1.10 + 16:
                out["flat"] = False
                net = " net of libFuzzer's corpus" if role == "worker" else ""
                out["grew"].append(f"{role} {k} {x} -> {y}{net}")
    for k in ("work_mb", "cache_mb"):
        out[k] = [first.get(k), last.get(k)]
        if k in first and last[k] > first[k] + 1.0:
            out["flat"] = False
            out["grew"].append(f"{k} {first[k]} -> {last[k]}")
    cap = round(log_caps_mb(), 2)
    out["logs_mb"] = [first.get("logs_mb"), last.get("logs_mb"), cap]
    if last.get("logs_mb", 0) > cap:
        out["flat"] = False
        out["grew"].append(f"logs_mb {last['logs_mb']} over their caps' {cap}")
    # a finding seen again updates its count; it must not grow with each sighting
    # (new findings are shown: the campaign may find new things in two hours)
    a, b = first.get("finding_mb", {}), last.get("finding_mb", {})
    for name in sorted(set(a) & set(b)):
        if b[name] > a[name] + 0.25:
            out["flat"] = False
            out["grew"].append(f"finding {name} {a[name]} -> {b[name]} MiB")
    out["new_findings"] = sorted(set(b) - set(a))
    for k in ("findings_mb", "corpus_mb", "edges_mb", "libfuzzer_units_mb",
              "libfuzzer_corpus_mb", "programs", "edges", "findings"):
        out[k] = [first.get(k), last.get(k)]
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        return child(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("kills", "long"):
        sp = sub.add_parser(name)
        sp.add_argument("--kernel")
        sp.add_argument("--out", default=str(REPO / "workdir" / "soak"))
        sp.add_argument("--seed", type=int, default=1)
        if name == "kills":
            sp.add_argument("--quick", action="store_true",
                            help="one round of each kind (10-15 minutes)")
        if name == "long":
            sp.add_argument("--hours", type=float, default=2.0)
            sp.add_argument("--plant", default="stable", choices=["stable", "none"])
    a = ap.parse_args()
    return run_kills(a) if a.cmd == "kills" else run_long(a)


if __name__ == "__main__":
    sys.exit(main())
