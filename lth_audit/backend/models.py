"""Model registry: every architecture the backend trains, built for a dataset at a width multiplier.

A dataset fixes the stem (CIFAR 3x3 stem, ImageNet 7x7 stem, 1-D input) and the class count. The width
multiplier scales every free channel count; it is 1.0 except for small-dense training (SDT), where
`search_width` picks it so the dense net matches a ticket's non-zero count.

Channel rounding: a net with n free channel counts c_0..c_{n-1} (base b_i) uses
    c_i = max(1, floor(b_i * w + (i + 0.5) / n))
which is round(b_i * w) for one count, equals b_i * w whenever that is an integer (w = 1, w = 2 for the
wide ResNet-32), and otherwise staggers the rounding so the parameter count grows about one channel at a
time as w grows - the SDT search needs that to land within 2 % of a target on small nets.

Initialisation (`init`, a recipe field): "paper" applies the arch's `InitScheme`, the scheme of the paper's
released code for that family (docs/fidelity.md has the table); "pytorch" keeps the modules' defaults.
The architectures follow the released CIFAR code where it exists (ResNet-20, wide ResNet-32, VGG-16,
MobileNet-v1); the ResNet-18/50 on Tiny-ImageNet/ImageNet are torchvision's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .. import pytorch
from .data import DATASETS, DatasetInfo


class _Widths:
    """Hands out staggered-rounded channel counts (see module docstring). Two passes: count, then build."""

    def __init__(self, w: float, n: int):
        self.w, self.n, self.i = w, max(n, 1), 0

    def __call__(self, base: int) -> int:
        c = max(1, math.floor(base * self.w + (self.i + 0.5) / self.n))
        self.i += 1
        return c


# ----------------------------------------------------------------------------------------------------
# CIFAR-style ResNets (resnet20 / resnet32 / -noskip, and resnet18 / resnet50 with a CIFAR stem)


class _Residual(nn.Module):
    """What both residual blocks share: the shortcut (a 1x1 conv + BN "downsample" when the shape changes)
    and the final add; `skip=False` removes it (the paper's "ResNet-32-like" without residual connections)."""

    def _shortcut(self, cin: int, cout: int, stride: int, skip: bool) -> None:
        """Called last in a block's __init__, so its modules are created (and seeded) after the block's convs."""
        self.skip = skip
        self.downsample: nn.Module | None = None
        if skip and (stride != 1 or cin != cout):
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def _out(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return torch.relu(out)


class BasicBlock(_Residual):
    expansion = 1

    def __init__(self, cin: int, mid: int, cout: int, stride: int, skip: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self._shortcut(cin, cout, stride, skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return self._out(x, self.bn2(self.conv2(out)))


class Bottleneck(_Residual):
    def __init__(self, cin: int, mid: int, cout: int, stride: int, skip: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self._shortcut(cin, cout, stride, skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return self._out(x, self.bn3(self.conv3(out)))


class CifarResNet(nn.Module):
    """conv1 (stem) - stages layer1..layerN of blocks - global average pool - fc.

    `stages`: (base channels, blocks, stride). Shortcuts that change shape are 1x1 conv + BN ("downsample").
    """

    def __init__(self, stages: list[tuple[int, int, int]], stem: int, num_classes: int, in_ch: int,
                 w: float, block: str = "basic", skip: bool = True, expansion: int = 1):
        super().__init__()
        ch = _Widths(w, 1 + len(stages) + sum(b for _, b, _ in stages))
        c0 = ch(stem)
        self.conv1 = nn.Conv2d(in_ch, c0, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c0)
        self.stage_names: list[str] = []
        cin = c0
        for k, (base, blocks, stride) in enumerate(stages, start=1):
            cout = ch(base * expansion)
            seq = []
            for j in range(blocks):
                cls = BasicBlock if block == "basic" else Bottleneck
                seq.append(cls(cin, ch(base), cout, stride if j == 0 else 1, skip))
                cin = cout
            self.add_module(f"layer{k}", nn.Sequential(*seq))
            self.stage_names.append(f"layer{k}")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def cifar_resnet(stages, stem, num_classes, in_ch, w, block="basic", skip=True, expansion=1) -> nn.Module:
    return CifarResNet(stages, stem, num_classes, in_ch, w, block, skip, expansion)


# ----------------------------------------------------------------------------------------------------
# VGG-16 with BatchNorm (CIFAR) and MobileNet-v1

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


class VGG(nn.Module):
    """The paper code's CIFAR VGG (`vgg_grasp.py`): 3x3 convs without bias (BatchNorm follows each), four
    max-pools, global average pooling of the last (2x2 on CIFAR) map, one linear classifier (14.72M)."""

    def __init__(self, cfg, num_classes: int, in_ch: int, w: float):
        super().__init__()
        ch = _Widths(w, sum(1 for c in cfg if c != "M"))
        layers: list[nn.Module] = []
        cin = in_ch
        for c in cfg:
            if c == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                cout = ch(c)
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                           nn.ReLU(inplace=True)]
                cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


MBV1 = [64, (128, 2), 128, (256, 2), 256, (512, 2), 512, 512, 512, 512, 512, (1024, 2), 1024]


class MobileNetV1(nn.Module):
    def __init__(self, num_classes: int, in_ch: int, w: float, stem_stride: int = 1):
        super().__init__()
        ch = _Widths(w, 1 + len(MBV1))
        c0 = ch(32)
        self.conv1 = nn.Conv2d(in_ch, c0, 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c0)
        blocks: list[nn.Module] = []
        cin = c0
        for item in MBV1:
            cout, stride = (item, 1) if isinstance(item, int) else item
            cout = ch(cout)
            blocks.append(nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.flatten(self.pool(self.layers(x)), 1))


# ----------------------------------------------------------------------------------------------------
# MNIST-1D models


class MLP(nn.Module):
    """Linear(40,100w) ReLU Linear(100w,100w) ReLU Linear(100w,10)."""

    def __init__(self, in_features: int, num_classes: int, w: float):
        super().__init__()
        ch = _Widths(w, 2)
        h1, h2 = ch(100), ch(100)
        self.fc1 = nn.Linear(in_features, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc = nn.Linear(h2, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.fc2(torch.relu(self.fc1(x.flatten(1))))))


class CNN1d(nn.Module):
    """(N,40) -> (N,1,40); Conv1d(1,25w,5,2,1) ReLU, 2x [Conv1d(25w,25w,3,2,1) ReLU], flatten, Linear(25w*5,10)."""

    def __init__(self, length: int, num_classes: int, w: float):
        super().__init__()
        ch = _Widths(w, 3)
        c1, c2, c3 = ch(25), ch(25), ch(25)
        self.conv1 = nn.Conv1d(1, c1, 5, 2, 1)
        self.conv2 = nn.Conv1d(c1, c2, 3, 2, 1)
        self.conv3 = nn.Conv1d(c2, c3, 3, 2, 1)
        n = length
        for k, s, p in ((5, 2, 1), (3, 2, 1), (3, 2, 1)):
            n = (n + 2 * p - k) // s + 1
        self.fc = nn.Linear(c3 * n, num_classes)

    def forward(self, x):
        x = x.view(x.shape[0], 1, -1)
        x = torch.relu(self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x))))))
        return self.fc(x.flatten(1))


class Block1d(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int, skip: bool):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(mid)
        self.conv2 = nn.Conv1d(mid, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.skip = skip
        self.downsample: nn.Module | None = None
        if skip and (stride != 1 or cin != cout):
            self.downsample = nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        if self.skip:
            out = out + (x if self.downsample is None else self.downsample(x))
        return torch.relu(out)


class ResNet1d(nn.Module):
    """Tiny residual 1-D CNN with BatchNorm (~13k params): stem, blocks 16-16 / 16-32 (stride 2) / 32-32, pool, fc."""

    def __init__(self, num_classes: int, w: float, skip: bool = True):
        super().__init__()
        ch = _Widths(w, 5)
        a, b = ch(16), ch(32)
        self.conv1 = nn.Conv1d(1, a, 5, 2, 2, bias=False)
        self.bn1 = nn.BatchNorm1d(a)
        self.layer1 = Block1d(a, ch(16), a, 1, skip)
        self.layer2 = Block1d(a, ch(32), b, 2, skip)
        self.layer3 = Block1d(b, ch(32), b, 1, skip)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(b, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x.view(x.shape[0], 1, -1))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


# ----------------------------------------------------------------------------------------------------
# Initialisation


@dataclass(frozen=True)
class InitScheme:
    """How `init: paper` initialises a family: the scheme of the paper's released code for it.

    `init: pytorch` keeps the modules' own initialisation instead (PyTorch's defaults; torchvision's for
    its ResNets). A scheme sets every BatchNorm to weight 1, bias 0 (PyTorch's default as well), and:
    `conv`: every Conv1d/Conv2d weight drawn kaiming-normal for ReLU with that fan mode (std sqrt(2 / fan)),
    its bias, if any, 0; None leaves convolutions as built. `linear_std`: every Linear weight drawn
    N(0, linear_std^2), its bias 0; None leaves Linear layers as built.
    """

    name: str
    conv: Literal["fan_in", "fan_out"] | None
    linear_std: float | None
    source: str                   # where the released code (boone891214/sanity-check-LTH) does it

    @property
    def is_default(self) -> bool:
        """True when the scheme draws nothing: the built modules keep PyTorch's initialisation."""
        return self.conv is None and self.linear_std is None

    @torch.no_grad()
    def apply(self, model: nn.Module) -> nn.Module:
        """Re-initialise `model` in place, module by module in `model.modules()` order (draws from torch's RNG)."""
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)) and self.conv is not None:
                nn.init.kaiming_normal_(m.weight, mode=self.conv, nonlinearity="relu")
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Linear) and self.linear_std is not None:
                nn.init.normal_(m.weight, 0.0, self.linear_std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        return model


PYTORCH_INIT = InitScheme("pytorch", None, None, "cifar/models/mobilenet.py sets no initialisation")
RESNET20_INIT = InitScheme("kaiming-fan-out", "fan_out", None, "cifar/models/resnet20_cifar.py")
GRASP_INIT = InitScheme("kaiming-fan-out+linear-0.01", "fan_out", 0.01,
                        "cifar/models/resnet_grasp.py and vgg_grasp.py (weights_init)")
IMAGENET_INIT = InitScheme("kaiming-fan-in", "fan_in", None,
                           "imagenet/image_classification/resnet.py with the scripts' `-c fanin`")
INITS = ("paper", "pytorch")


# ----------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str                     # "image" or "1d": which datasets it accepts
    build: Callable[[DatasetInfo, float], nn.Module]
    dense: tuple[str, ...]        # default layers left dense (module names / globs), as the paper's profiles
    description: str
    default_dataset: str
    init: InitScheme              # what `init: paper` means for this arch
    version: int = 1              # raised when what the registry builds or prunes by default changes


def _torchvision_or_cifar(name: str, cifar: Callable[[DatasetInfo, float], nn.Module]):
    def build(info: DatasetInfo, w: float) -> nn.Module:
        if info.stem == "cifar":
            return cifar(info, w)
        import torchvision.models as tvm
        if w != 1.0:
            if name == "resnet50":
                return tvm.resnet50(num_classes=info.num_classes, width_per_group=max(1, round(64 * w)))
            raise ValueError(f"{name} on {info.name} is torchvision's model; width multipliers are not supported")
        return getattr(tvm, name)(num_classes=info.num_classes)
    return build


def _stages(widths, blocks, strides):
    return list(zip(widths, blocks, strides))


REGISTRY: dict[str, ModelEntry] = {}


def _register(e: ModelEntry) -> None:
    REGISTRY[e.name] = e


_register(ModelEntry(
    "resnet20", "image",
    lambda d, w: cifar_resnet(_stages((16, 32, 64), (3, 3, 3), (1, 2, 2)), 16, d.num_classes, d.channels, w),
    ("conv1", "fc"), "ResNet-20 (CIFAR, 16-32-64, 1x1 conv shortcuts)", "cifar10", RESNET20_INIT))
_register(ModelEntry(
    "resnet32", "image",
    lambda d, w: cifar_resnet(_stages((32, 64, 128), (5, 5, 5), (1, 2, 2)), 32, d.num_classes, d.channels, w),
    ("conv1", "fc", "*.downsample.0"), "ResNet-32, wide (width x2: 32-64-128), as in the paper", "cifar10",
    GRASP_INIT, version=2))
_register(ModelEntry(
    "resnet32-noskip", "image",
    lambda d, w: cifar_resnet(_stages((32, 64, 128), (5, 5, 5), (1, 2, 2)), 32, d.num_classes, d.channels, w,
                              skip=False),
    ("conv1", "fc"), "wide ResNet-32 with the residual connections removed", "cifar10", GRASP_INIT))
_register(ModelEntry(
    "resnet18", "image",
    _torchvision_or_cifar("resnet18", lambda d, w: cifar_resnet(
        _stages((64, 128, 256, 512), (2, 2, 2, 2), (1, 2, 2, 2)), 64, d.num_classes, d.channels, w)),
    ("conv1", "fc"), "ResNet-18 (CIFAR stem on 32x32 data; torchvision's on Tiny-ImageNet/ImageNet)", "cifar10",
    IMAGENET_INIT))
_register(ModelEntry(
    "resnet50", "image",
    _torchvision_or_cifar("resnet50", lambda d, w: cifar_resnet(
        _stages((64, 128, 256, 512), (3, 4, 6, 3), (1, 2, 2, 2)), 64, d.num_classes, d.channels, w,
        block="bottleneck", expansion=4)),
    ("conv1", "fc"), "ResNet-50 (CIFAR stem on 32x32 data; torchvision's on Tiny-ImageNet/ImageNet)", "cifar10",
    IMAGENET_INIT))
_register(ModelEntry(
    "vgg16", "image", lambda d, w: VGG(VGG16, d.num_classes, d.channels, w),
    ("features.0", "fc"), "VGG-16 with BatchNorm, bias-free convs, one linear classifier", "cifar10",
    GRASP_INIT, version=2))
_register(ModelEntry(
    "mobilenet-v1", "image",
    lambda d, w: MobileNetV1(d.num_classes, d.channels, w, stem_stride=1 if d.stem == "cifar" else 2),
    ("conv1", "fc"), "MobileNet-v1 (stride-1 stem on 32x32 data)", "cifar10", PYTORCH_INIT))
_register(ModelEntry(
    "mlp", "1d", lambda d, w: MLP(d.length, d.num_classes, w), ("fc",),
    "MLP 40-100-100-10 (only the classifier stays dense)", "mnist1d", PYTORCH_INIT))
_register(ModelEntry(
    "cnn1d", "1d", lambda d, w: CNN1d(d.length, d.num_classes, w), ("conv1", "fc"),
    "1-D CNN, three stride-2 convs of 25 channels, no BatchNorm", "mnist1d", RESNET20_INIT))
_register(ModelEntry(
    "resnet1d", "1d", lambda d, w: ResNet1d(d.num_classes, w, skip=True), ("conv1", "fc"),
    "tiny residual 1-D CNN with BatchNorm", "mnist1d", RESNET20_INIT))
_register(ModelEntry(
    "resnet1d-noskip", "1d", lambda d, w: ResNet1d(d.num_classes, w, skip=False), ("conv1", "fc"),
    "resnet1d with the residual connections removed", "mnist1d", RESNET20_INIT))


def entry(name: str) -> ModelEntry:
    if name not in REGISTRY:
        raise ValueError(f"unknown arch {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def init_scheme(name: str, init: str = "paper") -> InitScheme:
    """The scheme `build_model(name, ..., init=init)` applies: the arch's paper scheme, or PyTorch's defaults."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; known: {', '.join(INITS)}")
    return entry(name).init if init == "paper" else PYTORCH_INIT


def build_model(name: str, dataset: str, width: float = 1.0, seed: int | None = None,
                device: torch.device | str | None = None, init: str = "paper") -> nn.Module:
    """Build `name` for `dataset`, initialised by `init` ("paper": the released code's scheme for the arch,
    see `InitScheme`; "pytorch": the modules' defaults). With `seed`, the initial weights are a function
    of the seed alone (built on the CPU under torch.manual_seed(seed), the caller's RNG left alone).
    On the meta device nothing is initialised."""
    e = entry(name)
    scheme = init_scheme(name, init)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    info = DATASETS[dataset]
    if e.kind != info.kind:
        raise ValueError(f"arch {name!r} takes {e.kind} data; dataset {dataset!r} is {info.kind}")

    def make() -> nn.Module:
        model = e.build(info, width)
        return model if device is not None and torch.device(device).type == "meta" else scheme.apply(model)

    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return make()
    if device is not None:
        with torch.device(device):
            return make()
    return make()


def count_params(name: str, dataset: str, width: float = 1.0) -> int:
    """Parameter count, built on the meta device (no memory, no init)."""
    return pytorch.count_params(lambda w: build_model(name, dataset, w, device="meta"), width)


def search_width(name: str, dataset: str, target: int, lo: float = 1e-3, hi: float = 1.0) -> tuple[float, int]:
    """The width multiplier whose parameter count is closest to `target` (SDT). Returns (width, params);
    the search is `lth_audit.pytorch.small_dense_width` on this registry entry."""
    return pytorch.small_dense_width(lambda w: build_model(name, dataset, w, device="meta"), target, lo, hi)
