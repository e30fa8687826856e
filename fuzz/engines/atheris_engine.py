"""The atheris (libFuzzer) engine: one worker process, one VM.

Inputs are program JSON; anything else is decoded structure-aware (every
decision of the generator drawn from the bytes), so most inputs make sense.
The custom mutator and crossover work on programs (fuzz.mutate). The coverage
libFuzzer sees is the kernel's KCOV edges, hashed onto counters reserved once
Fuzz() has started, plus the model's Python coverage (instrumented on import).
Comparison operands from KCOV's CMP mode (every CMP_EVERY-th program) feed both
libFuzzer's _trace_cmp and the mutator's pool of interesting values.

The worker is pipelined (--no-pipeline: not): an input's comparison with the model runs
while the guest runs the next input (fuzz.engines.common.WorkerState.execute), since it
needs only the input's kernel results, and libFuzzer needs only the kernel edges before
it mutates again. The next input is sent only once the last one's results are in and
the kernel restarted if they tainted it. The comparison's own Python coverage of the
model is recorded and given to libFuzzer as the compared input's (credit_model_coverage).

In a cluster campaign (--exchange) the custom mutator and crossover also hand
libFuzzer the corpus entries other workers found, from the inbox
(fuzz.cluster.exchange), in place of a mutation: libFuzzer runs each once and keeps it if it reaches
coverage new to this worker, as syzkaller's fuzzers triage the hub's inputs.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import hashlib
import os
import random
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["fuzz.model"]):
    import fuzz.model  # noqa: F401  (the model's own coverage guides libFuzzer too)

from fuzz import coverage  # noqa: E402
from fuzz.backend import VMBackend  # noqa: E402
from fuzz.cluster.exchange import Inbox, store_for  # noqa: E402
from fuzz.differential import Outcome  # noqa: E402
from fuzz.engines.common import WorkerState  # noqa: E402
from fuzz.executor.wire import KCOV_TRACE_CMP  # noqa: E402
from fuzz.prog import Program, ProgramError  # noqa: E402
from fuzz.prog.gen import Generator  # noqa: E402
from fuzz.prog.mutate import crossover, mutate  # noqa: E402
from fuzz.prog.types import Counts  # noqa: E402
from fuzz.vm import VMConfig  # noqa: E402

NCOUNTERS = 1 << 16


class FdpChooser:
    """Decisions from the input's bytes; once they run out, from a generator
    seeded by them, so a short input still decodes to a full-size program (and
    changing any byte changes the program)."""

    def __init__(self, data: bytes) -> None:
        self.fdp = atheris.FuzzedDataProvider(data)
        self.rest = random.Random(hashlib.sha1(data).digest())

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        if self.fdp.remaining_bytes():
            return self.fdp.ConsumeIntInRange(0, n - 1)
        return self.rest.randrange(n)

    def bits(self, k: int) -> int:
        return self.fdp.ConsumeInt(k) if self.fdp.remaining_bytes() else self.rest.getrandbits(k)


def decode(data: bytes) -> Program:
    global DECODED_BYTES
    if data[:1] == b"{":
        prog = DECODED.get(data)
        if prog is not None:
            DECODED[data] = DECODED.pop(data)  # the most recently used last
            return prog
        try:
            prog = Program.loads(data.decode("utf-8", "replace"))
        except ProgramError:
            pass
        else:
            # Programs are not changed once decoded (mutate and crossover copy), and
            # libFuzzer mutates a parent several times in a row: parsing and checking
            # it again was a tenth of the worker's own time. Bounded in bytes too: a
            # Program holds about 5 times its JSON, and programs grow in a campaign.
            DECODED[data] = prog
            DECODED_BYTES += len(data)
            while len(DECODED) > MAX_DECODED or DECODED_BYTES > MAX_DECODED_BYTES:
                oldest = next(iter(DECODED))
                DECODED_BYTES -= len(oldest)
                del DECODED[oldest]
            return prog
    return Generator(FdpChooser(data), counts=COUNTS).program()


def take_import(max_size: int) -> bytes | None:
    """An entry another worker found, in place of this mutation (cluster campaigns)."""
    global LOOP_T
    if INBOX is None or len(PENDING) >= 1024:
        return None
    LOOP_T = LOOP_T or time.time()  # the first mutation: libFuzzer's initial corpus is in
    e = INBOX.take()
    if e is None or len(e.data) > max_size:
        return None
    PENDING[e.name] = e.found_at
    return e.data


def timed(fn: Callable[..., bytes]) -> Callable[..., bytes]:
    """The host's time in fn, in the worker's stats (host_s["mutate"])."""
    @functools.wraps(fn)
    def run(*args: Any) -> bytes:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            if STATE is not None:
                STATE.host_s["mutate"] = STATE.host_s.get("mutate", 0.0) + \
                    time.perf_counter() - t0
    return run


def take_replay(max_size: int) -> bytes | None:
    """An input whose late comparison reached model coverage new to this worker, in
    place of this mutation: libFuzzer "runs" it again, and test_one_input traces what
    its run and its comparison covered (credit_model_coverage), without the guest."""
    for data in REPLAY:
        if len(data) <= max_size:
            return data
        del REPLAY[data]
        return None
    return None


@timed
def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    imp = take_replay(max_size) or take_import(max_size)
    if imp is not None:
        return imp
    rng = random.Random(seed)
    prog = decode(data)
    for _ in range(1 + rng.randrange(3)):
        prog = mutate(prog, rng, HINTS or None, COUNTS, SCHEDULE)
    out = prog.dumps().encode()
    return out if len(out) <= max_size else data[:max_size]


@timed
def custom_crossover(a: bytes, b: bytes, max_out: int, seed: int) -> bytes:
    imp = take_replay(max_out) or take_import(max_out)
    if imp is not None:
        return imp
    out = crossover(decode(a), decode(b), random.Random(seed)).dumps().encode()
    return out if len(out) <= max_out else a[:max_out]


HINTS: list[int] = []
DECODED: dict[bytes, Program] = {}  # program JSON -> its Program, least recently used first
MAX_DECODED = 1024
MAX_DECODED_BYTES = 2 << 20  # of JSON (about 12 MiB of Programs)
DECODED_BYTES = 0
COUNTS = Counts()  # what generation and mutation drew: the stats lines' boundary counts
MAX_HINTS = 4096
CMP_EVERY = 16
INPUTS = 0  # inputs run on the guest (not replays): every CMP_EVERY-th runs again in CMP mode
NCMP_COUNTERS = 1 << 12
STATE: WorkerState | None = None
COUNTERS: list[int] = []
CMP_COUNTERS: list[int] = []
FEEDBACK = True
SCHEDULE = True  # mutations may inject faults and make ops race (fuzz.prog.mutate)
INBOX: Inbox | None = None  # cluster campaigns: entries other workers found
PENDING: dict[str, float] = {}  # imported entries handed to libFuzzer, not run yet
LOOP_T = 0.0  # wall clock of the first mutation
PIPELINE = True  # compare each input with the model while the guest runs the next
MODEL_FEATURES: set[int] = set()  # libFuzzer's features (counter * 8 + bucket) of the model
# inputs to hand libFuzzer again for their model coverage (take_replay): what their run
# and their comparison covered, (kernel edges, the model's counters and their hits)
REPLAY: dict[bytes, tuple[set[int], Counter[int]]] = {}
MAX_REPLAY = 64
REPLAYS = 0


def bucket(hits: int) -> int:
    """libFuzzer's feature of an 8-bit counter that counted `hits` (CounterToFeature)."""
    for k, least in enumerate((128, 32, 16, 8, 4, 3, 2)):
        if hits >= least:
            return 7 - k
    return 0


def credit_model_coverage(out: Outcome, tag: Any, late: bool, compare: Callable[[], None]
                          ) -> None:
    """The model's Python coverage of a comparison goes to the input compared. A late one
    (done while the guest runs the next input, so inside that one's run) is recorded, not
    traced: libFuzzer would credit it to the input running now. Where it reached a
    feature this worker's late comparisons never did, and the input's kernel edges did
    not make it new already (libFuzzer kept it for those, and the corpus has it), the
    input is handed to libFuzzer again (take_replay) and its run traces the kernel edges
    and the model's counters it had: libFuzzer then sees what an unpipelined run would
    have shown, one run late, with no second run on the guest. Comparisons done at once
    (the fault walk's programs) trace as they run."""
    global REPLAYS
    if not FEEDBACK or not late:
        compare()
        return
    hits: list[int] = []
    native = atheris._trace_branch  # looked up now: atheris rebinds it once Fuzz() runs
    atheris._trace_branch = hits.append
    try:
        compare()
    finally:
        atheris._trace_branch = native
    counts = Counter(hits)
    new = False
    for counter, n in counts.items():
        f = counter * 8 + bucket(n)
        if f not in MODEL_FEATURES:
            MODEL_FEATURES.add(f)
            new = True
    if new and not out.new_edges and tag is not None and len(REPLAY) < MAX_REPLAY:
        REPLAY[tag] = (coverage.edges(out.execution), counts)
        REPLAYS += 1
        if STATE is not None:
            STATE.extra["model_replays"] = REPLAYS


def trace_edges(edges: set[int]) -> None:
    trace = atheris._trace_branch  # looked up now: atheris rebinds it once Fuzz() runs
    for e in edges:
        trace(COUNTERS[hash(e) % NCOUNTERS])


def collect_cmp_hints(prog: Program) -> None:
    """Re-run a program with KCOV in comparison mode: the operands the kernel
    compared against become values the mutator tries, and libFuzzer's table of
    recent compares sees them through _trace_cmp."""
    assert STATE is not None
    ex = STATE.execute(prog, KCOV_TRACE_CMP).execution  # a late comparison runs beside it
    if ex.reports or ex.crash:
        # the re-run is a run of the program like the first: its splat or crash is a
        # finding on it (or, logged before it started, on the run before: the first)
        STATE.record(Outcome(prog, ex))
    if ex.raw is None:
        return
    seen = set(HINTS)
    trace_cmp = atheris._trace_cmp
    for i in range(len(ex.results)):
        for kind, a1, a2, pc, repeats in ex.call_cmps(i):
            if FEEDBACK:  # each time the kernel compared them, as libFuzzer's hooks do
                counter = CMP_COUNTERS[pc % NCMP_COUNTERS]
                for _ in range(repeats):
                    trace_cmp(a1, a2, 2, counter, bool(kind & 1))
            for v in (a1, a2):
                if v > 16 and v not in seen:  # tiny constants the generator knows already
                    seen.add(v)
                    HINTS.append(v)
    del HINTS[:-MAX_HINTS]


def test_one_input(data: bytes) -> None:
    global COUNTERS, CMP_COUNTERS, INPUTS
    assert STATE is not None
    if FEEDBACK and not COUNTERS:
        COUNTERS = [atheris._reserve_counter() for _ in range(NCOUNTERS)]
        CMP_COUNTERS = [atheris._reserve_counter() for _ in range(NCMP_COUNTERS)]
    replay = REPLAY.pop(data, None)
    if replay is not None:  # credit_model_coverage: nothing runs, what ran is traced
        kernel, model = replay
        trace_edges(kernel)
        trace = atheris._trace_branch
        for counter, n in model.items():
            for _ in range(n):
                trace(counter)
        return
    prog = decode(data)
    _out, edges = STATE.run(prog, tag=data, late=PIPELINE)
    if PENDING:
        name = hashlib.sha1(data).hexdigest()
        if name in PENDING:
            found = PENDING.pop(name)
            # one that arrived while this worker still started waited for it, not for the hub
            STATE.imported(name, found, startup=found < LOOP_T - 1)
    if FEEDBACK:
        trace_edges(edges)
    INPUTS += 1
    # counted here, not by STATE.programs: the fault walk's runs count there, and with a
    # walk step every 8 programs that count was never a multiple of 16 after an input
    if INPUTS % CMP_EVERY == 0:
        collect_cmp_hints(prog)


def main(argv: list[str] | None = None) -> None:
    global STATE, FEEDBACK, INBOX, SCHEDULE, PIPELINE
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--seeds", type=Path, action="append", default=[])
    ap.add_argument("--findings", type=Path, required=True)
    ap.add_argument("--stats", type=Path, required=True)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--runs", type=int, default=-1)
    ap.add_argument("--worker", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds a program may take before it counts as a hang")
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--kmemleak", action="store_true")
    ap.add_argument("--leak-scan-s", type=float, default=0.0)
    ap.add_argument("--fault-walk-every", type=int, default=0)
    ap.add_argument("--no-feedback", action="store_true")
    ap.add_argument("--no-pipeline", action="store_true",
                    help="compare each input with the model before the next one runs")
    ap.add_argument("--no-schedule", action="store_true",
                    help="no injected faults, no threads (for comparison)")
    ap.add_argument("--exchange", type=Path, help="cluster campaigns: the directory shared "
                    "with the node's actor (fuzz.cluster.exchange)")
    ap.add_argument("--libfuzzer-arg", action="append", default=[], metavar="-FLAG=VALUE",
                    help="one more libFuzzer flag, e.g. -entropic=0 (repeatable)")
    ap.add_argument("--ceiling-pairs", type=int, default=0,
                    help="first measure the C-loop ioctl rate in this VM (benchmarks)")
    a = ap.parse_args(argv)
    FEEDBACK = not a.no_feedback
    SCHEDULE = not a.no_schedule
    PIPELINE = not a.no_pipeline
    backend = VMBackend(a.kernel, VMConfig(kernel=a.kernel, cpus=a.cpus, kmemleak=a.kmemleak),
                        workdir=a.workdir / "vm", timeout=a.timeout)
    STATE = WorkerState(backend, a.corpus, store_for(a.findings, a.exchange), a.stats, a.kernel,
                        a.worker, counts=COUNTS, pipelined=PIPELINE,
                        comparing=credit_model_coverage)
    STATE.extra.update(pipelined=PIPELINE, model_replays=0)
    STATE.walk_every, STATE.leak_scan_s = a.fault_walk_every, a.leak_scan_s
    STATE.walk_dirs = list(getattr(a, "seeds", []))
    if a.exchange:
        STATE.exchange = a.exchange
        INBOX = Inbox(a.exchange / "inbox")
    if a.ceiling_pairs:
        STATE.measure_ceiling(a.ceiling_pairs)
    scratch = a.workdir / "libfuzzer-corpus"
    scratch.mkdir(parents=True, exist_ok=True)
    lf_args = [sys.argv[0], f"-max_total_time={a.seconds}", f"-runs={a.runs}",
               # hangs are the VM layer's to detect (channel timeouts, restarts); libFuzzer's
               # own timeout would kill the worker and its VM
               "-max_len=65536", "-rss_limit_mb=0", "-timeout=100000", f"-seed={a.seed}",
               f"-artifact_prefix={a.workdir}/", "-error_exitcode=0",
               # libFuzzer would otherwise keep replacing programs by smaller ones with
               # the same coverage, and the corpus drifts to two-op programs
               "-reduce_inputs=0",
               # SIGINT and SIGTERM are the worker's (on_signal): the last comparison first
               "-handle_int=0", "-handle_term=0",
               "-print_final_stats=1", *a.libfuzzer_arg,
               str(scratch), str(a.corpus), *map(str, a.seeds)]
    code = 1
    try:
        atheris.Setup(lf_args, test_one_input, custom_mutator=custom_mutator,
                      custom_crossover=custom_crossover)
        at_libfuzzer_exit(finish)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        atheris.Fuzz()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        finish()
        backend.close()
        # the hook above calls into Python: it must not run after the interpreter's
        # finalization, so the worker never gets there
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


FINISHED = False


def on_signal(signum: int, _frame: Any) -> None:
    """SIGINT/SIGTERM: the deferred comparison and the final stats, then out, as
    libFuzzer's own handler would (_Exit) but without losing the last program's
    comparison. Python runs it in the main thread between bytecodes: a comparison it
    cuts short is done again from the start (WorkerState.flush)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    print(f"worker: signal {signum}: the last comparison and stats, then exiting",
          file=sys.stderr, flush=True)
    try:
        finish()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)  # as a shell reports it: 130 for SIGINT (fuzz.campaign)


def finish() -> None:
    """The worker's last comparison (a pipelined worker's deferred one), its last corpus
    write, its retries and its final stats line."""
    global FINISHED
    if STATE is not None and not FINISHED:
        FINISHED = True
        STATE.write_stats(final=True)


def at_libfuzzer_exit(fn: Callable[[], None]) -> None:
    """Call fn when libFuzzer ends the process with exit() (its runs or time are done):
    it never returns into Python, so neither `finally` nor `atexit` runs. A C exit
    handler does. (On SIGINT libFuzzer leaves through _Exit: only what was on disk
    stays, as for a SIGKILL.)"""
    cb = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _arg: fn())
    _EXIT_HOOKS.append(cb)  # the C side holds only a pointer: keep the callback alive
    ctypes.CDLL(None).__cxa_atexit(cb, None, None)


_EXIT_HOOKS: list = []


if __name__ == "__main__":
    main()
