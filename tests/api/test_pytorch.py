"""lth_audit.pytorch on models pruned with torch.nn.utils.prune, and on plain models with mask dicts."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from lth_audit import pytorch as P
from lth_audit.backend.models import REGISTRY, build_model
from lth_audit.correlation import correlation_indicator


class Net(nn.Module):
    """A stem conv, one hidden conv, one hidden linear and a classifier: every kind SPEC §1 names."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.stem = nn.Conv1d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.conv = nn.Conv1d(8, 8, 3, padding=1)
        self.hidden = nn.Linear(8 * 10, hidden)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        x = torch.relu(self.conv(torch.relu(self.bn(self.stem(x)))))
        return self.head(torch.relu(self.hidden(x.flatten(1))))


def pruned_net(amount: float = 0.5, seed: int = 0, layers=("conv", "hidden")) -> Net:
    torch.manual_seed(seed)
    net = Net()
    prune.global_unstructured([(getattr(net, n), "weight") for n in layers], prune.L1Unstructured, amount=amount)
    return net


def test_default_exclusions_are_the_registry_profiles():
    assert P.default_dense(Net()) == ("stem", "head")
    assert P.prunable_names(Net()) == ["conv.weight", "hidden.weight"]
    assert P.prunable_names(Net(), exclude=()) == ["stem.weight", "conv.weight", "hidden.weight", "head.weight"]
    for name, e in REGISTRY.items():  # the paper's profiles leave at least the first conv and the last linear dense
        assert set(P.default_dense(build_model(name, e.default_dataset, device="meta"))) <= set(e.dense), name


def test_masks_from_a_pruned_model_its_state_dict_or_a_dict():
    net = pruned_net()
    m = P.masks(net)
    assert sorted(m) == ["conv.weight", "hidden.weight"]
    assert torch.equal(m["conv.weight"], net.conv.weight_mask)
    assert P.masks(net.state_dict()).keys() == m.keys()
    plain = {"conv.weight": torch.ones(8, 8, 3)}
    assert torch.equal(P.masks(plain)["conv.weight"], plain["conv.weight"])
    assert P.masks(Net()) == {}
    with pytest.raises(ValueError, match="other than 0 and 1"):
        P.masks({"conv.weight": torch.full((2,), 0.5)})


def test_sparsity_is_measured_over_the_prunable_weights():
    net = pruned_net(0.5)
    n = net.conv.weight.numel() + net.hidden.weight.numel()
    assert P.sparsity(net) == round(0.5 * n) / n
    # the same from exact zeros, once the pruning is made permanent
    for mod in (net.conv, net.hidden):
        prune.remove(mod, "weight")
    assert P.masks(net) == {}
    assert P.sparsity(net) == round(0.5 * n) / n
    # a plain model with a mask dict
    plain = Net()
    mask = {"hidden.weight": (torch.arange(plain.hidden.weight.numel()) % 4 == 0).float().view_as(plain.hidden.weight)}
    assert P.sparsity(plain, mask) == pytest.approx(0.75 * plain.hidden.weight.numel() / n)


def test_pruning_an_excluded_layer_is_an_error_unless_the_exclusions_say_so():
    net = pruned_net(0.5, layers=("conv", "hidden", "head"))
    with pytest.raises(ValueError, match="head.weight"):
        P.sparsity(net)
    total = sum(getattr(net, k).weight.numel() for k in ("stem", "conv", "hidden", "head"))
    assert P.sparsity(net, exclude=()) == pytest.approx(
        sum(int((getattr(net, k).weight_mask == 0).sum()) for k in ("conv", "hidden", "head")) / total)
    assert 0.0 < P.sparsity(net, exclude=("stem",)) < 1.0


def test_nonzero_params_counts_a_pruned_tensor_once():
    dense = Net()
    total = sum(p.numel() for p in dense.parameters())
    net = pruned_net(0.5)
    pruned = int(sum((m == 0).sum() for m in P.masks(net).values()))
    assert P.nonzero_params(net) == total - pruned
    assert P.nonzero_params(dense, P.masks(net)) == total - pruned
    assert P.nonzero_params(dense) == total  # no masks: zeros of the conv and linear weights (BN biases are 0)
    for mod in (net.conv, net.hidden):
        prune.remove(mod, "weight")
    assert P.nonzero_params(net) == total - pruned
    with pytest.raises(KeyError, match="nope"):
        P.nonzero_params(dense, {"nope.weight": torch.zeros(3)})


def test_rewind_loads_theta0_into_weight_orig_and_keeps_the_masks():
    torch.manual_seed(1)
    net = Net()
    theta0 = copy.deepcopy(net.state_dict())
    prune.global_unstructured([(net.conv, "weight"), (net.hidden, "weight")], prune.L1Unstructured, amount=0.6)
    mask = net.conv.weight_mask.clone()
    with torch.no_grad():  # "training" moves every parameter
        for p in net.parameters():
            p.add_(1.0)
    P.rewind(net, theta0)
    assert torch.equal(net.conv.weight_orig, theta0["conv.weight"])
    assert torch.equal(net.conv.weight_mask, mask)
    assert torch.equal(net.conv.weight, theta0["conv.weight"] * mask)  # effective weights, before any forward
    assert torch.equal(net.head.bias, theta0["head.bias"]) and torch.equal(net.stem.weight, theta0["stem.weight"])
    # from a pruned model's state dict (x_orig, x_mask) as well
    other = pruned_net(0.6, seed=3)
    P.rewind(net, other.state_dict())
    assert torch.equal(net.conv.weight_orig, other.conv.weight_orig * other.conv.weight_mask)
    with pytest.raises(KeyError, match="head.bias"):
        P.rewind(net, {k: v for k, v in theta0.items() if k != "head.bias"})


def test_r_p_is_the_correlation_indicator_on_the_kept_weights():
    net = pruned_net(0.5)
    theta0 = P.weights(net)
    assert P.r_p(net, net) == 1.0
    later = pruned_net(0.5, seed=7)
    m = P.masks(net)
    expected = correlation_indicator({k: theta0[k].numpy() for k in m}, {k: P.weights(later)[k].numpy() for k in m},
                                     p=0.2, masks={k: v.numpy() for k, v in m.items()})
    assert P.r_p(net, later.state_dict(), p=0.2) == expected
    assert P.r_p(theta0, P.weights(later), m, p=0.2) == expected
    # without masks: a model's prunable weights; state dicts: every tensor of 2+ dimensions
    a, b = Net(), Net()
    names = P.prunable_names(a)
    assert P.r_p(a, b) == correlation_indicator({n: a.state_dict()[n].numpy() for n in names},
                                                {n: b.state_dict()[n].numpy() for n in names})
    assert 0.0 <= P.r_p(a.state_dict(), b.state_dict()) <= 1.0


def _count(hidden: int) -> int:
    return sum(p.numel() for p in Net(hidden).parameters())


@settings(max_examples=15, deadline=None)
@given(target=st.integers(min_value=_count(1), max_value=_count(64)))
def test_small_dense_width_is_the_closest_count_the_builder_can_reach(target):
    width, params = P.small_dense_width(lambda w: Net(max(1, round(64 * w))), target)
    assert params == _count(max(1, round(64 * width)))
    best = min(abs(_count(h) - target) for h in range(1, 65))
    assert abs(params - target) == best


def test_small_dense_width_stops_at_the_bounds():
    assert P.small_dense_width(lambda w: Net(max(1, round(64 * w))), 10**9) == (1.0, _count(64))
    assert P.small_dense_width(lambda w: Net(max(1, round(64 * w))), 1) == (1e-3, _count(1))
