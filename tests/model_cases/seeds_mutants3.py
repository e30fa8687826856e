"""Seed programs for rules of fuzz/model/model.py that mutants survived
(bench/bench_oracle.py, issue 11, session 4): the struct size check
(Model.check_struct_size). Expected values from the 6.12.117 source (main.c
iommufd_fops_ioctl, include/linux/uaccess.h copy_struct_from_user) and the VM.
"""

from __future__ import annotations

import errno as E

from .dsl import Prog


def struct_size_by_ref_wraps_at_32_bits() -> Prog:
    # iommufd_ucmd.user_size is the u32 `size` of the ioctl struct: a Ref's value wraps
    # at 32 bits (the executor writes the field's width), so 1 + 2^32 + 6 is size 7,
    # below DESTROY's minimum and natural size of 8 (iommufd_fops_ioctl: EINVAL), and
    # 1 + 2^32 + 7 is size 8
    p = Prog("struct_size_by_ref_wraps_at_32_bits")
    a = p.op("IOAS_ALLOC", out={"out_ioas_id": 1})
    p.op("DESTROY", id=0, size=p.ref(a, "out_ioas_id", (1 << 32) + 6), expect=E.EINVAL)
    p.op("DESTROY", id=0, size=p.ref(a, "out_ioas_id", (1 << 32) + 7), expect=E.ENOENT)
    p.op("DESTROY", id=p.ref(a, "out_ioas_id"), size=p.ref(a, "out_ioas_id", (1 << 32) + 7))
    p.op("DESTROY", id=p.ref(a, "out_ioas_id"), expect=E.ENOENT)
    return p


def struct_size_past_the_executors_memory() -> Prog:
    # size 2^32 - 1: copy_struct_from_user checks every byte past the natural 8 with
    # check_zeroed_user, far past what the executor backs (MAX_STRUCT): a non-zero byte
    # of whatever follows (E2BIG) or the end of the mapping (EFAULT), the IOAS not
    # destroyed. Which of the two is not the model's to know: unsure, the kernel's
    # errno decides (an op that ran - destroyed the IOAS - is a mismatch). Without the
    # kernel's errno the model cannot tell whether the IOAS is still there (op 2)
    p = Prog("struct_size_past_the_executors_memory")
    a = p.op("IOAS_ALLOC", out={"out_ioas_id": 1})
    p.op("DESTROY", id=p.ref(a, "out_ioas_id"), size=(1 << 32) - 1, expect=None, unsure=True)
    p.op("IOAS_IOVA_RANGES", ioas_id=p.ref(a, "out_ioas_id"), out={"num_iovas": 1},
         unsure=True)
    return p


SEEDS_MUTANTS3 = [struct_size_by_ref_wraps_at_32_bits, struct_size_past_the_executors_memory]
