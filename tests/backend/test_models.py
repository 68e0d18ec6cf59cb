import json

import pytest
import torch
from torch import nn

from lth_audit.cli import main
from lth_audit.backend.models import REGISTRY, build_model, count_params

TABLE2 = [("cifar10", "resnet20", 0.27e6), ("cifar10", "resnet32", 1.86e6), ("cifar10", "mobilenet-v1", 3.21e6),
          ("cifar10", "resnet18", 11.22e6), ("cifar10", "vgg16", 14.72e6),
          ("imagenet", "resnet18", 11.69e6), ("imagenet", "resnet50", 25.56e6)]


@pytest.mark.parametrize("dataset,arch,paper", TABLE2)
def test_table2_parameter_counts_within_3_percent(dataset, arch, paper):
    assert abs(count_params(arch, dataset) / paper - 1) < 0.03


def test_tiny_imagenet_has_200_classes():
    m = build_model("resnet18", "tiny-imagenet", device="meta")
    assert m.fc.out_features == 200
    assert build_model("resnet20", "cifar100", device="meta").fc.out_features == 100


def test_mnist1d_models_exact():
    mlp = build_model("mlp", "mnist1d", seed=0)
    shapes = [tuple(p.shape) for p in mlp.parameters()]
    assert shapes == [(100, 40), (100,), (100, 100), (100,), (10, 100), (10,)]
    cnn = build_model("cnn1d", "mnist1d", seed=0)
    convs = [m for m in cnn.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == \
        [(1, 25, 5, 2, 1), (25, 25, 3, 2, 1), (25, 25, 3, 2, 1)]
    assert cnn.fc.in_features == 125 and cnn.fc.out_features == 10
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in [*mlp.modules(), *cnn.modules()])
    assert build_model("mlp", "mnist1d", width=0.5).fc1.out_features == 50
    x = torch.randn(3, 40)
    for name in ("mlp", "cnn1d", "resnet1d", "resnet1d-noskip"):
        assert build_model(name, "mnist1d", seed=0)(x).shape == (3, 10)
    for name in ("resnet1d", "resnet1d-noskip"):
        assert 10_000 <= count_params(name, "mnist1d") <= 20_000


def test_noskip_has_no_shortcuts_and_wide_resnet32_is_double():
    m = build_model("resnet32-noskip", "cifar10", device="meta")
    assert not any("downsample" in n for n, _ in m.named_parameters())
    assert build_model("resnet32", "cifar10", device="meta").conv1.out_channels == 32


def test_cifar_forward():
    m = build_model("resnet20", "cifar10", seed=0)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_same_seed_same_init():
    a = build_model("resnet1d", "mnist1d", seed=3).state_dict()
    b = build_model("resnet1d", "mnist1d", seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(REGISTRY)
    assert all(isinstance(r["params"], int) and r["params"] > 0 for r in rows)
    assert main(["models", "--dataset", "mnist1d", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"mlp", "cnn1d", "resnet1d", "resnet1d-noskip"}
    assert main(["models", "--dataset", "cifar10"]) == 0
    assert "resnet20" in capsys.readouterr().out


def test_register_does_not_import_torch():
    import subprocess
    import sys
    code = ("import argparse, sys; from lth_audit.backend.commands import register; "
            "p = argparse.ArgumentParser(); register(p.add_subparsers()); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
