"""Fixtures for tests that run on the real kernel in the VM.

Nothing here skips: if the kernel cannot be built or the VM cannot boot, the
tests that need it fail with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz import kernel
from fuzz.backend import VMBackend
from fuzz.vm import GuestCrash, VMError


@pytest.fixture(scope="session")
def kernel_dir() -> Path:
    try:
        return kernel.default_kernel()
    except kernel.KernelError as e:
        pytest.fail(f"cannot get the test kernel: {e}")


def boot(kernel_dir: Path) -> VMBackend:
    try:
        return VMBackend(kernel_dir)
    except (VMError, GuestCrash) as e:
        pytest.fail(f"the VM did not start: {e}")


@pytest.fixture
def fresh_vm(kernel_dir: Path) -> Iterator[VMBackend]:
    """A VM of its own, for tests that crash or hang it."""
    be = boot(kernel_dir)
    yield be
    be.close()


@pytest.fixture(scope="session")
def vm(kernel_dir: Path) -> Iterator[VMBackend]:
    """One VM shared by the tests that leave it healthy."""
    be = boot(kernel_dir)
    yield be
    be.close()
