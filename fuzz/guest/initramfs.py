"""Builds the guest's initramfs: the C agent (agent.c + the executor, linked
statically) as /init, and the directories it mounts on. No shell, no Python, no
9p: the guest boots straight to a ready agent.

Cached under the fuzzer's cache directory by the hash of everything that goes in.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from fuzz import channel
from fuzz.executor import build
from fuzz.paths import cache_dir

HERE = Path(__file__).resolve().parent
EXECUTOR = HERE.parent / "executor"
SOURCES = (HERE / "agent.c", EXECUTOR / "executor.c", EXECUTOR / "executor.h",
           Path(__file__), Path(channel.__file__))
FRAMES = ("EXEC", "PING", "RUN", "POOL", "FAULTS", "LEAKS", "EXEC_BATCH", "HELLO", "RESULT",
          "PONG", "RUN_DONE", "ERROR", "LEAK_REPORT", "BATCH_RESULT")


class InitramfsError(RuntimeError):
    pass


def _cc() -> str:
    cc = shutil.which("gcc")
    if not cc:
        raise InitramfsError("building the guest agent: gcc not found (scripts/setup.sh "
                             "installs build-essential)")
    return cc


def _digest() -> str:
    h = hashlib.sha256()
    for p in SOURCES:
        h.update(p.read_bytes())
    h.update(subprocess.run([_cc(), "--version"], capture_output=True).stdout)
    h.update(" ".join(build.uapi_defines()).encode())
    return h.hexdigest()[:16]


def _newc(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
          ino: int = 0) -> bytes:
    """One cpio 'newc' record (what the kernel's initramfs unpacker reads)."""
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    head = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def cpio(agent: bytes) -> bytes:
    d, c, f = 0o040755, 0o020600, 0o100755
    entries = [("dev", d, b"", (0, 0)), ("dev/console", c, b"", (5, 1)),
               ("proc", d, b"", (0, 0)), ("sys", d, b"", (0, 0)), ("run", d, b"", (0, 0)),
               ("tmp", 0o041777, b"", (0, 0)), ("host", d, b"", (0, 0)),
               ("init", f, agent, (0, 0))]
    out = b"".join(_newc(n, m, data, rdev, ino=k + 1)
                   for k, (n, m, data, rdev) in enumerate(entries))
    return out + _newc("TRAILER!!!", 0)


def ensure_built() -> Path:
    """The initramfs for this source; built (in a few seconds) if not cached."""
    out = cache_dir() / "guest" / _digest()
    img = out / "initramfs.cpio"
    if img.exists():
        return img
    out.mkdir(parents=True, exist_ok=True)
    exe = out / f"agent.{os.getpid()}"
    defines = [f"-DCH_{k}={getattr(channel, k)}" for k in FRAMES]
    defines.append(f'-DKMSG_PROGRAM_START="{channel.KMSG_PROGRAM_START}"')
    argv = [_cc(), "-static", "-pthread", "-O2", "-Wall", "-Werror", f"-I{EXECUTOR}", *defines,
            *build.uapi_defines(),
            "-o", str(exe), str(HERE / "agent.c"), str(EXECUTOR / "executor.c")]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode:
        raise InitramfsError(f"building the guest agent failed: {' '.join(argv)}\n{p.stderr}")
    tmp = out / f"initramfs.cpio.{os.getpid()}"
    tmp.write_bytes(cpio(exe.read_bytes()))
    exe.replace(out / "agent")
    tmp.replace(img)  # atomic: concurrent workers build the same bytes
    return img
