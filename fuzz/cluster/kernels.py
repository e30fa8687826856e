"""Shipping a built kernel to the nodes that lack it: content-addressed by the
build key (fuzz.kernel.cache_key, in manifest.json), checked by the image's hash,
unpacked into the node's own kernel cache, never built there.

A worker node needs what the VM boots and what findings record: bzImage, config,
System.map and manifest.json (about 10 MB). vmlinux (70 MB of line tables) stays on
the manager's node, where the line figures, symbolization and minimization run;
`shipped.json` in the node's copy says so.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fuzz import kernel
from fuzz.paths import cache_dir

FILES = ("bzImage", "config", "System.map", "manifest.json")
MARKER = "shipped.json"


class ShipError(RuntimeError):
    pass


@dataclass(frozen=True)
class Offer:
    """What the manager's node has: enough to tell whether a node's copy is the
    same kernel, without the bytes."""

    key: str
    image_sha256: str
    archive_sha256: str
    size: int


def key_of(kdir: Path) -> str:
    """The build key; a prebuilt directory without a manifest is named by its image."""
    try:
        return str(kernel.manifest(kdir)["key"])
    except (kernel.KernelError, KeyError):
        return "img-" + kernel.sha256_file(kdir / "bzImage")[:16]


def pack(kdir: Path) -> tuple[Offer, bytes]:
    """The offer and the archive (gzip'd tar of FILES that exist, bzImage required)."""
    kdir = Path(kdir)
    if not (kdir / "bzImage").exists():
        raise ShipError(f"{kdir}: no bzImage to ship (run `iommufd-fuzz kernel build`)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for name in FILES:
            if (kdir / name).exists():
                tar.add(kdir / name, arcname=name)
    data = buf.getvalue()
    return Offer(key_of(kdir), kernel.sha256_file(kdir / "bzImage"),
                 hashlib.sha256(data).hexdigest(), len(data)), data


def local_dir(offer: Offer) -> Path:
    return cache_dir() / "kernels" / offer.key


def _beside(offer: Offer) -> Path:
    return local_dir(offer).with_name(f"{offer.key}+{offer.image_sha256[:8]}")


def find(offer: Offer) -> Path | None:
    """This node's copy of the offered kernel, if it has one: the key's directory if
    its image is the same, else a copy shipped beside it (a node whose own build of
    the key differs keeps it; the campaign runs the manager's)."""
    for d in (local_dir(offer), _beside(offer)):
        if (d / "manifest.json").exists() or (d / MARKER).exists():
            try:
                if kernel.sha256_file(d / "bzImage") == offer.image_sha256:
                    return d
            except OSError:
                continue
    return None


def install(offer: Offer, data: bytes, source: str = "") -> Path:
    """Unpack an archive into this node's kernel cache, atomically, under the
    cache's lock for the key (so the workers of one node fetch it once)."""
    if hashlib.sha256(data).hexdigest() != offer.archive_sha256:
        raise ShipError(f"kernel {offer.key}: the archive arrived damaged (sha256 differs)")
    have = find(offer)
    if have:
        return have
    dest = local_dir(offer)
    if dest.exists():  # this node built the key itself, to other bytes: keep both
        dest = _beside(offer)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{offer.key}-", dir=dest.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar.getmembers():
                if m.name not in FILES or not m.isfile():
                    raise ShipError(f"kernel {offer.key}: unexpected archive member {m.name!r}")
            tar.extractall(tmp, filter="data")
        if kernel.sha256_file(tmp / "bzImage") != offer.image_sha256:
            raise ShipError(f"kernel {offer.key}: the unpacked bzImage is not the offered one")
        (tmp / MARKER).write_text(json.dumps({
            "key": offer.key, "from": source, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime()),
            "files": sorted(os.listdir(tmp)), "not_shipped": ["vmlinux"],
            "note": "shipped by a cluster campaign; line figures and symbolization need the "
                    "vmlinux of the manager's node"}, indent=1) + "\n")
        os.chmod(tmp, 0o755)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def ensure(offer: Offer, fetch: Callable[[], bytes], source: str = "") -> tuple[Path, bool]:
    """This node's copy of the kernel, fetched and installed if it has none (once per
    node: the other workers of the node wait on the lock, then find it).
    Returns the directory and whether it was shipped now."""
    have = find(offer)
    if have:
        return have, False
    lock = cache_dir() / "locks" / f"ship-{offer.key}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        have = find(offer)
        if have:
            return have, False
        return install(offer, fetch(), source), True
