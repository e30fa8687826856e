"""The VM layer: boots the test kernel in qemu and talks to the guest agent.

qemu runs the kernel with the host's root filesystem shared read-only over
virtio-9p and the agent's channel on a virtio-serial port (the console stays a
plain log). The console is read by a thread into a log file and a splat
scanner, so an oops that kills the guest is still seen. Booting with
`oops=panic panic=-1` and qemu's `-no-reboot` turns a dead guest into a qemu exit.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fuzz import channel
from fuzz.executor import build
from fuzz.executor.runner import RawRun, unpack_response
from fuzz.paths import REPO
from fuzz.report import LogScanner, Report

GUEST_INIT = REPO / "fuzz" / "guest" / "init.sh"


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
    memory_mb: int = 2048
    cpus: int = 1
    accel: str = "tcg"
    boot_timeout: float = 180.0
    hugepages: int = 64  # 2 MiB pages reserved for hugetlb buffers
    extra_cmdline: str = ""
    python: str = field(default_factory=lambda: sys.executable)


def _die_with_parent() -> None:
    """qemu must not outlive us: libFuzzer leaves through exit(), a campaign may be
    killed; PR_SET_PDEATHSIG takes the VM down with its owner."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def kvm_usable() -> bool:
    """True only if /dev/kvm can actually create a VM (here it exists but cannot)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    try:
        import fcntl

        vm = fcntl.ioctl(fd, 0xAE01, 0)  # KVM_CREATE_VM
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def qemu_binary() -> str:
    q = shutil.which("qemu-system-x86_64")
    if not q:
        raise VMError("qemu-system-x86_64 not found: install Debian's qemu-system-x86 "
                      "(the README's setup does)")
    return q


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
        self.boot_seconds = 0.0
        self.restarts = 0

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        bz = self.cfg.kernel / "bzImage"
        if not bz.exists():
            raise VMError(f"no kernel image at {bz}: run `iommufd-fuzz kernel build` first")
        exec_dir = build.ensure_built()
        sock_path = self.workdir / "agent.sock"
        sock_path.unlink(missing_ok=True)
        accel = self.cfg.accel
        if accel == "kvm" and not kvm_usable():
            raise VMError("--accel kvm asked for, but /dev/kvm cannot create a VM here")
        cmdline = " ".join([
            "console=ttyS0", "root=hostroot", "rootfstype=9p",
            "rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose", "ro",
            f"init={GUEST_INIT}", "oops=panic", "panic=-1", "panic_on_warn=0", "nokaslr",
            "loglevel=5", f"hugepages={self.cfg.hugepages}", "kasan.fault=report",
            # every KASAN report, not only the first one since boot
            "kasan_multi_shot",
            "hung_task_timeout_secs=60", f"fuzz_python={self.cfg.python}",
            f"fuzz_repo={REPO}", f"fuzz_exec={exec_dir}", self.cfg.extra_cmdline,
        ])
        argv = [
            qemu_binary(), "-accel", accel, "-m", str(self.cfg.memory_mb),
            "-smp", str(self.cfg.cpus), "-cpu", "max" if accel == "tcg" else "host",
            "-kernel", str(bz), "-append", cmdline.strip(),
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
            "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-device", "virtio-rng-pci",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={sock_path},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=iommufd-fuzz.agent",
        ]
        self._console_tail.clear()
        self._reports = []
        self.scanner = LogScanner()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        threading.Thread(target=self._pump_console, args=(self.proc,), daemon=True).start()
        deadline = t0 + self.cfg.boot_timeout
        while not sock_path.exists():
            self._check_alive("booting")
            if time.monotonic() > deadline:
                self.kill()
                raise VMError("qemu did not create the agent socket in time")
            time.sleep(0.05)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(sock_path))
        try:
            kind, payload = self._recv(deadline - time.monotonic(), "waiting for the agent")
        except GuestCrash as e:
            raise VMError(f"the guest did not boot to the agent: {e.what}\n"
                          f"--- console tail ---\n{e.console_tail}") from None
        if kind != channel.HELLO:
            raise VMError(f"agent sent frame {kind} instead of HELLO: {payload[:200]!r}")
        self.hello = json.loads(payload)
        self.boot_seconds = time.monotonic() - t0

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

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def __enter__(self) -> VM:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- console -------------------------------------------------------------------
    def _pump_console(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout
        with open(self.console_path, "ab") as log:
            while True:
                chunk = proc.stdout.read1(65536)  # type: ignore[attr-defined]
                if not chunk:
                    break
                log.write(chunk)
                log.flush()
                reports = self.scanner.feed(chunk.decode("utf-8", "replace"))
                with self._console_lock:
                    self._console_tail += chunk
                    del self._console_tail[:-65536]
                    self._reports += reports

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
                reports = self.take_console_reports() + self.scanner.flush()
                raise GuestCrash(f"no answer from the guest after {timeout:.0f}s while {doing}",
                                 reports, self.console_tail())
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
            reports = self.take_console_reports() + self.scanner.flush()
            raise GuestCrash(f"guest stopped reading its channel for {timeout:.0f}s",
                             reports, self.console_tail()) from None

    def execute(self, wire: bytes, timeout: float = 60.0) -> RawRun:
        """Run one encoded program. Raises GuestCrash if the guest dies or hangs."""
        self._send(channel.EXEC, wire)
        kind, payload = self._recv(timeout, "running a program")
        if kind == channel.ERROR:
            raise VMError("guest agent failed:\n" + payload.decode("utf-8", "replace"))
        if kind != channel.RESULT:
            raise VMError(f"unexpected frame {kind} from the agent")
        return unpack_response(payload)

    def run_command(self, argv: list[str], timeout: float = 60.0, stdin: str = "") -> dict:
        """Run a helper command in the guest (LKDTM triggers, the C benchmark loop)."""
        self._send(channel.RUN, json.dumps({"argv": argv, "timeout": timeout,
                                             "stdin": stdin}).encode())
        kind, payload = self._recv(timeout + 30, f"running {argv[0]}")
        if kind == channel.ERROR:
            raise VMError("guest agent failed:\n" + payload.decode("utf-8", "replace"))
        return json.loads(payload)

    def ping(self, timeout: float = 10.0) -> bool:
        self._send(channel.PING, b"x")
        kind, _ = self._recv(timeout, "ping")
        return kind == channel.PONG
