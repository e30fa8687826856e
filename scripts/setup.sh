#!/usr/bin/env bash
# Sets up everything iommufd-fuzz needs on a fresh Debian 12 machine, idempotently:
# Debian packages (qemu, kernel build tools, the pinned kernel source), the
# Python venv in .venv, the C executor, and the default test kernel (cached
# outside the repo, so a second run is quick).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== setup: %s\n' "$*" >&2; }
fail() { printf 'setup: FAILED at step: %s\n' "$*" >&2; exit 1; }

PKGS=(qemu-system-x86 qemu-utils build-essential bc bison flex libelf-dev libssl-dev cpio
      xz-utils kmod perl patch python3-venv lcov)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  step "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install ${missing[*]}"
fi

PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
  for c in python3.11 python3.12 python3; do
    if command -v "$c" >/dev/null; then PY=$(command -v "$c"); break; fi
  done
fi
[[ -n "$PY" ]] || fail "no python3 found"
if [[ ! -x .venv/bin/python ]]; then
  step "creating .venv with $PY"
  "$PY" -m venv .venv || fail "python -m venv"
fi
# EXTRAS: the optional dependency sets to install (make test adds ray, for tests/test_ray.py)
EXTRAS=${EXTRAS:-dev}
IMPORTS="import fuzz, cffi, hypothesis, atheris, psutil, pytest, elftools"
[[ ",$EXTRAS," == *,ray,* ]] && IMPORTS+=", ray"
if ! .venv/bin/python -c "$IMPORTS" 2>/dev/null \
   || [[ pyproject.toml -nt .venv/.installed ]]; then
  step "installing Python dependencies into .venv (extras: $EXTRAS)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null || fail "pip upgrade"
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]" || fail "pip install -e .[$EXTRAS]"
  touch .venv/.installed
fi

step "building the C executor"
.venv/bin/python -c 'from fuzz.executor import build; print(build.ensure_built())' \
  || fail "building the C executor"

# A cluster's worker nodes get the kernel from the manager's node (SKIP_KERNEL=1).
if [[ -z "${SKIP_KERNEL:-}" ]]; then
  step "building (or finding cached) the default test kernel"
  .venv/bin/iommufd-fuzz kernel build || fail "iommufd-fuzz kernel build"
fi
