"""Building the test kernel: Debian's linux-source-6.12 (or the user's tree),
tinyconfig + the fragments in kernel-config/, optional patches.

Results are cached outside the repository, keyed by everything that shapes the
binary (source identity, fragments, patches, this builder's recipe):

    <cache>/src/<debian-version>/linux-source-6.12/   extracted Debian source
    <cache>/build/<source-key>/                       make's object dir (incremental)
    <cache>/kernels/<key>/{bzImage,vmlinux,config,System.map,manifest.json}
    <cache>/kernels/<key>/gcov/{obj,src}/drivers/iommu/iommufd/  (--coverage gcov only)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from fuzz.paths import REPO, cache_dir

DEBIAN_PACKAGE = "linux-source-6.12"
DEFAULT_DEBIAN_VERSION = "6.12.117-1~deb12u1"
TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
FRAGMENT_DIR = REPO / "kernel-config"
# Coverage variants: an extra fragment and patch each (so they are part of the cache key).
COVERAGE_DIR = FRAGMENT_DIR / "coverage"
COVERAGE_VARIANTS = {"gcov": ("gcov.config", "gcov-iommufd.patch")}
GCOV_SUBDIR = "drivers/iommu/iommufd"
RECIPE_VERSION = 2  # bump when the way we configure or build changes
BUILD_TOOLS = ("make", "gcc", "bc", "bison", "flex", "perl", "xz")
BUILD_PACKAGES = ("build-essential", "bc", "bison", "flex", "libelf-dev", "libssl-dev", "cpio",
                  "xz-utils", "kmod", "perl")


class KernelError(RuntimeError):
    """A step of getting or building the kernel failed; the message names it."""


@dataclass
class BuildRequest:
    debian_version: str = DEFAULT_DEBIAN_VERSION
    source: Path | None = None  # a kernel tree or tarball the user has
    patches: list[Path] = field(default_factory=list)
    fragments: list[Path] = field(default_factory=list)  # on top of kernel-config/*.config
    jobs: int = (os.cpu_count() or 1) + 1
    coverage: str | None = None  # "gcov": GCOV counters for drivers/iommu/iommufd/


def log(msg: str) -> None:
    print(f"[kernel] {msg}", file=sys.stderr, flush=True)


def default_fragments() -> list[Path]:
    return sorted(FRAGMENT_DIR.glob("*.config"))


# -- source ---------------------------------------------------------------------------
def _dpkg_version(pkg: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}|${Version}", pkg],
                             capture_output=True, text=True)
    except FileNotFoundError:
        return None
    status, _, ver = out.stdout.partition("|")
    return ver if out.returncode == 0 and "installed" in status.split() else None


def install_debian_source(version: str) -> Path:
    """apt-get install linux-source-6.12=VERSION unless it is already there."""
    have = _dpkg_version(DEBIAN_PACKAGE)
    if have != version or not TARBALL.exists():
        log(f"installing {DEBIAN_PACKAGE}={version} with apt-get (have: {have or 'none'})")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for argv in (["apt-get", "update"],
                     ["apt-get", "install", "-y", "--no-install-recommends", "--allow-downgrades",
                      f"{DEBIAN_PACKAGE}={version}"]):
            p = subprocess.run(argv, capture_output=True, text=True, env=env)
            if p.returncode:
                raise KernelError(f"step `{' '.join(argv)}` failed:\n{p.stdout[-2000:]}"
                                  f"{p.stderr[-2000:]}")
    if not TARBALL.exists():
        raise KernelError(f"{DEBIAN_PACKAGE} is installed but {TARBALL} is missing")
    return TARBALL


def _extract(tarball: Path, dest_parent: Path) -> Path:
    """Extract into dest_parent atomically; return the single top directory."""
    dest_parent.mkdir(parents=True, exist_ok=True)
    done = dest_parent / ".extracted"
    if done.exists():
        return Path(done.read_text().strip())
    log(f"extracting {tarball} (about 20 s)")
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_parent))
    try:
        p = subprocess.run(["tar", "-xf", str(tarball), "-C", str(tmp)], capture_output=True,
                           text=True)
        if p.returncode:
            raise KernelError(f"extracting {tarball} failed: {p.stderr[-2000:]}")
        (top,) = [d for d in tmp.iterdir() if d.is_dir()]
        final = dest_parent / top.name
        if final.exists():
            shutil.rmtree(final)
        top.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done.write_text(str(final))
    return final


def source_tree(debian_version: str = DEFAULT_DEBIAN_VERSION) -> Path:
    """The extracted Debian kernel source (installing and extracting it if needed)."""
    dest = cache_dir() / "src" / debian_version
    if (dest / ".extracted").exists():
        return Path((dest / ".extracted").read_text().strip())
    return _extract(install_debian_source(debian_version), dest)


def sha256_file(p: Path) -> str:
    """A file's sha256, read in 1 MiB chunks (kernel images, configs, patches)."""
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _kernelversion(tree: Path) -> str:
    head = (tree / "Makefile").read_text(errors="replace")[:2000]
    parts = {k: re.search(rf"^{k} = (\S*)", head, re.M) for k in
             ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION")}
    v = [m.group(1) if m else "" for m in parts.values()]
    return f"{v[0]}.{v[1]}.{v[2]}{v[3]}"


def resolve_source(req: BuildRequest) -> tuple[Path, str, str]:
    """(tree, identity for the cache key, human description)."""
    if req.source is None:
        tree = source_tree(req.debian_version)
        return tree, f"debian:{req.debian_version}", f"Debian {DEBIAN_PACKAGE} {req.debian_version}"
    src = req.source.resolve()
    if not src.exists():
        raise KernelError(f"--source {src}: no such file or directory")
    if src.is_file():
        digest = sha256_file(src)
        tree = _extract(src, cache_dir() / "src" / f"tarball-{digest[:16]}")
        return tree, f"tarball:{digest}", f"tarball {src}"
    if not (src / "Makefile").exists() or not (src / "drivers/iommu/iommufd").is_dir():
        raise KernelError(f"--source {src}: not a kernel tree with drivers/iommu/iommufd")
    # A user's tree can change under us: its identity is its path and version, and
    # make's incremental build picks up edits (the build always runs make for it).
    return src, f"tree:{src}:{_kernelversion(src)}", f"tree {src}"


# -- cache key and lock ------------------------------------------------------------------
def cache_key(identity: str, fragments: list[Path], patches: list[Path]) -> str:
    h = hashlib.sha256(f"recipe {RECIPE_VERSION}\nsource {identity}\n".encode())
    for f in fragments:
        h.update(b"fragment\n" + f.read_bytes())
    for p in patches:
        h.update(b"patch\n" + p.read_bytes())
    return h.hexdigest()[:20]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


# -- build ----------------------------------------------------------------------------------
def check_tools() -> None:
    missing = [t for t in BUILD_TOOLS if not shutil.which(t)]
    if missing:
        raise KernelError(f"missing build tools: {', '.join(missing)} (install Debian packages: "
                          f"{' '.join(BUILD_PACKAGES)})")


def _run_logged(argv: list[str], cwd: Path, logf: Path, step: str, progress: bool = False) -> None:
    with open(logf, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        p = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        last = time.monotonic()
        while p.poll() is None:
            time.sleep(1)
            if progress and time.monotonic() - last > 30:
                last = time.monotonic()
                log(f"{step}: {_last_line(logf)}")
    if p.returncode:
        tail = "\n".join(logf.read_text(errors="replace").splitlines()[-40:])
        raise KernelError(f"step `{step}` failed (exit {p.returncode}); log {logf}; last lines:\n"
                          f"{tail}")


def _last_line(logf: Path) -> str:
    with open(logf, "rb") as f:
        f.seek(max(0, f.seek(0, 2) - 400))
        lines = f.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else ""


def _apply_patches(tree: Path, patches: list[Path], key: str) -> Path:
    """A hard-linked copy of the tree with the patches applied (patch replaces
    files rather than writing through links, so the pristine tree is untouched)."""
    dest = cache_dir() / "src" / f"patched-{key}"
    if (dest / ".patched").exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    log(f"copying the tree to apply {len(patches)} patch(es)")
    p = subprocess.run(["cp", "-al", str(tree), str(dest)], capture_output=True, text=True)
    if p.returncode:
        raise KernelError(f"copying the kernel tree failed: {p.stderr[-1000:]}")
    for patch in patches:
        p = subprocess.run(["patch", "-p1", "--forward", "--batch", "-i", str(patch.resolve())],
                           cwd=dest, capture_output=True, text=True)
        if p.returncode:
            raise KernelError(f"patch {patch} does not apply: {p.stdout[-2000:]}{p.stderr[-500:]}")
    (dest / ".patched").write_text("\n".join(map(str, patches)))
    return dest


def _config_lines(fragments: list[Path]) -> dict[str, str]:
    want: dict[str, str] = {}
    for f in fragments:
        for line in f.read_text().splitlines():
            m = re.match(r"^(CONFIG_\w+)=(.*)$", line.strip())
            if m:
                want[m.group(1)] = m.group(2)
            m = re.match(r"^# (CONFIG_\w+) is not set", line.strip())
            if m:
                want[m.group(1)] = "n"
    return want


def _check_config(config: Path, want: dict[str, str]) -> None:
    have: dict[str, str] = {}
    for line in config.read_text().splitlines():
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
        if m:
            have[m.group(1)] = m.group(2)
    bad = [f"{k}={v} (got {have.get(k, 'n')})" for k, v in want.items()
           if have.get(k, "n") != v]
    if bad:
        raise KernelError("the kernel config did not take these fragment options (a dependency "
                          "is missing?): " + ", ".join(bad))


def build(req: BuildRequest) -> Path:
    """Build (or find in the cache) the kernel; return its directory."""
    fragments = default_fragments() + [f.resolve() for f in req.fragments]
    if req.coverage:
        if req.coverage not in COVERAGE_VARIANTS:
            raise KernelError(f"--coverage {req.coverage}: unknown (known: "
                              f"{', '.join(COVERAGE_VARIANTS)})")
        frag, patch = COVERAGE_VARIANTS[req.coverage]
        fragments.append(COVERAGE_DIR / frag)
        req = replace(req, patches=[*req.patches, COVERAGE_DIR / patch])
    for f in fragments + req.patches:
        if not f.exists():
            raise KernelError(f"{f}: no such file")
    if not fragments:
        raise KernelError(f"no config fragments in {FRAGMENT_DIR}")
    tree, identity, desc = resolve_source(req)
    key = cache_key(identity, fragments, req.patches)
    out = cache_dir() / "kernels" / key
    user_tree = identity.startswith("tree:")
    if (out / "manifest.json").exists() and not user_tree:
        return out
    check_tools()
    with _locked(cache_dir() / "locks" / f"{key}.lock"):
        if (out / "manifest.json").exists() and not user_tree:
            return out
        if req.patches:
            tree = _apply_patches(tree, req.patches, key)
        # One object dir per source tree, so a config change rebuilds incrementally;
        # two variants of one tree therefore take turns in it (its own lock).
        bdir = cache_dir() / "build" / hashlib.sha256(str(tree).encode()).hexdigest()[:16]
        with _locked(cache_dir() / "locks" / f"build-{bdir.name}.lock"):
            return _build_in(req, tree, bdir, key, identity, desc, fragments, out)


def _build_in(req: BuildRequest, tree: Path, bdir: Path, key: str, identity: str, desc: str,
              fragments: list[Path], out: Path) -> Path:
    bdir.mkdir(parents=True, exist_ok=True)
    logf = bdir / "build.log"
    logf.write_text(f"iommufd-fuzz kernel build {key}\nsource {desc}\n")
    make = ["make", f"O={bdir}", "ARCH=x86_64"]
    t0 = time.monotonic()
    log(f"configuring {desc} in {bdir}")
    # allnoconfig with the fragments as KCONFIG_ALLCONFIG (how tinyconfig itself is
    # made): everything the fragments do not ask for stays off, instead of taking
    # its default when a fragment option makes it visible (NET would pull in IPv6,
    # TTY would pull in VT and HID...), which keeps the build small and fast.
    allconfig = bdir / "fragments.config"
    allconfig.write_text("".join(f.read_text() + "\n" for f in fragments))
    _run_logged(make + [f"KCONFIG_ALLCONFIG={allconfig}", "allnoconfig"], tree, logf,
                "make allnoconfig with the fragments")
    _check_config(bdir / ".config", _config_lines(fragments))
    log(f"building with -j{req.jobs} (about 10-30 min on 2 cores; log {logf})")
    _run_logged(make + [f"-j{req.jobs}", "bzImage"], tree, logf, "make bzImage",
                progress=True)
    seconds = time.monotonic() - t0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=out.parent))
    for src, name in ((bdir / "arch/x86/boot/bzImage", "bzImage"),
                      (bdir / "vmlinux", "vmlinux"), (bdir / ".config", "config"),
                      (bdir / "System.map", "System.map")):
        shutil.copy2(src, tmp / name)
    manifest = {
        "key": key, "source": desc, "source_identity": identity,
        "kernel_version": _kernelversion(tree), "debian_version":
            req.debian_version if req.source is None else None,
        "config_sha256": sha256_file(bdir / ".config"),
        "fragments": [str(f) for f in fragments],
        "patches": [{"file": str(p), "sha256": sha256_file(p)} for p in req.patches],
        "build_seconds": round(seconds, 1), "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                    time.gmtime()),
        "recipe": RECIPE_VERSION,
    }
    if req.coverage == "gcov":
        _keep_gcov_notes(tree, bdir, tmp)
        # the guest's debugfs names each .gcda by the object dir it was compiled in
        manifest.update(coverage="gcov", gcov_objdir=str(bdir))
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log(f"built in {seconds:.0f} s: {out}")
    return out


def _keep_gcov_notes(tree: Path, bdir: Path, out: Path) -> None:
    """What gcov needs later, kept with the kernel (the object dir is shared by
    rebuilds): the .gcno notes and the sources they describe."""
    notes = sorted((bdir / GCOV_SUBDIR).glob("*.gcno"))
    if not notes:
        raise KernelError(f"a --coverage gcov build left no .gcno files in {bdir / GCOV_SUBDIR}"
                          " (did the GCOV_PROFILE patch apply?)")
    (out / "gcov" / "obj" / GCOV_SUBDIR).mkdir(parents=True)
    for n in notes:
        shutil.copy2(n, out / "gcov" / "obj" / GCOV_SUBDIR / n.name)
    shutil.copytree(tree / GCOV_SUBDIR, out / "gcov" / "src" / GCOV_SUBDIR)


def manifest(kernel_dir: Path) -> dict:
    try:
        return json.loads((kernel_dir / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise KernelError(f"{kernel_dir}: not a built kernel directory ({e})") from None


def manifest_or_empty(kernel_dir: Path) -> dict:
    try:
        return manifest(kernel_dir)
    except KernelError:
        return {}


def default_kernel() -> Path:
    """$IOMMUFD_FUZZ_KERNEL if set, else the kernel `kernel build` makes with no
    options (building it if needed)."""
    env = os.environ.get("IOMMUFD_FUZZ_KERNEL")
    if env:
        if not (Path(env) / "bzImage").exists():
            raise KernelError(f"IOMMUFD_FUZZ_KERNEL={env}: no bzImage there")
        return Path(env)
    return build(BuildRequest())



def recorded_kernel(m: dict) -> Path | None:
    """The cached kernel a finding's or reproducer's manifest names (by its key),
    or None if that build is not in this machine's cache."""
    key = m.get("key")
    if not isinstance(key, str) or not re.fullmatch(r"[0-9a-f]{8,64}", key):
        return None
    d = cache_dir() / "kernels" / key
    return d if (d / "bzImage").exists() else None


def build_hint(m: dict) -> str:
    """The `kernel build` command that makes the kernel a manifest describes."""
    argv = ["iommufd-fuzz kernel build"]
    ident = str(m.get("source_identity", ""))
    if ident.startswith("tree:"):
        argv.append(f"--source {ident.split(':')[1]}")
    elif ident.startswith("tarball:"):
        argv.append(f"--source <the tarball {m.get('source', '')!s}>")
    elif m.get("debian_version") and m["debian_version"] != DEFAULT_DEBIAN_VERSION:
        argv.append(f"--debian-version {m['debian_version']}")
    def ours(f: object) -> bool:  # the default fragment, a coverage variant's files
        p = Path(str(f))
        return p.name == "iommufd-fuzz.config" or (p.parent.name == COVERAGE_DIR.name and
                                                   p.parent.parent.name == "kernel-config")

    for p in m.get("patches") or []:
        if isinstance(p, dict) and p.get("file") and not ours(p["file"]):
            argv.append(f"--patch {p['file']}")
    for f in m.get("fragments") or []:
        if not ours(f):
            argv.append(f"--fragment {f}")
    if m.get("coverage"):
        argv.append(f"--coverage {m['coverage']}")
    return " ".join(argv)
