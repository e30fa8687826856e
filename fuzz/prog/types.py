"""The vocabulary of the op descriptions (fuzz/prog/descriptions.py).

A description says everything an op is: which call it makes (ioctl struct, ioctl by
value, close/read/write of an fd), which struct carries it, and for every argument
its IR name, its struct field and its type. The types below say what values make
sense: a named flag set or enum from the uAPI, an object of some kind an earlier op
created, an IOVA in some IOAS, a length, a user pointer, a side array. Generation,
mutation, the hypothesis machine, the encoder, the model's argument access and the
reproducer emitters all read these; none of them knows an op by anything else.

Object kinds are syzkaller's resources: an op's outputs create objects of a kind
(an IOAS id, a HWPT id, an access fd...), and an argument takes objects of some
kinds. Kinds form a tree (KIND_PARENT): an argument that takes "hwpt" also takes a
"hwpt_paging". Beside objects, an op can need or leave program-wide state
("compat_ioas": the vfio compat IOAS is set), like syzkaller's ops that need a
resource without taking it as an argument.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

# Call kinds: how the executor makes the call.
IOMMUFD = "iommufd"  # ioctl(iommufd, request, &struct) where the struct starts with u32 size
TEST = "test"  # IOMMU_TEST_CMD with a fixed iommu_test_cmd.op
VFIO_VAL = "vfio_val"  # vfio ioctl whose argument is passed by value
VFIO_STRUCT = "vfio_struct"  # vfio ioctl with an argsz-prefixed struct
CLOSE = "close"  # close(2) of an fd an earlier op returned
FDIO = "fdio"  # read(2) / write(2) of an fd an earlier op returned (the fault queue's)
STRUCT_CALLS = (IOMMUFD, TEST, VFIO_STRUCT)
FD_CALLS = (CLOSE, FDIO)  # act only on fds the program got back, never on the agent's

# Object kinds and the kind each refines ("" for a root).
KIND_PARENT: dict[str, str] = {
    "ioas": "",
    "hwpt": "",
    "hwpt_paging": "hwpt",
    "hwpt_nest_parent": "hwpt_paging",  # HWPT_ALLOC with IOMMU_HWPT_ALLOC_NEST_PARENT
    "hwpt_dirty": "hwpt_paging",  # HWPT_ALLOC with IOMMU_HWPT_ALLOC_DIRTY_TRACKING
    "hwpt_nested": "hwpt",  # HWPT_ALLOC of the selftest data type on a nest parent
    "hwpt_fault": "hwpt_nested",  # ... with IOMMU_HWPT_FAULT_ID_VALID: it reports IOPFs
    "stdev": "",
    "idev": "",
    "access": "",
    "access_pin": "access",  # created with MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES
    "access_pages": "",
    "fault": "",  # a fault queue object (its id)
    "fault_fd": "",  # the fault queue's fd
    "cookie": "",  # a page request's cookie, read from a fault fd
}
# Kinds whose objects are file descriptors (closed with CLOSE), not ids in the xarray.
FD_KINDS = ("access", "fault_fd")


def is_kind(kind: str, want: str) -> bool:
    """Whether an object of `kind` is also a `want` (kind refines want)."""
    while kind:
        if kind == want:
            return True
        kind = KIND_PARENT[kind]
    return False


@dataclass(frozen=True)
class FlagSet:
    """Named bits from the uAPI headers (their C names, for reproducers)."""

    name: str
    bits: tuple[tuple[str, int], ...]

    @property
    def mask(self) -> int:
        m = 0
        for _, v in self.bits:
            m |= v
        return m

    def spell(self, v: int) -> str:
        """`A | B | 0x40` as the header would write it; "" for 0."""
        parts = [n for n, bit in self.bits if v & bit == bit and bit]
        rest = v & ~self.mask
        if rest:
            parts.append(hex(rest))
        return " | ".join(parts)


@dataclass(frozen=True)
class EnumSet:
    """Named values from the uAPI headers."""

    name: str
    values: tuple[tuple[str, int], ...]

    def spell(self, v: int) -> str:
        for n, x in self.values:
            if x == v:
                return n
        return ""


# -- argument types ----------------------------------------------------------------
@dataclass(frozen=True)
class Int:
    """A plain integer; `values` are ones worth trying beside the generic boundaries."""

    values: tuple[int, ...] = ()


@dataclass(frozen=True)
class Flags:
    """A flag set; `rare` bits (test hooks such as MOCK_FLAGS_ACCESS_SYZ, which
    changes what the other arguments mean) are set only now and then."""

    flags: FlagSet
    rare: int = 0
    usual: int = 0  # bits nearly every well-formed call sets (READABLE | WRITEABLE)
    # bits that never keep the call or what builds on it from working, only change how
    # later ops behave (a mock device with 1M IO pages): set half the time even while
    # building what another op needs
    free: int = 0


@dataclass(frozen=True)
class Enum:
    enum: EnumSet


@dataclass(frozen=True)
class Res:
    """An object of one of these kinds, created by an earlier op (a Ref to its output)."""

    kinds: tuple[str, ...]


@dataclass(frozen=True)
class Iova:
    """An IOVA in the IOVA space of the object in argument `space` (an IOAS, or an
    object that lives on one: a HWPT, an access); "compat" is the vfio compat IOAS.
    `fixed`: (flags argument, bit) - the IOVA is only used when that bit is set;
    leaving the IOVA out (and the bit clear) asks the kernel to choose one.
    `new`: where a new mapping or reservation goes, so mostly somewhere free (just
    past a mapping, or in the mock aperture), not on top of one."""

    space: str
    fixed: tuple[str, int] = ()  # type: ignore[assignment]
    new: bool = False  # names a place for a new mapping (not an existing one)


@dataclass(frozen=True)
class Len:
    """A length in bytes; `of`: the argument whose extent it usually covers (an Iova
    argument: its mapping's length; a Uptr argument: the rest of its buffer)."""

    of: str = ""


@dataclass(frozen=True)
class Uptr:
    """A user address: into a program buffer (a BufPtr), or anywhere. `of`: the Iova
    argument whose mapping's user memory it usually points at (MD_CHECK_MAP).
    Left out, it points at memory of the executor's own: `side`, a side array of
    entries of that C type next to the op (InSide and Entries arguments fill it;
    `size_by` names the argument holding its size in bytes), or `scratch`, a mapping
    of that many bytes of its own, past whose end a kernel copy faults (left out
    with neither, it is 0)."""

    of: str = ""
    side: str = ""
    size_by: str = ""
    scratch: int = 0


@dataclass(frozen=True)
class Entries:
    """A list of entries (each the fields of the side array's C type, in order) for
    the side array of Uptr argument `pointer`, after the `after` entries InSide
    arguments fill. `count` names the argument holding their number (in bytes with
    count_bytes), `length` the one holding the size of one; the executor fills both
    in when the program leaves them out, and gives the side array as many entries
    as a literal count claims (zeros), up to MAX_SIDE_ENTRIES."""

    pointer: str
    count: str = ""
    length: str = ""
    count_bytes: bool = False
    after: int = 0
    fields: tuple = ()  # the type of each field of an entry (generation); Int() if missing


@dataclass(frozen=True)
class InSide:
    """A field of the first entry of the side array of Uptr argument `pointer` (a
    value of type `type`, like any other argument's: a literal or a Ref)."""

    pointer: str
    field: str
    type: object = None  # an ArgType; Int() when None


@dataclass(frozen=True)
class Count:
    """The byte count of read(2)/write(2) on the side array (or buffer) of argument
    `of`. Left out: `entries` entries' worth, or (0) the entries the side array
    holds."""

    of: str
    entries: int = 0


@dataclass(frozen=True)
class Const:
    """One value (a Form's fixed argument)."""

    value: int


@dataclass(frozen=True)
class Ranges:
    """A list of [start, last] IOVA ranges the executor puts in a side array of
    struct iommu_iova_range; the struct field holds its address; argument `count`
    holds the number of entries (the list's length unless given)."""

    count: str
    ctype: str = "struct iommu_iova_range"


@dataclass(frozen=True)
class Capacity:
    """The number of entries of a side array the kernel fills (of `array`, a field
    the executor points at it unless the program gives one)."""

    array: str
    default: int
    ctype: str = "struct iommu_iova_range"


@dataclass(frozen=True)
class Reserved:
    """Must be zero (__reserved, iommu_test_cmd.last)."""


@dataclass(frozen=True)
class Output:
    """A field the kernel writes; as an input it is normally left zero."""


@dataclass(frozen=True)
class Value:
    """An argument of a call without a struct (a by-value ioctl argument, close(2)'s
    fd, read/write's fd, buffer and count): its own width, at `offset` in the block
    of arguments the executor reads for the call."""

    type: object
    width: int
    offset: int = 0


ArgType = (Int | Flags | Enum | Res | Iova | Len | Uptr | Ranges | Capacity | Reserved | Output
           | Entries | InSide | Count | Const)


@dataclass(frozen=True)
class Arg:
    name: str  # the IR name: the struct field's own name
    path: str  # struct field path ("access_rw.iova"); "" for a by-value argument
    type: ArgType
    width: int = 0  # bytes; filled in from the struct layout by descriptions.py
    offset: int = 0  # where a by-value argument goes in the call's argument block


# -- outputs and state ---------------------------------------------------------------
@dataclass(frozen=True)
class Refine:
    """The object is of `kind` (a refinement of the output's) when every condition
    (argument, mask, value) holds: the argument & mask == value."""

    when: tuple[tuple[str, int, int], ...]
    kind: str


@dataclass(frozen=True)
class Out:
    """A field the kernel writes back, which later ops can refer to.

    kind: the object kind it creates (None: just a value); refine: the conditions
    under which it is a more specific kind; on: the argument naming the IOAS (or
    object on an IOAS) the new object lives on; decode: how the executor reads it
    back: "int" (the struct field), "ret" (the call's return value), "data" (bytes
    the executor captured after the call), "ranges" (`count` entries of the side
    array of argument `array`), "caps" (the vfio capability chain), "entries" (the
    side array of `array` as entries, as many as the return value says bytes),
    "first" (`field` of that side array's first entry; a ref reads it there)."""

    name: str
    kind: str | None = None
    refine: tuple[Refine, ...] = ()
    on: str = ""
    decode: str = "int"
    array: str = ""
    count: str = ""
    field: str = ""
    # the kernel also fills the side array when failing with one of these (EMSGSIZE)
    also_on: tuple[int, ...] = ()

    @property
    def is_int(self) -> bool:
        """Whether it is one integer (a ref can take it)."""
        return self.decode in ("int", "ret", "first")

    @property
    def is_fd(self) -> bool:
        return self.kind is not None and any(is_kind(self.kind, k) for k in FD_KINDS)


@dataclass(frozen=True)
class Provides:
    """Program-wide state the op leaves when it succeeds with these argument values
    (`when`) and with arguments naming objects of these kinds (`kinds`)."""

    state: str
    when: tuple[tuple[str, int], ...] = ()
    kinds: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Mapping:
    """The op maps [iova, iova+length) of the IOVA space of argument `space`."""

    space: str
    iova: str  # the output (or argument) holding the IOVA
    length: str  # the argument holding the length
    uptr: str = ""  # the argument holding the user memory mapped there, if any


@dataclass(frozen=True)
class Capture:
    """After a successful call the executor copies min(n, CAPTURE_MAX) bytes from the
    user address in argument `uptr` into output `out`: n is argument `length`'s value,
    or with `bitmap` = (length, page_size) arguments the size of the dirty bitmap
    the kernel writes for them (((length - 1) >> ffs(page_size)) / 8 + 1 bytes in
    whole u64 words, when both are literals)."""

    uptr: str
    length: str = ""
    bitmap: tuple[str, str] = ()  # type: ignore[assignment]
    out: str = "data"


@dataclass(frozen=True)
class Form:
    """A way of calling an op whose arguments make sense together (syzkaller's call
    variants: HWPT_ALLOC of a paging HWPT on an IOAS, or of a nested one on a nest
    parent): these arguments take these types; generation mostly picks a form, and
    sometimes mixes them on purpose."""

    name: str
    args: tuple[tuple[str, object], ...]
    weight: int = 1
    # only works before the program made any object (OPTION's RLIMIT_MODE SET needs
    # an empty iommufd): programs now and then start with it
    first: bool = False


@dataclass(frozen=True)
class OpDesc:
    name: str
    call: str  # IOMMUFD | TEST | VFIO_VAL | VFIO_STRUCT | CLOSE
    request: str = ""  # the ioctl request macro's name
    struct: str = ""  # the C struct type; "" for by-value calls
    test_op: str = ""  # IOMMU_TEST_OP_* for TEST ops
    args: tuple[Arg, ...] = ()
    outs: tuple[Out, ...] = ()
    needs: tuple[str, ...] = ()  # program-wide state it needs to succeed
    provides: tuple[Provides, ...] = ()
    maps: Mapping | None = None
    capture: Capture | None = None
    forms: tuple[Form, ...] = ()
    extra_space: int = 0  # bytes past the struct the executor provides by default
    weight: int = 1  # how often generation picks it
    doc: str = ""

    @property
    def size_field(self) -> str:
        return "argsz" if self.call == VFIO_STRUCT else "size"

    @property
    def is_struct(self) -> bool:
        return self.call in STRUCT_CALLS

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outs)

    @property
    def ref_outputs(self) -> dict[str, str]:
        """output -> object kind, for the outputs that create objects."""
        return {o.name: o.kind for o in self.outs if o.kind}

    # by name (the first of a name), built on first use: arg() and out() are called for
    # every field of every op the checks, the encoder, the layout and the model touch
    @functools.cached_property
    def _args_by_name(self) -> dict[str, Arg]:
        by: dict[str, Arg] = {}
        for a in self.args:
            by.setdefault(a.name, a)
        return by

    @functools.cached_property
    def _outs_by_name(self) -> dict[str, Out]:
        by: dict[str, Out] = {}
        for o in self.outs:
            by.setdefault(o.name, o)
        return by

    def arg(self, name: str) -> Arg | None:
        return self._args_by_name.get(name)

    def out(self, name: str) -> Out | None:
        return self._outs_by_name.get(name)

    def path(self, name: str) -> str:
        """The struct field path of an argument or output."""
        a = self.arg(name)
        return a.path if a is not None else name


# Every struct op also takes these, to reach the malformed-struct paths:
#   "size" (or "argsz" for vfio structs): overrides the natural struct size
#   "tail": a byte value written into the bytes past the natural struct size when
#           "size" is larger (copy_struct_from_user's E2BIG path)
COMMON_ARGS = ("size", "argsz", "tail")
COMMON_WIDTHS = {"size": 4, "argsz": 4, "tail": 1}


# Categories of boundary values (fuzz.prog.gen) start with this: the boundary table of
# `gen --stats` and the campaign's stats lines count them.
EDGE = "edge: "


@dataclass
class Counts:
    """What a generator drew, by (op, argument, category): `gen --stats` and the
    campaign's stats lines. `ops` holds, for each op of the program being generated
    (by index), the (argument, category) pairs drawn for it, for whoever runs the
    program to match them with its results (take_ops)."""

    drawn: dict[tuple[str, str, str], int] = field(default_factory=dict)
    ops: dict[int, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, op: str, arg: str, category: str) -> None:
        key = (op, arg, category)
        self.drawn[key] = self.drawn.get(key, 0) + 1

    def mark(self, index: int, drawn: list[tuple[str, str]]) -> None:
        self.ops.setdefault(index, []).extend(drawn)

    def take_ops(self) -> dict[int, list[tuple[str, str]]]:
        ops, self.ops = self.ops, {}
        return ops

    def edges(self) -> dict[str, int]:
        """Boundary categories drawn, over all ops and arguments."""
        out: dict[str, int] = {}
        for (_, _, cat), n in self.drawn.items():
            if cat.startswith(EDGE):
                out[cat] = out.get(cat, 0) + n
        return out
