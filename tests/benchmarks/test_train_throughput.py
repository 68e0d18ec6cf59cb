"""benchmarks/train_throughput.py: its vmap way trains what the other ways train."""

from __future__ import annotations

import pytest
import torch

from lth_audit.backend.data import load_mnist1d
from lth_audit.backend.recipes import recipe
from lth_audit.backend.train import train_one


def test_vmap_way_equals_the_single_run_trainer(script):
    tt = script("train_throughput")
    data = load_mnist1d()
    specs = tt.grid("mlp", "mnist1d", recipe("mnist1d", nesterov=True), 1, (0.01, 0.1), (0, 1), torch.device("cpu"))
    states, accs = tt.vmap_train(specs, data, torch.device("cpu"))
    assert len(states) == len(accs) == 4
    for spec, state, acc in zip(specs, states, accs):
        ref = train_one(spec, data, "cpu")
        assert acc == pytest.approx(ref.top1, abs=1e-4)
        assert set(state) == set(ref.state)
        for k, v in state.items():
            assert torch.allclose(v, ref.state[k], atol=1e-5), k
            assert not torch.equal(v, spec.model.state_dict()[k])   # it trained


def test_vmap_way_refuses_what_it_cannot_train(script):
    tt = script("train_throughput")
    data = load_mnist1d()
    specs = tt.grid("resnet1d", "mnist1d", recipe("mnist1d"), 1, (0.1,), (0, 1), torch.device("cpu"))
    with pytest.raises(NotImplementedError, match="BatchNorm"):
        tt.vmap_train(specs, data, torch.device("cpu"))
    cifar = tt.cifar_like(8, 4)
    assert cifar.x_train.shape == (8, 3, 32, 32) and cifar.augment == "crop-flip"
    specs = tt.grid("mlp", "mnist1d", recipe("mnist1d"), 1, (0.1,), (0,), torch.device("cpu"))
    with pytest.raises(NotImplementedError, match="augmentation"):
        tt.vmap_train(specs, tt.TensorData(data.x_train, data.y_train, data.x_test, data.y_test, 10, "shift"),
                      torch.device("cpu"))
