"""fs/file.c: the fd table of the process that runs the program, as far as the
program's fds go, and the executor's list of the fds the program got back.

get_unused_fd_flags (alloc_fd) takes the lowest free fd. In the guest agent
(fuzz/guest/agent.c, PID 1 of the initramfs) a program starts with 0-2 (the
console) and its iommufd (3) open below AGENT_FD_BASE, where the agent keeps its
own fds; so the first access or fault fd is 4 and every later number follows from
the program's own closes: the model computes each one and compares it exactly.

Truly free, and so taken from the kernel's result (only if it is a number that
is not open already, else a made-up one no real fd can have):
  - a number at or above AGENT_FD_BASE: which of the agent's own fds exist there
    (virtio port, kmsg, kcov, the buffer pool's check fd) depends on the agent's
    history, not on the program;
  - any number in a process whose table the model cannot see (FdLayout None: the
    Python process of --backend local).

The executor (fuzz/executor/executor.c) remembers up to MAX_FDS fds a program got
back; close(2), read(2) and write(2) of any other number answer EBADF without a
syscall, so the agent's own fds are out of a program's reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fuzz.prog.limits import AGENT_FD_BASE, MAX_FDS, PROGRAM_START_FDS

if TYPE_CHECKING:
    from fuzz.model.objects import ObjectTable

NR_OPEN = 1 << 20  # fs.nr_open default: no fd can be this large
FAKE_FD_BASE = 2_000_000  # above fs.nr_open: never a real fd


@dataclass(frozen=True)
class FdLayout:
    """The fds open when a program's first call runs (all of them below
    known_below); at or above known_below the table is not known."""

    open_at_start: frozenset[int]
    known_below: int


# the guest agent: console on 0-2, the program's iommufd on 3, the agent's own fds
# at AGENT_FD_BASE and above
AGENT_FDS = FdLayout(frozenset(PROGRAM_START_FDS), AGENT_FD_BASE)


class FdTable:
    """The program's open access and fault fds (number -> object), the numbers the
    executor keeps (its fds[] list) and where a number is not computable."""

    def __init__(self, layout: FdLayout | None, objects: ObjectTable) -> None:
        self.layout = layout
        self.objects = objects  # where lookups touch the file's object (and doubt)
        self.open: dict[int, object] = {}
        self.own: list[int] = []  # the executor's list: what CLOSE/READ/WRITE may use
        self.made_up = False  # some open fd's number is not the kernel's (no result)
        self.next_fake = FAKE_FD_BASE
        self.unknown: str | None = None  # an unsure op may have opened or closed fds

    def lowest_free(self) -> int | None:
        """alloc_fd's answer, or None where the model cannot see the table."""
        lay = self.layout
        if lay is None or self.unknown is not None:
            return None
        fd = 0
        while fd in lay.open_at_start or fd in self.open:
            fd += 1
        return fd if fd < lay.known_below else None

    def alloc(self, obj: object, kernel_fd: int | None) -> int:
        """get_unused_fd_flags + fd_install for obj; kernel_fd is the kernel's
        number for this op, if it ran there and succeeded."""
        fd = self.lowest_free()
        if fd is None:
            lay = self.layout
            low = lay.known_below if lay is not None and self.unknown is None else 0
            if self.unknown is not None:
                self.objects.doubt(f"fd numbers are not known {self.unknown}", poisons=False)
            if kernel_fd is not None and low <= kernel_fd < NR_OPEN \
                    and kernel_fd not in self.open:
                fd = kernel_fd
            else:
                self.made_up = True
                fd = self.next_fake
                self.next_fake += 1
        self.open[fd] = obj
        if len(self.own) < MAX_FDS:
            self.own.append(fd)
        return fd

    def get(self, fd: int) -> object | None:
        """What fget(fd) finds among the program's fds (any open one: the kernel's
        own lookups do not go through the executor's list)."""
        obj = self.open.get(fd)
        if obj is not None:
            self.objects.touch(obj, primary=True)  # type: ignore[arg-type]
        elif self.unknown is not None:
            self.objects.doubt(f"fd {fd} may be a file the model does not know: fd numbers "
                               f"are not known {self.unknown}")
        return obj

    def is_own(self, fd: int) -> bool:
        if fd not in self.own and self.unknown is not None:
            self.objects.doubt(f"fd {fd} may be an fd of the program the model does not know: "
                               f"fd numbers are not known {self.unknown}")
        return fd in self.own

    def renumber(self, moves: dict[int, int]) -> bool:
        """Give open files other numbers (old -> new, each new one free or moved away
        itself): the numbers the kernel gave racing ops (fuzz.model.races.adopt_fds).
        False, changing nothing, where that cannot be."""
        targets = list(moves.values())
        if len(set(targets)) != len(targets) or any(
                not 0 <= t < NR_OPEN or (t in self.open and t not in moves) for t in targets) \
                or any(old not in self.open for old in moves):
            return False
        files = {old: self.open.pop(old) for old in moves}
        for old, new in moves.items():
            self.open[new] = files[old]
            if getattr(files[old], "fd", None) == old:
                files[old].fd = new  # type: ignore[attr-defined]
        self.own = [moves.get(fd, fd) for fd in self.own]
        return True

    def close(self, fd: int) -> None:
        """close(2) of an fd of the executor's list (close_own_fd)."""
        self.own.remove(fd)
        self.open.pop(fd, None)

    def numbers_unknown(self) -> bool:
        """Whether a number the program uses may be an fd the model gave another
        number to (so 'not one of the program's fds' is not certain)."""
        return self.made_up and bool(self.open)
