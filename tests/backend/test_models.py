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


def _std(model, name):
    return float(model.state_dict()[name].std())


@pytest.mark.parametrize("init,want", [("paper", (2 / (16 * 9)) ** 0.5), ("pytorch", 1 / (3 * 16 * 9) ** 0.5)])
def test_resnet20_conv_std_under_both_inits(init, want):
    """A 3x3 conv 16 -> 16: kaiming-normal fan_out (the released resnet20_cifar.py), std sqrt(2/144) = 0.118;
    PyTorch's default kaiming-uniform(a=sqrt 5), std 1/sqrt(3 * 144) = 0.048. 2304 weights: std within 5 %."""
    m = build_model("resnet20", "cifar10", seed=0, init=init)
    for name in ("layer1.0.conv1.weight", "layer1.2.conv2.weight"):
        assert _std(m, name) == pytest.approx(want, rel=0.05)
    bn = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert bn and all(torch.all(b.weight == 1) and torch.all(b.bias == 0) for b in bn)
    assert _std(m, "fc.weight") == pytest.approx(1 / (3 * 64) ** 0.5, rel=0.1)      # the classifier as built


def test_paper_init_of_each_family():
    vgg = build_model("vgg16", "cifar10", seed=0)
    assert _std(vgg, "features.3.weight") == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.03)   # fan_out 64*9
    assert _std(vgg, "fc.weight") == pytest.approx(0.01, rel=0.1) and torch.all(vgg.fc.bias == 0)
    r32 = build_model("resnet32", "cifar10", seed=0)
    assert _std(r32, "layer3.0.downsample.0.weight") == pytest.approx((2 / 128) ** 0.5, rel=0.05)
    assert _std(r32, "fc.weight") == pytest.approx(0.01, rel=0.15)
    r50 = build_model("resnet50", "imagenet", seed=0)   # the released ImageNet code: kaiming-normal fan_in
    assert _std(r50, "layer1.0.conv2.weight") == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.03)
    cnn = build_model("cnn1d", "mnist1d", seed=0)       # MNIST-1D models: ResNet-20's scheme
    assert _std(cnn, "conv2.weight") == pytest.approx((2 / (25 * 3)) ** 0.5, rel=0.1) and torch.all(cnn.conv2.bias == 0)
    for arch, ds in (("mlp", "mnist1d"), ("mobilenet-v1", "cifar10")):   # nothing to draw: the defaults
        a, b = build_model(arch, ds, seed=4), build_model(arch, ds, seed=4, init="pytorch")
        assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with pytest.raises(ValueError, match="unknown init"):
        build_model("mlp", "mnist1d", init="xavier")


@pytest.mark.parametrize("arch", [n for n in REGISTRY if REGISTRY[n].default_dataset == "cifar10"])
def test_paper_init_is_a_function_of_the_seed(arch):
    torch.manual_seed(123)
    a = build_model(arch, "cifar10", width=0.25, seed=7).state_dict()
    torch.manual_seed(456)
    b = build_model(arch, "cifar10", width=0.25, seed=7).state_dict()
    c = build_model(arch, "cifar10", width=0.25, seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_vgg16_is_the_released_cifar_vgg():
    m = build_model("vgg16", "cifar10", device="meta")
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    assert len(convs) == 13 and all(c.bias is None for c in convs)
    assert sum(isinstance(mod, nn.MaxPool2d) for mod in m.modules()) == 4   # the last map (2x2) is averaged
    assert count_params("vgg16", "cifar10") == 14_724_042                    # Table 2: 14.72M
    assert build_model("vgg16", "cifar10", seed=0)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
