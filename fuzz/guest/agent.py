"""The guest agent: a long-lived process in the VM that runs programs for the host.

It reads frames from the virtio-serial port, runs each program with the C
executor on a fresh /dev/iommu fd (KCOV on), and answers with the raw results
plus the kernel log lines the program produced (read from /dev/kmsg).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
import traceback
from pathlib import Path

from fuzz import channel
from fuzz.executor.runner import Runner, pack_response

PORT_NAME = "iommufd-fuzz.agent"


def find_port(name: str = PORT_NAME) -> str:
    for d in glob.glob("/sys/class/virtio-ports/*"):
        try:
            if Path(d, "name").read_text().strip() == name:
                return "/dev/" + os.path.basename(d)
        except OSError:
            continue
    raise SystemExit(f"agent: no virtio-serial port named {name}")


class Kmsg:
    """New kernel log records since the last read, as '[sec.usec] text' lines."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self) -> bytes:
        lines = []
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # overwritten records: keep going
                continue
            if not rec:
                break
            head, _, text = rec.decode("utf-8", "replace").partition(";")
            fields = head.split(",")
            usec = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0
            caller = next((f[7:] for f in fields[3:] if f.startswith("caller=")), "")
            msg = text.split("\n", 1)[0]
            # the console's format, so one parser reads both (the caller id keeps
            # interleaved reports from different tasks apart)
            who = f"[{caller:>6}]" if caller else ""
            lines.append(f"[{usec // 1000000:5d}.{usec % 1000000:06d}]{who} {msg}")
        return ("\n".join(lines) + "\n").encode() if lines else b""


def run_command(req: dict) -> dict:
    import subprocess  # only LKDTM triggers and benchmarks need it: keep start-up light

    try:
        p = subprocess.run(req["argv"], input=req.get("stdin", ""), capture_output=True,
                           text=True, timeout=req.get("timeout", 60))
        return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"rc": -1, "stdout": "", "stderr": str(e)}


AGENT_FD_BASE = 500


def _high(fd: int) -> int:
    """Move an agent fd out of the way: programs' fds (the fresh iommufd, access
    fds) then start at 3 in every run, and small literal fd numbers in a program
    hit nothing of ours."""
    import fcntl

    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, AGENT_FD_BASE)
    os.close(fd)
    return new


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--executor", type=Path, required=True)
    ap.add_argument("--port", default=None)
    args = ap.parse_args()
    fd = _high(os.open(args.port or find_port(), os.O_RDWR))
    kmsg = Kmsg()
    kmsg.fd = _high(kmsg.fd)
    runner = Runner(args.executor)
    if runner.kcov:
        runner.kcov.fd = _high(runner.kcov.fd)
    hello = {"uname": os.uname().release, "kcov": runner.kcov is not None,
             "boot_s": time.clock_gettime(time.CLOCK_BOOTTIME), "pid": os.getpid()}
    channel.write_frame(fd, channel.HELLO, json.dumps(hello).encode())
    while True:
        kind, payload = channel.read_frame(fd)
        try:
            if kind == channel.EXEC:
                kmsg.read()  # drop anything logged between programs
                parts = runner.run(payload)
                # read after the run: the log lines (splats) this program caused
                channel.write_frame(fd, channel.RESULT, pack_response(*parts, kmsg.read()))
            elif kind == channel.PING:
                channel.write_frame(fd, channel.PONG, payload)
            elif kind == channel.RUN:
                res = run_command(json.loads(payload))
                res["kmsg"] = kmsg.read().decode("utf-8", "replace")
                channel.write_frame(fd, channel.RUN_DONE, json.dumps(res).encode())
            else:
                channel.write_frame(fd, channel.ERROR, f"unknown frame {kind}".encode())
        except Exception:
            channel.write_frame(fd, channel.ERROR, traceback.format_exc().encode())


if __name__ == "__main__":
    main()
