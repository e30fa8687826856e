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

from dataclasses import dataclass, field

# Call kinds: how the executor makes the call.
IOMMUFD = "iommufd"  # ioctl(iommufd, request, &struct) where the struct starts with u32 size
TEST = "test"  # IOMMU_TEST_CMD with a fixed iommu_test_cmd.op
VFIO_VAL = "vfio_val"  # vfio ioctl whose argument is passed by value
VFIO_STRUCT = "vfio_struct"  # vfio ioctl with an argsz-prefixed struct
CLOSE = "close"  # close(2) of an fd an earlier op returned
STRUCT_CALLS = (IOMMUFD, TEST, VFIO_STRUCT)

# Object kinds and the kind each refines ("" for a root).
KIND_PARENT: dict[str, str] = {
    "ioas": "",
    "hwpt": "",
    "hwpt_paging": "hwpt",
    "stdev": "",
    "idev": "",
    "access": "",
    "access_pin": "access",  # created with MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES
    "access_pages": "",
}
# Kinds whose objects are file descriptors (closed with CLOSE), not ids in the xarray.
FD_KINDS = ("access",)


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
    argument whose mapping's user memory it usually points at (MD_CHECK_MAP)."""

    of: str = ""


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
    """A by-value ioctl argument or close(2)'s fd, with its own width in bytes."""

    type: object
    width: int


ArgType = Int | Flags | Enum | Res | Iova | Len | Uptr | Ranges | Capacity | Reserved | Output


@dataclass(frozen=True)
class Arg:
    name: str  # the IR name: the struct field's own name
    path: str  # struct field path ("access_rw.iova"); "" for a by-value argument
    type: ArgType
    width: int = 0  # bytes; filled in from the struct layout by descriptions.py


# -- outputs and state ---------------------------------------------------------------
@dataclass(frozen=True)
class Out:
    """A field the kernel writes back, which later ops can refer to.

    kind: the object kind it creates (None: just a value); refine: (arg, bits, kind)
    - the object is of `kind` instead when the argument has all those bits set;
    on: the argument naming the IOAS (or object on an IOAS) the new object lives on;
    decode: how the executor reads it back: "int" (the struct field), "ranges" (the
    IOVA_RANGES side array), "caps" (the vfio capability chain), "data" (bytes the
    executor captured at the op's user buffer), "ret" (the ioctl's return value)."""

    name: str
    kind: str | None = None
    refine: tuple[tuple[str, int, str], ...] = ()
    on: str = ""
    decode: str = "int"
    # "ranges": the side array of argument `array` holds `count` entries; the kernel
    # also fills it when failing with one of `also_on` (e.g. EMSGSIZE)
    array: str = ""
    count: str = ""
    also_on: tuple[int, ...] = ()

    @property
    def is_fd(self) -> bool:
        return self.kind is not None and any(is_kind(self.kind, k) for k in FD_KINDS)


@dataclass(frozen=True)
class Provides:
    """Program-wide state the op leaves when it succeeds with these argument values."""

    state: str
    when: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Mapping:
    """The op maps [iova, iova+length) of the IOVA space of argument `space`."""

    space: str
    iova: str  # the output (or argument) holding the IOVA
    length: str  # the argument holding the length
    uptr: str = ""  # the argument holding the user memory mapped there, if any


@dataclass(frozen=True)
class Capture:
    """After a successful call the executor copies min(length, CAPTURE_MAX) bytes from
    the user address in field `uptr` (length in field `length`) into output "data"."""

    uptr: str
    length: str


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

    def arg(self, name: str) -> Arg | None:
        for a in self.args:
            if a.name == name:
                return a
        return None

    def out(self, name: str) -> Out | None:
        for o in self.outs:
            if o.name == name:
                return o
        return None

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


@dataclass
class Counts:
    """What a generator drew, by (op, argument, category): `gen --stats`."""

    drawn: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def add(self, op: str, arg: str, category: str) -> None:
        key = (op, arg, category)
        self.drawn[key] = self.drawn.get(key, 0) + 1
