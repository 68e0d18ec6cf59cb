"""Where training runs: `auto` picks CUDA when present. On CUDA: bf16 autocast and channels_last for 2-D convs."""

from __future__ import annotations

import contextlib

import torch


def resolve(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(device)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing on CPU (CPU runs stay in fp32 and bit-reproducible)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device, example: torch.Tensor) -> torch.memory_format:
    if device.type == "cuda" and example.dim() == 4:
        return torch.channels_last
    return torch.contiguous_format


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


SMALL_MODEL = 1_000_000


def cpu_threads(n_params: int) -> int | None:
    """CPU intra-op threads for a model of `n_params`: 1 for small nets (their tiny matmuls only lose to
    thread hand-offs - 5x on a busy 2-core machine), None (torch's default) otherwise."""
    return 1 if n_params < SMALL_MODEL else None
