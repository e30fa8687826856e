"""main.c's iommufd_ucmd around an ioctl: what the handler sees of a struct the user
gave fewer bytes of than the kernel's (copy_struct_from_user zero-fills the rest),
and what iommufd_ucmd_respond writes back (min(user size, struct size) bytes: a
field past the user's size keeps the user's own value).

Only the HWPT/hw-info ioctls have a minimum size below sizeof (main.c's IOCTL_OP
names an earlier last member), so only they can see a struct cut short."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from fuzz import uapi
from fuzz.model.consts import STRUCT_SIZES
from fuzz.prog.descriptions import OPS

if TYPE_CHECKING:
    from fuzz.model.model import Args


@cache
def field_of(op: str, name: str) -> tuple[int, int]:
    """(offset, size) of an argument's field in the op's struct."""
    d = OPS[op]
    return uapi.field_offset(d.struct, d.path(name))


def user_size(a: Args, op: str) -> int:
    natural = STRUCT_SIZES[op][0]
    return a["size"] if "size" in a else natural


def field_seen(a: Args, op: str, name: str) -> int:
    """The value the handler reads: bytes of the field past the user's size are 0."""
    off, width = field_of(op, name)
    size = user_size(a, op)
    if off >= size:
        return 0
    if off + width <= size:
        return a[name]
    return a[name] & ((1 << (8 * (size - off))) - 1)


def respond_field(a: Args, op: str, name: str, value: int) -> int:
    """The field after iommufd_ucmd_respond wrote the kernel's `value`: only the
    bytes below min(user size, sizeof) are written, the rest keep the input."""
    off, width = field_of(op, name)
    n = min(user_size(a, op), STRUCT_SIZES[op][0])
    if off + width <= n:
        return value
    if off >= n:
        return a[name]
    low = (1 << (8 * (n - off))) - 1
    return (value & low) | (a[name] & ~low & ((1 << (8 * width)) - 1))
