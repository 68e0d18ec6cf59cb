"""Where training runs: `auto` picks CUDA when present. On CUDA: bf16 autocast and channels_last for 2-D convs."""

from __future__ import annotations

import contextlib
import ctypes
import platform

import torch


def resolve(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(device)


AMP_DTYPE = torch.bfloat16
"""The dtype CUDA forward passes autocast to."""


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing on CPU (CPU runs stay in fp32 and bit-reproducible)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=AMP_DTYPE)
    return contextlib.nullcontext()


def memory_format(device: torch.device, example: torch.Tensor) -> torch.memory_format:
    if device.type == "cuda" and example.dim() == 4:
        return torch.channels_last
    return torch.contiguous_format


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # glibc mallopt parameters
KEEP_FREED_BYTES = 1 << 28
"""Blocks up to 256 MiB come from the heap and stay there when freed (glibc mallopt), see keep_freed_memory."""


def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks up to KEEP_FREED_BYTES for reuse instead of returning them to the system.

    Training on the CPU frees and reallocates the same activation buffers every step; batched runs make
    them hundreds of KiB to MiB, above glibc's default mmap and trim thresholds, so each step pays fresh
    page faults (measured: about 70 per step, 5-10 % of a batched MNIST-1D step). This is the allocator
    tuning PyTorch's CPU guides do with jemalloc or tcmalloc, by glibc's own switches. Process-wide, like
    torch.set_num_threads; the training entry points call it, not the library on import. False where the
    C library is not glibc (nothing changed) or glibc refused a setting.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, KEEP_FREED_BYTES)) and \
        bool(libc.mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
