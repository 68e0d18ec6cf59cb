"""Random layerwise masks (rp-*) and the linear path between a run and its twin (SPEC §6)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lth_audit.backend.jobs import TensorData
from lth_audit.backend.pruning import pruned_count, random_layerwise
from lth_audit.backend.stability import instability, interpolate, path_errors, recompute_bn


def test_a_random_layerwise_mask_keeps_each_layers_count_and_moves_the_positions():
    g = torch.Generator().manual_seed(0)
    mask = {"a.weight": (torch.rand(20, 30, generator=g) > 0.7).float(),
            "b.weight": (torch.rand(10, 5, 3, generator=g) > 0.2).float()}
    rand = random_layerwise(mask, seed=3)
    assert list(rand) == list(mask)
    for name in mask:
        assert rand[name].shape == mask[name].shape and int(rand[name].sum()) == int(mask[name].sum())
    assert pruned_count(rand) == pruned_count(mask)
    assert not torch.equal(rand["a.weight"], mask["a.weight"])          # other positions
    assert all(torch.equal(random_layerwise(mask, 3)[n], rand[n]) for n in mask)        # seeded
    assert not torch.equal(random_layerwise(mask, 4)["a.weight"], rand["a.weight"])


def test_interpolation_is_masked_and_keeps_integer_buffers():
    a = {"w": torch.zeros(2, 2), "n": torch.tensor(3)}
    b = {"w": torch.ones(2, 2), "n": torch.tensor(9)}
    mid = interpolate(a, b, 0.25, {"w": torch.tensor([[1.0, 0.0], [1.0, 1.0]])})
    assert torch.equal(mid["w"], torch.tensor([[0.25, 0.0], [0.25, 0.25]])) and int(mid["n"]) == 3


def test_batchnorm_statistics_are_recomputed_as_an_average_over_the_batches():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    batches = [(torch.randn(8, 3, generator=torch.Generator().manual_seed(i)),) for i in range(3)]
    recompute_bn(net, batches)
    with torch.no_grad():
        means = torch.stack([net[0](x).mean(0) for (x,) in batches]).mean(0)
    assert torch.allclose(net[1].running_mean, means, atol=1e-6) and net[1].momentum == 0.1 and not net.training


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long()
    return TensorData(x, y, x.clone(), y.clone(), 2)


def test_the_path_between_a_network_and_itself_is_flat_and_stable():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    errors = path_errors(net, state, state, None, _data(), torch.device("cpu"), batch_size=16)
    assert len(errors) == 11 and max(errors) == pytest.approx(min(errors)) and instability(errors) == 0.0


def test_instability_is_the_rise_above_the_mean_of_the_ends():
    assert instability([10.0, 12.0, 30.0, 14.0, 12.0]) == pytest.approx(19.0)
    assert instability([10.0, 5.0, 10.0]) == 0.0
    assert instability([10.0, 9.0, 8.0]) == pytest.approx(1.0)   # unequal ends: the higher end is above their mean
