"""Stability to SGD noise (SPEC §6; Frankle et al. 2020, linear mode connectivity).

A ticket run and its *twin* start from the same weights (θ0 ⊙ m, or θt ⊙ m for wr-*) and train with
another data order and other augmentation draws (the twin's data seed is the run's seed plus
`TWIN_SEED_OFFSET`). `path_errors` evaluates the test error at `POINTS` evenly spaced points of the
straight line between the two final weights, with the mask applied and, at each point, the BatchNorm
statistics recomputed on training batches (the averaged weights' own statistics: interpolated running
statistics belong to neither network). The instability is the largest rise of the error along the path
above the mean error of its two ends, in pp, and never below 0.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from .jobs import Mask, TensorData
from .stream import StreamData
from .train import _Batches

TWIN_SEED_OFFSET = 2_000_003
"""A twin trains with data seed `seed + TWIN_SEED_OFFSET`: another data order and other augmentation draws."""
POINTS = 11
BN_BATCHES = 50
"""Training batches BatchNorm statistics are recomputed from at each point (cumulative average)."""
STATS_SEED = 7_000_003
"""Data seed of those batches: the same for every point and every run."""


def interpolate(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float,
                mask: Mask | None = None) -> dict[str, torch.Tensor]:
    """(1 − alpha) · a + alpha · b for every floating tensor (integer buffers from a), masked."""
    out = {}
    for name, x in a.items():
        y = b[name]
        out[name] = torch.lerp(x, y.to(x.dtype), alpha) if x.is_floating_point() else x.clone()
    for name, m in (mask or {}).items():
        out[name] = out[name] * m.to(out[name].dtype)
    return out


def _norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recompute_bn(model: nn.Module, batches: Iterable) -> None:
    """Replace every BatchNorm's running statistics by their average over `batches` ((x, y, ...) tuples)."""
    norms = _norms(model)
    if not norms:
        return
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None          # a cumulative average over the batches seen
    model.train()
    for batch in batches:
        model(batch[0])
    for m, momentum in saved:
        m.momentum = momentum
    model.eval()


def path_errors(model: nn.Module, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
                mask: Mask | None, data: TensorData | StreamData, device: torch.device, batch_size: int,
                points: int = POINTS, bn_batches: int = BN_BATCHES) -> list[float]:
    """Test error (%) at `points` evenly spaced alphas from a (0) to b (1); `model` gives the architecture."""
    net = copy.deepcopy(model).to(device)
    src = _Batches(data, STATS_SEED, batch_size, device)
    errors = []
    try:
        for i in range(points):
            net.load_state_dict(interpolate(a, b, i / (points - 1), mask))
            if _norms(net):
                recompute_bn(net, (batch for _, batch in zip(range(bn_batches), src.epoch(0))))
            errors.append(round(100.0 - src.test_accuracy(net), 6))
    finally:
        src.close()
    return errors


def instability(errors: list[float]) -> float:
    """The largest rise of the error along the path above the mean of its ends, in pp (≥ 0)."""
    return round(max(0.0, max(errors) - (errors[0] + errors[-1]) / 2), 6)
