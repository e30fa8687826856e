#!/bin/sh
# PID 1 of the fuzzing guest. The root filesystem is the host's, read-only over
# virtio-9p; the kernel passes fuzz_python/fuzz_repo/fuzz_exec from its command
# line as environment variables. If the agent exits, init exits and the kernel
# panics, which (panic=-1, qemu -no-reboot) ends qemu where the host sees it.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
# Scratch space on /run, not over /tmp: the checkout, its venv or the cache may
# live under the host's /tmp, and a tmpfs there would hide them from the guest.
mount -t tmpfs tmpfs /run
mkdir -p /run/tmp /dev/shm && mount -t tmpfs tmpfs /dev/shm
export HOME=/run/tmp TMPDIR=/run/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$fuzz_repo"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd "$fuzz_repo" || exit 1
exec "$fuzz_python" -m fuzz.guest.agent --executor "$fuzz_exec"
