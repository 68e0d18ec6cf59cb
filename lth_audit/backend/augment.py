"""The random draws of one batch and the augmentation they drive: what both trainers share.

`jobs.py` documents the order of the draws from an epoch's generator; the single-run trainer
(`train.py`) draws batch by batch, the batched trainer (`batched.py`) draws a whole epoch ahead per run.
Both call these functions, so the two can never drift apart.

- `draw_augment(g, kind, b)`: a batch's augmentation parameters, (b, k) on the CPU, or None for "none".
  "crop-flip": offsets `randint(0, 2 * CROP_PAD + 1, (b, 2))` (row, column into the zero-padded image),
  then flips `randint(0, 2, (b,))`: columns [row, col, flip]. "shift": `randint(-SHIFT_MAX, SHIFT_MAX + 1,
  (b,))`: one column.
- `apply_augment(x, kind, params)`: those parameters applied to a batch on x's device.
- `mixup_draws(g, b, alpha)`: a batch's mixup λ and partner permutation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CROP_PAD = 4
"""Zero padding (pixels) around an image before its random crop."""
SHIFT_MAX = 4
"""Largest circular shift (samples) of a 1-D input."""
KINDS = ("none", "crop-flip", "shift")

Mix = tuple[float, torch.Tensor]
"""A batch's mixup draws: λ and the permutation q of the batch."""


def draw_augment(g: torch.Generator, kind: str, b: int) -> torch.Tensor | None:
    """The augmentation parameters of a batch of b samples, drawn from `g` (module docstring)."""
    if kind == "none":
        return None
    if kind == "crop-flip":
        off = torch.randint(0, 2 * CROP_PAD + 1, (b, 2), generator=g)
        flip = torch.randint(0, 2, (b,), generator=g)
        return torch.cat([off, flip[:, None]], 1)
    if kind == "shift":
        return torch.randint(-SHIFT_MAX, SHIFT_MAX + 1, (b, 1), generator=g)
    raise ValueError(f"unknown augmentation {kind!r}; known: {', '.join(KINDS)}")


def apply_augment(x: torch.Tensor, kind: str, params: torch.Tensor | None) -> torch.Tensor:
    """Augment a batch x (N, ...) by drawn `params` (N, k), on x's device."""
    if kind == "none" or params is None:
        return x
    params = params.to(x.device)
    b = x.shape[0]
    if kind == "shift":
        n = x.shape[-1]
        idx = (torch.arange(n, device=x.device)[None, :] - params[:, :1]) % n
        flat = x.reshape(b, -1, n)
        return torch.gather(flat, 2, idx[:, None, :].expand_as(flat)).view_as(x)
    if kind == "crop-flip":
        h, w = x.shape[-2:]
        padded = F.pad(x, (CROP_PAD, CROP_PAD, CROP_PAD, CROP_PAD))
        rows = params[:, 0:1] + torch.arange(h, device=x.device)            # (B, H)
        cols = params[:, 1:2] + torch.arange(w, device=x.device)            # (B, W)
        cols = torch.where(params[:, 2:3].bool(), cols.flip(1), cols)
        bi = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]   # (B, H, W, C)
        return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.contiguous_format)
    raise ValueError(f"unknown augmentation {kind!r}; known: {', '.join(KINDS)}")


def augment_batch(x: torch.Tensor, kind: str, g: torch.Generator) -> torch.Tensor:
    """Draw a batch's augmentation from `g` (on the CPU) and apply it on x's device."""
    return apply_augment(x, kind, draw_augment(g, kind, x.shape[0]))


def mixup_draws(g: torch.Generator, b: int, alpha: float) -> Mix:
    """λ ~ Beta(alpha, alpha) (two Gamma(alpha) draws) and a permutation of the b samples, from `g` in
    jobs.py's order. (`torch._standard_gamma` is the one torch sampler of Gamma that takes a generator.)"""
    gx, gy = torch._standard_gamma(torch.full((2,), alpha, dtype=torch.float64), generator=g).tolist()
    lam = gx / (gx + gy) if gx + gy > 0 else 0.5
    return lam, torch.randperm(b, generator=g)
