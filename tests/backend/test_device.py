"""Process-level CPU tuning of the training entry points."""

from __future__ import annotations

import ctypes
import platform

import pytest
import torch

from lth_audit.backend.device import KEEP_FREED_BYTES, keep_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


@pytest.mark.skipif(not GLIBC or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc >= 2.33")
def test_activation_sized_buffers_come_from_the_heap_after_tuning():
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _Mallinfo2
    assert keep_freed_memory()
    mapped = mallinfo2().hblks
    buffers = [torch.empty(n // 4) for n in (1 << 20, 8 << 20, KEEP_FREED_BYTES // 2)]
    assert mallinfo2().hblks == mapped          # no block of its own from mmap, so no page faults on reuse
    del buffers
    assert mallinfo2().fordblks >= KEEP_FREED_BYTES // 2   # freed, kept in the heap for the next step


@pytest.mark.skipif(GLIBC, reason="the non-glibc answer")
def test_tuning_is_a_no_op_without_glibc():
    assert keep_freed_memory() is False
