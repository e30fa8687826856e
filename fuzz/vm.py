"""The VM layer: boots the test kernel in qemu and talks to the guest agent.

The guest boots from an initramfs holding only the static C agent
(fuzz/guest/agent.c, built by fuzz/guest/initramfs.py): no shell, no Python, no
9p on the way to a ready agent. The host's root filesystem is still exported over
virtio-9p, but the agent mounts it only when the host asks it to run a host
command (run_command). The agent's channel is a virtio-serial port; the console
stays a plain log, read by a thread into a log file and a splat scanner, so an
oops that kills the guest is still seen. Booting with `oops=panic panic=-1` and
qemu's `-no-reboot` turns a dead guest into a qemu exit.

Restarts restore a snapshot: the first cold boot of a given kernel, agent and
machine saves the guest, paused with its agent ready and nothing mounted over 9p
(qemu refuses to migrate while a 9p export is mounted), as a migration stream in
the cache; every later start is a fresh qemu loading that stream (`-incoming`),
the same clean kernel each time, in a fraction of a boot.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fuzz import channel, crashpoint
from fuzz.executor.runner import RawRun, unpack_response
from fuzz.guest import initramfs
from fuzz.paths import REPO, cache_dir
from fuzz.report import LogScanner, Report


class VMError(RuntimeError):
    """The VM could not be started or used; the message says which step failed."""


class GuestCrash(RuntimeError):
    """The guest died or hung while running something; carries what was seen."""

    def __init__(self, what: str, reports: list[Report], console_tail: str) -> None:
        super().__init__(what)
        self.what = what
        self.reports = reports
        self.console_tail = console_tail


@dataclass
class VMConfig:
    kernel: Path  # directory with bzImage (from `iommufd-fuzz kernel build`)
    memory_mb: int = 1024
    cpus: int = 1
    accel: str = "auto"  # kvm where /dev/kvm can create a VM, else tcg
    boot_timeout: float = 180.0
    hugepages: int = 64  # 2 MiB pages reserved for hugetlb buffers
    extra_cmdline: str = ""
    # kmemleak (built in, off by default): boot with kmemleak=on; VM.scan_leaks reports
    kmemleak: bool = False
    snapshot: bool = True  # (re)start by restoring the snapshot of a ready guest
    # the executor's buffer pool (IOMMUFD_FUZZ_POOL=0 turns it off, for comparisons)
    pool: bool = field(default_factory=lambda: os.environ.get("IOMMUFD_FUZZ_POOL") != "0")


def die_with_parent() -> None:
    """qemu must not outlive us: libFuzzer leaves through exit(), a campaign may be
    killed; PR_SET_PDEATHSIG takes the VM down with its owner."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# A vCPU runs a two-instruction loop 2M times in real mode, then writes a port.
# Hardware KVM takes a millisecond or two; KVM that traps every instruction (as
# here: /dev/kvm works, but a loop iteration costs a microsecond and the kernel
# does not get through decompression in minutes) is far slower than TCG.
_KVM_PROBE = r"""
import ctypes, fcntl, mmap, os, struct, time
kvm = os.open("/dev/kvm", os.O_RDWR)
vm = fcntl.ioctl(kvm, 0xAE01, 0)                            # KVM_CREATE_VM
mem = mmap.mmap(-1, 0x2000)
# mov ecx, 2000000; 1: dec ecx; jnz 1b; mov al, 0x42; out 0x10, al; hlt
code = b"\x66\xb9" + struct.pack("<I", 2000000) + b"\x66\x49\x75\xfc\xb0\x42\xe6\x10\xf4"
mem[0x1000:0x1000 + len(code)] = code
addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
fcntl.ioctl(vm, 0x4020AE46, struct.pack("<IIQQQ", 0, 0, 0, 0x2000, addr))  # SET_USER_MEMORY_REGION
cpu = fcntl.ioctl(vm, 0xAE41, 0)                            # KVM_CREATE_VCPU
run = mmap.mmap(cpu, fcntl.ioctl(kvm, 0xAE04, 0))           # KVM_GET_VCPU_MMAP_SIZE
sregs = bytearray(312)
fcntl.ioctl(cpu, 0x8138AE83, sregs)                         # KVM_GET_SREGS
struct.pack_into("<Q", sregs, 0, 0)                         # cs.base
struct.pack_into("<H", sregs, 12, 0)                        # cs.selector
fcntl.ioctl(cpu, 0x4138AE84, bytes(sregs))                  # KVM_SET_SREGS
regs = bytearray(144)
struct.pack_into("<QQ", regs, 128, 0x1000, 2)               # rip, rflags
fcntl.ioctl(cpu, 0x4090AE82, bytes(regs))                   # KVM_SET_REGS
t = time.perf_counter()
fcntl.ioctl(cpu, 0xAE80, 0)                                 # KVM_RUN
fast = time.perf_counter() - t < 0.2
raise SystemExit(0 if struct.unpack_from("<I", run, 8)[0] == 2 and fast else 1)  # KVM_EXIT_IO
"""


@functools.cache
def kvm_usable() -> bool:
    """True only if KVM really runs guest code at hardware speed (see _KVM_PROBE).
    The answer is kept for the host's boot (the probe takes a second where it fails)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = ""
    memo = cache_dir() / f"kvm-usable-{boot_id}"
    if boot_id and memo.exists():
        return memo.read_text() == "1"
    try:
        ok = subprocess.run([sys.executable, "-c", _KVM_PROBE], capture_output=True,
                            timeout=1.5).returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    if boot_id:
        memo.write_text("1" if ok else "0")
    return ok


def resolve_accel(accel: str) -> str:
    if accel == "auto":
        return "kvm" if kvm_usable() else "tcg"
    if accel == "kvm" and not kvm_usable():
        raise VMError("--accel kvm asked for, but /dev/kvm cannot create a VM here")
    return accel


def _tsc_args() -> list[str]:
    """Under TCG the guest's TSC is the host's, and with acpi=off there is no timer
    to calibrate it against: give the host's rate, where /proc/cpuinfo's "cpu MHz"
    is that rate (no cpufreq driver scaling it, as in a VM). Elsewhere the guest
    falls back to jiffies: right, but coarse timestamps."""
    if Path("/sys/devices/system/cpu/cpu0/cpufreq").exists():
        return []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return [f"tsc_early_khz={round(float(line.split(':')[1]) * 1000)}",
                        "tsc=reliable"]
    except (OSError, ValueError):
        pass
    return []


def qemu_binary() -> str:
    q = shutil.which("qemu-system-x86_64")
    if not q:
        raise VMError("qemu-system-x86_64 not found: install Debian's qemu-system-x86 "
                      "(the README's setup does)")
    return q


class QMP:
    """Just enough of qemu's machine protocol to save a snapshot."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.f = self.sock.makefile("rb")
        self._reply()  # greeting
        self.cmd("qmp_capabilities")

    def _reply(self) -> dict:
        while True:
            line = self.f.readline()
            if not line:
                raise VMError("qemu closed its QMP socket")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name: str, **args: object) -> object:
        self.sock.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        r = self._reply()
        if "error" in r:
            raise VMError(f"qemu {name}: {r['error'].get('desc')}")
        return r.get("return")

    def close(self) -> None:
        self.f.close()
        self.sock.close()


def kernel_has_sysrq(kernel: Path) -> bool:
    """The kernel's config (`config` beside its bzImage) has Magic SysRq on the serial
    console (VM.sysrq)."""
    try:
        config = (kernel / "config").read_text()
    except OSError:
        return False
    return "CONFIG_MAGIC_SYSRQ=y" in config and "CONFIG_MAGIC_SYSRQ_SERIAL=y" in config


def snapshot_dir() -> Path:
    d = cache_dir() / "snapshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


CONSOLE_LOG_MAX_BYTES = 1 << 20  # console.log rotates to console.log.1 past this
CONSOLE_TAIL_BYTES = 65536  # what the host keeps of the console in memory
# Magic SysRq keys sent to a guest that does not answer, before it is killed: the tasks
# blocked in D state, then a backtrace of every CPU (NMI); and how long the console
# gets to print them
SYSRQ_KEYS = "wl"
SYSRQ_WAIT = 1.5
SERIAL_CHARDEV = "serial0"  # qemu's id for the chardev of `-serial stdio`
KEEP_SNAPSHOTS = 6  # each is a few hundred MB: the most recently used ones stay


def _remove_dead_temps() -> None:
    """Snapshots whose saving was killed: <key>.mig.<pid>.tmp of a process gone."""
    for p in snapshot_dir().glob("*.mig.*.tmp"):
        try:
            os.kill(int(p.name.split(".")[-2]), 0)
        except ProcessLookupError:
            p.unlink(missing_ok=True)
        except (ValueError, PermissionError, OSError):
            continue


def _prune_snapshots() -> None:
    _remove_dead_temps()
    snaps = sorted(snapshot_dir().glob("*.mig"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in snaps[KEEP_SNAPSHOTS:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)


def _expect(kind: int, want: int, payload: bytes) -> None:
    """The agent's answer is the frame asked for, or its error."""
    if kind == channel.ERROR:
        raise VMError("guest agent failed:\n" + payload.decode("utf-8", "replace"))
    if kind != want:
        raise VMError(f"unexpected frame {kind} from the agent")


class VM:
    def __init__(self, cfg: VMConfig, workdir: Path | None = None) -> None:
        self.cfg = cfg
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="iommufd-fuzz-vm-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.console_path = self.workdir / "console.log"
        self.scanner = LogScanner()
        self._console_lock = threading.Lock()
        self._console_tail = bytearray()
        self._reports: list[Report] = []
        self.hello: dict = {}
        self.accel = resolve_accel(cfg.accel)
        self.boot_seconds = 0.0  # the last start, cold boot or restore
        self.cold_boot_seconds = 0.0  # the last cold boot (0: every start was a restore)
        self.restored = False  # the last start restored the snapshot
        self.restarts = 0
        self.starts = 0  # successful starts, boots and restores (each a clean kernel)
        self.restart_seconds = 0.0  # spent in restarts, all of them
        self._argv_key: tuple[list[str], str] | None = None
        self.exec_seconds = 0.0  # waiting for programs' results (the rest is the host's)
        # ... of which the executor's own: mapping buffers, the call loop, tearing down
        self.executor_ns = {"setup": 0, "calls": 0, "teardown": 0}
        # ... and the agent's own outside the executor (fuzz.executor.runner.RawRun): the
        # rest of that wait is the channel (and kernel work that ran between them)
        self.agent_ns = {"agent": 0, "kmsg": 0, "send": 0}

    # -- lifecycle ----------------------------------------------------------------
    def _argv(self, sock_path: Path, qmp_path: Path) -> tuple[list[str], str]:
        """qemu's command line, and the part of it that a snapshot depends on."""
        bz = self.cfg.kernel / "bzImage"
        if not bz.exists():
            raise VMError(f"no kernel image at {bz}: run `iommufd-fuzz kernel build` first")
        try:
            initrd = initramfs.ensure_built()
        except initramfs.InitramfsError as e:
            raise VMError(str(e)) from None
        cmdline = " ".join(arg for arg in [
            "console=ttyS0", "oops=panic", "panic=-1", "panic_on_warn=0", "nokaslr",
            "loglevel=5", f"hugepages={self.cfg.hugepages}", "kasan.fault=report",
            # every KASAN report, not only the first one since boot
            "kasan_multi_shot", "hung_task_timeout_secs=60",
            # Under TCG the AML interpreter (KASAN, lockdep) took 5 s for ACPI's tables
            # and 12 s per PCI device routing its interrupt: 40 of a 45 s boot. Without
            # ACPI, IRQs route from the BIOS's table and nothing in iommufd's mock paths
            # needs it. Nor is there an ACPI timer to calibrate the TSC against (see
            # _tsc_args; tsc=reliable: the clocksource watchdog would trade it for
            # jiffies on TCG's jitter).
            "acpi=off", *(_tsc_args() if self.accel == "tcg" else []),
            # Another 1.5 s: updating trace events' enum maps, and tracefs; nothing
            # here traces (KCOV, debugfs, fault injection and kmsg do not need it).
            "initcall_blacklist=trace_eval_init,tracer_init_tracefs",
            "kmemleak=on" if self.cfg.kmemleak else "",
            self.cfg.extra_cmdline,
        ] if arg)
        machine = [
            "-accel", self.accel, "-m", str(self.cfg.memory_mb),
            "-smp", str(self.cfg.cpus), "-cpu", "max" if self.accel == "tcg" else "host",
            "-kernel", str(bz), "-initrd", str(initrd), "-append", cmdline,
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
            "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-device", "virtio-rng-pci",
            "-device", "virtio-serial-pci",
        ]
        h = hashlib.sha256()
        h.update(bz.read_bytes())
        h.update(initrd.read_bytes())
        h.update(subprocess.run([qemu_binary(), "--version"], capture_output=True).stdout)
        h.update(json.dumps(machine).encode())
        argv = [qemu_binary(), *machine,
                "-chardev", f"socket,id=agent,path={sock_path},server=on,wait=off",
                "-device", "virtserialport,chardev=agent,name=iommufd-fuzz.agent",
                "-qmp", f"unix:{qmp_path},server=on,wait=off"]
        return argv, h.hexdigest()[:20]

    def start(self) -> None:
        t0 = time.monotonic()
        sock_path = self.workdir / "agent.sock"
        qmp_path = self.workdir / "qmp.sock"
        if self._argv_key is None:  # hashing the images takes a while: once per VM
            self._argv_key = self._argv(sock_path, qmp_path)
        argv, key = self._argv_key
        snap = snapshot_dir() / f"{key}.mig"
        if self.cfg.snapshot and snap.exists():
            try:
                self._launch(argv + ["-incoming", f"exec:cat {shlex.quote(str(snap))}"],
                             sock_path, t0)
                crashpoint.hit("vm.boot")
                self._connect(sock_path, t0, restore=True)
                self.hello = json.loads(snap.with_suffix(".json").read_text())
                os.utime(snap)  # recently used: kept by _prune_snapshots
                self.restored = True
                self._ready()
                self.boot_seconds = time.monotonic() - t0
                self.starts += 1
                return
            except (VMError, GuestCrash, OSError, ValueError) as e:
                # a stale or truncated snapshot: boot cold and save a new one
                self.kill()
                with open(self.console_path, "a") as log:
                    log.write(f"\n[host] restoring {snap} failed ({e}); booting cold\n")
                snap.unlink(missing_ok=True)
        t0 = time.monotonic()
        self._launch(argv, sock_path, t0)
        crashpoint.hit("vm.boot")
        self._connect(sock_path, t0, restore=False)
        self.restored = False
        self.boot_seconds = self.cold_boot_seconds = time.monotonic() - t0
        if self.cfg.snapshot and not snap.exists():
            self._save_snapshot(qmp_path, snap)
        self._ready()
        self.starts += 1

    def _ready(self) -> None:
        if not self.cfg.pool:
            self.set_pool(False)

    def _launch(self, argv: list[str], sock_path: Path, t0: float) -> None:
        sock_path.unlink(missing_ok=True)
        self._console_tail.clear()
        self._reports = []
        self.scanner = LogScanner()
        # stdin is the console's input: the key after a SysRq break (VM.sysrq)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        threading.Thread(target=self._pump_console, args=(self.proc,), daemon=True).start()
        deadline = t0 + self.cfg.boot_timeout
        while not sock_path.exists():
            self._check_alive("starting qemu")
            if time.monotonic() > deadline:
                self.kill()
                raise VMError("qemu did not create the agent socket in time")
            time.sleep(0.01)

    def _connect(self, sock_path: Path, t0: float, restore: bool) -> None:
        # a restore that has not answered in a minute will not: boot cold instead
        deadline = t0 + (min(60.0, self.cfg.boot_timeout) if restore else self.cfg.boot_timeout)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self.sock.connect(str(sock_path))
                break
            except ConnectionRefusedError:  # bound, not yet listening
                self._check_alive("starting qemu")
                if time.monotonic() > deadline:
                    raise VMError("qemu does not accept connections on the agent "
                                  "socket") from None
                time.sleep(0.01)
        try:
            if restore:
                # the restored agent waits for a frame, as it did when it was saved
                self._send(channel.PING, b"restored")
                kind, payload = self._recv(deadline - time.monotonic(), "restoring the snapshot")
                if kind != channel.PONG:
                    raise VMError(f"restored agent sent frame {kind} instead of PONG")
                return
            kind, payload = self._recv(deadline - time.monotonic(), "waiting for the agent")
        except GuestCrash as e:
            self.kill()
            raise VMError(f"the guest did not {'restore' if restore else 'boot'} to the agent: "
                          f"{e.what}\n--- console tail ---\n{e.console_tail}") from None
        if kind != channel.HELLO:
            raise VMError(f"agent sent frame {kind} instead of HELLO: {payload[:200]!r}")
        self.hello = json.loads(payload)

    def _save_snapshot(self, qmp_path: Path, snap: Path) -> None:
        """Save the ready guest as a migration stream, then let it run on."""
        _remove_dead_temps()
        tmp = snap.with_name(f"{snap.name}.{os.getpid()}.tmp")
        qmp = QMP(qmp_path)
        try:
            # Not stopped first: the stream then says "running" and a restored qemu
            # starts the guest at once. The guest is idle (the agent waits for a
            # frame), so the live migration converges after one pass.
            qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
            qmp.cmd("migrate", uri=f"exec:cat > {shlex.quote(str(tmp))}")
            crashpoint.hit("vm.snapshot")
            while True:
                st = qmp.cmd("query-migrate")
                status = st.get("status") if isinstance(st, dict) else None
                if status == "completed":
                    break
                if status in ("failed", "cancelled"):
                    raise VMError(f"saving the snapshot failed: {st}")
                time.sleep(0.02)
            qmp.cmd("cont")
        except VMError as e:
            tmp.unlink(missing_ok=True)
            with open(self.console_path, "a") as log:
                log.write(f"\n[host] no snapshot: {e}\n")
            try:
                qmp.cmd("cont")
            except VMError:
                pass
            return
        finally:
            qmp.close()
        meta = snap.with_name(f"{snap.stem}.json.{os.getpid()}.tmp")
        meta.write_text(json.dumps(self.hello))
        meta.replace(snap.with_suffix(".json"))
        tmp.replace(snap)  # atomic: workers booting at once write the same guest
        _prune_snapshots()

    def stop(self) -> None:
        self.kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self) -> None:
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and self.proc.stdin:
            self.proc.stdin.close()

    def restart(self) -> None:
        t0 = time.monotonic()
        self.kill()
        self.restarts += 1
        try:
            self.start()
        finally:
            self.restart_seconds += time.monotonic() - t0

    def __enter__(self) -> VM:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- console -------------------------------------------------------------------
    def _pump_console(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout
        log = open(self.console_path, "ab")
        try:
            while True:
                chunk = proc.stdout.read1(65536)  # type: ignore[attr-defined]
                if not chunk:
                    break
                try:
                    log.write(chunk)
                    log.flush()
                    if log.tell() > CONSOLE_LOG_MAX_BYTES:  # days of fuzzing, bounded
                        log.close()
                        self.console_path.replace(self.console_path.with_name(
                            self.console_path.name + ".1"))
                        log = open(self.console_path, "ab")
                except OSError:
                    pass  # a full disk: the scanner below still sees every line
                reports = self.scanner.feed(chunk.decode("utf-8", "replace"))
                with self._console_lock:
                    self._console_tail += chunk
                    del self._console_tail[:-CONSOLE_TAIL_BYTES]
                    self._reports += reports
        finally:
            log.close()

    def _note(self, text: str) -> None:
        """A line of the host's own in the console log and its kept tail."""
        line = f"\n[host] {text}\n"
        with open(self.console_path, "a") as log:
            log.write(line)
        with self._console_lock:
            self._console_tail += line.encode()
            del self._console_tail[:-CONSOLE_TAIL_BYTES]

    def sysrq(self, keys: str = SYSRQ_KEYS, wait: float = SYSRQ_WAIT) -> bool:
        """Magic SysRq on the serial console: for each key a BREAK (QMP
        chardev-send-break on the console's chardev; the 8250 driver then takes the
        next character as a SysRq key, uart_handle_break) and the key on qemu's stdin;
        then `wait` seconds for the console to print what they show. For a guest that
        does not answer, before it is killed: what its tasks and CPUs were doing goes
        into the console log and the tail a finding keeps. False (noted in the log)
        where it could not: a kernel without CONFIG_MAGIC_SYSRQ, qemu gone."""
        if not kernel_has_sysrq(self.cfg.kernel):
            self._note(f"no SysRq: {self.cfg.kernel / 'config'} has no "
                       "CONFIG_MAGIC_SYSRQ_SERIAL=y")
            return False
        proc = self.proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            return False
        self._note(f"SysRq {keys}: the guest does not answer")
        try:
            qmp = QMP(self.workdir / "qmp.sock", timeout=5.0)
        except (OSError, VMError) as e:
            self._note(f"no SysRq: qemu's QMP socket: {e}")
            return False
        try:
            for key in keys:
                qmp.cmd("chardev-send-break", id=SERIAL_CHARDEV)
                time.sleep(0.2)  # the guest takes the break's interrupt first
                proc.stdin.write(key.encode())
                proc.stdin.flush()
                time.sleep(0.2)
        except (OSError, VMError) as e:
            self._note(f"SysRq stopped: {e}")
            return False
        finally:
            qmp.close()
        time.sleep(wait)
        return True

    def console_tail(self, n: int = 8192) -> str:
        with self._console_lock:
            return self._console_tail[-n:].decode("utf-8", "replace")

    def take_console_reports(self) -> list[Report]:
        with self._console_lock:
            r, self._reports = self._reports, []
        return r

    # -- channel ---------------------------------------------------------------------
    def _check_alive(self, doing: str) -> None:
        if self.proc and self.proc.poll() is not None:
            time.sleep(0.2)  # let the console thread drain
            reports = self.take_console_reports() + self.scanner.flush()
            raise GuestCrash(f"qemu exited (status {self.proc.returncode}) while {doing}",
                             reports, self.console_tail())

    def _recv(self, timeout: float, doing: str) -> tuple[int, bytes]:
        assert self.sock
        end = time.monotonic() + timeout
        head = self._recv_into(bytearray(channel.FRAME.size), end, timeout, doing)
        kind, length = channel.FRAME.unpack(head)
        return kind, bytes(self._recv_into(bytearray(length), end, timeout, doing))

    def _recv_into(self, buf: bytearray, end: float, timeout: float, doing: str) -> bytearray:
        assert self.sock
        view = memoryview(buf)
        got = 0
        while got < len(buf):
            left = end - time.monotonic()
            if left <= 0:
                self.sysrq()
                reports = self.take_console_reports() + self.scanner.flush()
                raise GuestCrash(f"no answer from the guest after {timeout:.0f}s while {doing}",
                                 reports, self.console_tail(CONSOLE_TAIL_BYTES))
            self.sock.settimeout(min(left, 0.5))
            try:
                k = self.sock.recv_into(view[got:])
            except TimeoutError:
                self._check_alive(doing)
                continue
            if not k:
                self._check_alive(doing)
                time.sleep(0.1)
                self._check_alive(doing)
                raise GuestCrash(f"agent channel closed while {doing}", [], self.console_tail())
            got += k
        return buf

    def _send(self, kind: int, payload: bytes = b"", timeout: float = 120.0) -> None:
        assert self.sock
        self.sock.settimeout(timeout)  # a guest that stops reading must not block us forever
        try:
            self.sock.sendall(channel.pack(kind, payload))
        except TimeoutError:
            self.sysrq()
            reports = self.take_console_reports() + self.scanner.flush()
            raise GuestCrash(f"guest stopped reading its channel for {timeout:.0f}s",
                             reports, self.console_tail(CONSOLE_TAIL_BYTES)) from None

    def execute(self, wire: bytes, timeout: float = 60.0) -> RawRun:
        """Run one encoded program. Raises GuestCrash if the guest dies or hangs."""
        self.send_program(wire)
        return self.receive_results(timeout)

    def send_program(self, wire: bytes) -> None:
        """The first half of execute: the guest starts the program, and the host may work
        until receive_results (fuzz.backend.VMBackend.submit). Raises GuestCrash."""
        t0 = time.monotonic()
        try:
            self._send(channel.EXEC, wire)
        finally:
            self.exec_seconds += time.monotonic() - t0

    def receive_results(self, timeout: float = 60.0) -> RawRun:
        """The second half of execute: the results of the program send_program sent.
        Only the time spent waiting here counts in exec_seconds: what the host did
        between the halves was its own work, done while the guest ran."""
        t0 = time.monotonic()
        try:
            kind, payload = self._recv(timeout, "running a program")
        finally:
            self.exec_seconds += time.monotonic() - t0
        _expect(kind, channel.RESULT, payload)
        return self._count(unpack_response(payload))

    def _count(self, raw: RawRun) -> RawRun:
        """Add one program's guest time, by part, to the VM's totals."""
        self.executor_ns["setup"] += raw.setup_ns
        self.executor_ns["calls"] += raw.calls_ns
        self.executor_ns["teardown"] += raw.teardown_ns
        self.agent_ns["agent"] += raw.agent_ns
        self.agent_ns["kmsg"] += raw.kmsg_ns
        self.agent_ns["send"] += raw.send_ns
        return raw

    def execute_batch(self, wires: list[bytes], timeout: float = 120.0
                      ) -> tuple[list[RawRun | None], int]:
        """Run encoded programs one after the other in one round trip (the agent's
        EXEC_BATCH: each exactly as execute runs it, on its own /dev/iommu): their
        results in order (None: the agent found it malformed) and the guest's ns for
        all. The caller checks each result in order: a program's results after one that
        left the kernel tainted are void (run them again after a restart)."""
        payload = len(wires).to_bytes(4, "little") + b"".join(
            len(w).to_bytes(4, "little") + w for w in wires)
        t0 = time.monotonic()
        try:
            self._send(channel.EXEC_BATCH, payload)
            kind, data = self._recv(timeout, f"running a batch of {len(wires)} programs")
        finally:
            self.exec_seconds += time.monotonic() - t0
        _expect(kind, channel.BATCH_RESULT, data)
        count, _, guest_ns = channel.BATCH_HEAD.unpack_from(data)
        off = channel.BATCH_HEAD.size
        out: list[RawRun | None] = []
        for _ in range(count):
            n = int.from_bytes(data[off:off + 4], "little")
            out.append(self._count(unpack_response(data[off + 4:off + 4 + n])) if n else None)
            off += 4 + n
        return out, guest_ns

    def run_command(self, argv: list[str], timeout: float = 60.0, stdin: str = "",
                    cwd: str | None = None) -> dict:
        """Run a host command in the guest (LKDTM triggers, the C benchmark loop,
        reproducers): the host's root is mounted over 9p in the guest on first use
        and the command runs chrooted into it. Returns rc, stdout, stderr and the
        kernel log lines logged meanwhile (kmsg)."""
        env = [f"PYTHONPATH={REPO}"]
        data = stdin.encode()
        strings = b"".join(s.encode() + b"\0" for s in [cwd or str(REPO), *argv, *env])
        head = channel.RUN_HEAD.pack(int(timeout * 1000), len(argv), len(env), len(data))
        self._send(channel.RUN, head + strings + data)
        kind, payload = self._recv(timeout + 30, f"running {argv[0]}")
        _expect(kind, channel.RUN_DONE, payload)
        rc, *lens = channel.RUN_DONE_HEAD.unpack_from(payload)
        off = channel.RUN_DONE_HEAD.size
        out = []
        for n in lens:
            out.append(payload[off:off + n].decode("utf-8", "replace"))
            off += n
        return {"rc": rc, "stdout": out[0], "stderr": out[1], "kmsg": out[2]}

    def set_pool(self, enabled: bool) -> None:
        """Whether the executor keeps buffers mapped between programs (its buffer
        pool, on by default; off: every buffer is mapped afresh, for comparison)."""
        self._send(channel.POOL, int(enabled).to_bytes(4, "little"))
        kind, _ = self._recv(10, "setting the buffer pool")
        if kind != channel.PONG:
            raise VMError(f"unexpected frame {kind} from the agent")

    def set_fault_verbose(self, level: int) -> None:
        """How the kernel logs an injected fault: 0 quietly (the default), 1 a line, 2
        the line and a stack trace of the fault point (fuzz.faults reads it)."""
        self._send(channel.FAULTS, int(level).to_bytes(4, "little"))
        kind, _ = self._recv(10, "setting the fault injection verbosity")
        if kind != channel.PONG:
            raise VMError(f"unexpected frame {kind} from the agent")

    def scan_leaks(self, timeout: float = 300.0) -> str:
        """kmemleak's report of objects unreferenced for at least 5 s (its minimum
        age), then cleared; "" when there are none. Needs VMConfig.kmemleak."""
        self._send(channel.LEAKS)
        kind, payload = self._recv(timeout, "scanning for leaks")
        if kind != channel.LEAK_REPORT:
            raise VMError(f"unexpected frame {kind} from the agent")
        err = int.from_bytes(payload[:4], "little", signed=True)
        if err:
            raise VMError(f"kmemleak scan failed: {os.strerror(err)} (is the VM booted with "
                          "kmemleak=on? VMConfig.kmemleak)")
        return payload[4:].decode("utf-8", "replace")

    def ping(self, timeout: float = 10.0) -> bool:
        self._send(channel.PING, b"x")
        kind, _ = self._recv(timeout, "ping")
        return kind == channel.PONG
