"""Reproducers a kernel developer can run: a Program printed as standalone code.

    repro.py    standard library only (ctypes), runs as root on any kernel with
                CONFIG_IOMMUFD_TEST=y (fuzz/repro/render_py.py + runtime.py)
    repro.c     plain `gcc repro.c -o repro`: the uAPI structs are inlined from the
                same cdef text fuzz/uapi.py uses (render_c.py + runtime.c)
    report.txt  what was found, on which kernel, and how it was verified
    program.json

Both programs are one walk over the encoder's layout plan (walk.py): the prologue
resetting the selftest memory limit, buffers at buffer_address(i) with the same
kind, pattern and holes, each op's struct with its default or overridden size and
"tail" bytes, the executor's side arrays, refs read from earlier ops' structs at the
time of use, captures, and closing the fds the program got and then the iommufd at
the end. Each op prints one line "op <i> <NAME> errno=<n> (<name>) ret=<r>
<field>=<value>..."; the last line says REPRODUCED: <signature> (exit 1) or NOT
REPRODUCED (exit 0).
"""

from fuzz.repro.expect import Expectation, canon
from fuzz.repro.render_c import emit_c
from fuzz.repro.render_py import emit_python
from fuzz.repro.write import report_text, write_reproducer

__all__ = ["Expectation", "canon", "emit_c", "emit_python", "report_text", "write_reproducer"]
