"""Masks over prunable weights, global magnitude pruning (OMP, IMP), sparsity measured.

Prunable: the `weight` of every Conv1d/2d/3d and Linear module whose module name is not in the ignore
list (default: the registry entry's dense layers, the paper's profiles: stem conv and final classifier,
and for the wide ResNet-32 also its two 1x1 downsample convs). Biases and normalisation parameters are
never pruned; `dense_names` lists the conv and linear weights the ignore list leaves dense. A mask is {param name: 0/1 float tensor}; parameters not
named are dense.

Both OMP and IMP prune to an exact count: after pruning to sparsity s, exactly round(s * N) of the N
prunable weights are zero in the mask. IMP round k targets s_k = 1 - (1 - rate)^k, which is "prune
`rate` of the remaining weights" up to one weight of rounding per round; already-pruned weights always
rank lowest, so masks are nested. Ties in magnitude are broken by position (stable sort), so pruning is
deterministic.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from .jobs import Mask

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _ignored(module_name: str, ignore: Iterable[str]) -> bool:
    for pat in ignore:
        if module_name == pat or fnmatch.fnmatchcase(module_name, pat) or module_name.startswith(pat + "."):
            return True
    return False


def prunable_names(model: nn.Module, ignore: Iterable[str] = ()) -> list[str]:
    """Parameter names (`<module>.weight`) that pruning ranks, in the model's order."""
    ignore = list(ignore)
    return [f"{name}.weight" for name, mod in model.named_modules()
            if isinstance(mod, PRUNABLE) and not _ignored(name, ignore)]


def dense_names(model: nn.Module, ignore: Iterable[str] = ()) -> list[str]:
    """Conv and linear weights (`<module>.weight`) that `ignore` leaves dense, in the model's order."""
    ignore = list(ignore)
    return [f"{name}.weight" for name, mod in model.named_modules()
            if isinstance(mod, PRUNABLE) and _ignored(name, ignore)]


def full_mask(model: nn.Module, ignore: Iterable[str] = ()) -> Mask:
    params = dict(model.named_parameters())
    return {n: torch.ones_like(params[n], device="cpu") for n in prunable_names(model, ignore)}


def imp_sparsity(k: int, rate: float = 0.2) -> float:
    return 1.0 - (1.0 - rate) ** k


def imp_round(sparsity: float, rate: float = 0.2, tol: float = 1e-3) -> int:
    """The IMP round k whose sparsity 1 - (1 - rate)^k is `sparsity` (to `tol`); ValueError when off the grid."""
    if sparsity <= 0:
        return 0
    k = round(math.log(1.0 - sparsity) / math.log(1.0 - rate)) if sparsity < 1 else -1
    if k < 1 or abs(imp_sparsity(k, rate) - sparsity) > tol:
        grid = ", ".join(f"{imp_sparsity(j, rate):.3f}" for j in range(1, 15))
        raise ValueError(f"sparsity {sparsity} is not on the IMP grid 1-(1-{rate})^k ({grid}, ...)")
    return k


def magnitude_prune(state: Mapping[str, torch.Tensor], mask: Mask, sparsity: float) -> Mask:
    """Global magnitude pruning over the weights named in `mask` to exactly round(sparsity * N) zeros.

    Weights already masked out rank lowest (so they stay pruned); the rest rank by |w| of `state`.
    NaN magnitudes (a diverged run) count as 0, +-inf as the largest.
    """
    names = list(mask)
    sizes = [mask[n].numel() for n in names]
    total = sum(sizes)
    target = int(round(sparsity * total))
    already = int(sum(int((mask[n] == 0).sum()) for n in names))
    if target < already:
        raise ValueError(f"cannot prune to {sparsity}: {already} of {total} weights are pruned already")
    scores = []
    for n in names:
        w = state[n].detach().to("cpu", torch.float32).abs().flatten()
        w = torch.nan_to_num(w, nan=0.0, posinf=float(torch.finfo(torch.float32).max))
        scores.append(torch.where(mask[n].flatten() != 0, w, torch.full_like(w, -1.0)))
    flat = torch.cat(scores)
    order = torch.sort(flat, stable=True).indices
    keep = torch.ones(total, dtype=torch.float32)
    keep[order[:target]] = 0.0
    out, at = {}, 0
    for n, size in zip(names, sizes):
        out[n] = keep[at:at + size].view_as(mask[n]).clone()
        at += size
    return out


def omp_mask(state: Mapping[str, torch.Tensor], names: Iterable[str], sparsity: float) -> Mask:
    """One-shot magnitude pruning of the trained weights `state` (θT) to `sparsity`."""
    dense = {n: torch.ones_like(state[n], dtype=torch.float32, device="cpu") for n in names}
    return magnitude_prune(state, dense, sparsity)


def sparsity_of(mask: Mask) -> float:
    total = sum(m.numel() for m in mask.values())
    return pruned_count(mask) / total if total else 0.0


def pruned_count(mask: Mask) -> int:
    return int(sum(int((m == 0).sum()) for m in mask.values()))


def apply_mask(model: nn.Module, mask: Mask | None) -> nn.Module:
    """Zero the pruned weights of `model` in place."""
    if mask:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, m in mask.items():
                params[n].mul_(m.to(params[n].device, params[n].dtype))
    return model


def random_layerwise(mask: Mask, seed: int) -> Mask:
    """A random mask with `mask`'s per-layer sparsity (SPEC §6, rp-*): each layer keeps as many weights as
    `mask` keeps there, at positions drawn uniformly at random (seeded; layers in name order)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = {}
    for name in sorted(mask):
        m = mask[name]
        keep = int((m != 0).sum())
        flat = torch.zeros(m.numel(), dtype=torch.float32)
        flat[torch.randperm(m.numel(), generator=g)[:keep]] = 1.0
        out[name] = flat.view_as(m)
    return {name: out[name] for name in mask}
