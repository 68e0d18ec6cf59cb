"""Training recipes: Table C.1 of the paper as presets, overridable field by field.

docs/fidelity.md lists where a preset and the paper's released code differ, and the fields that
reproduce the code instead.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal


@dataclass(frozen=True)
class Recipe:
    """How one network is trained. `milestones` are fractions of `epochs` (80/160 and 120/160 on CIFAR).

    `init` says how the runner builds θ0 and θ'0 ("paper": the released code's scheme for the arch,
    "pytorch": PyTorch's defaults; models.InitScheme); the trainers do not read it. `label_smoothing` is
    PyTorch's (ε: the target puts 1 - ε on the label and ε spread evenly over all classes). `mixup` is
    the α of mixup's Beta(α, α), 0 for none (jobs.py says how both trainers draw and apply it).
    """

    epochs: int
    batch_size: int
    momentum: float
    weight_decay: float
    schedule: Literal["step", "cosine", "constant"]
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_epochs: int = 0
    rewind_epoch: int = 0
    imp_rate: float = 0.2
    nesterov: bool = False
    init: Literal["paper", "pytorch"] = "paper"
    label_smoothing: float = 0.0
    mixup: float = 0.0

    def override(self, **changes: Any) -> Recipe:
        """A copy with `changes` applied; an unknown key is an error naming the known ones."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown recipe field(s) {unknown}; known: {sorted(known)}")
        if "milestones" in changes:
            changes["milestones"] = tuple(changes["milestones"])
        return replace(self, **changes)

    def lr_factor(self, epoch: float) -> float:
        """Multiplier of the initial learning rate at (fractional) `epoch` of this recipe's schedule."""
        import math

        if self.warmup_epochs and epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        if self.schedule == "constant":
            return 1.0
        if self.schedule == "cosine":
            span = max(self.epochs - self.warmup_epochs, 1)
            return 0.5 * (1 + math.cos(math.pi * (epoch - self.warmup_epochs) / span))
        passed = sum(1 for m in self.milestones if epoch >= m * self.epochs)
        return self.gamma ** passed


PRESETS: dict[str, Recipe] = {
    # Table C.1, word for word (VGG-16's 75 CIFAR warmup epochs: ARCH_PRESETS below).
    "cifar": Recipe(epochs=160, batch_size=64, momentum=0.9, weight_decay=5e-4, schedule="step",
                    milestones=(0.5, 0.75), gamma=0.1, warmup_epochs=0, rewind_epoch=8),
    "tiny-imagenet": Recipe(epochs=160, batch_size=32, momentum=0.9, weight_decay=5e-4, schedule="step",
                            milestones=(0.5, 0.75), gamma=0.1, warmup_epochs=20, rewind_epoch=8),
    # Table C.1 (8 warmup epochs; the released scripts use 5), plus what the released ImageNet scripts
    # add and the table leaves out: label smoothing 0.1 and mixup with alpha 0.2.
    "imagenet": Recipe(epochs=90, batch_size=1024, momentum=0.875, weight_decay=3.05e-5, schedule="cosine",
                       warmup_epochs=8, rewind_epoch=5, label_smoothing=0.1, mixup=0.2),
    # Not in the paper: the CPU-sized MNIST-1D benchmark of the demo.
    "mnist1d": Recipe(epochs=40, batch_size=100, momentum=0.9, weight_decay=5e-4, schedule="step",
                      milestones=(0.5, 0.75), gamma=0.1, warmup_epochs=0, rewind_epoch=2),
}

ARCH_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # Table C.1: "Warmup epochs 0 (75 for VGG-16)" on CIFAR-10/100.
    ("cifar", "vgg16"): {"warmup_epochs": 75},
}
"""Per-(preset, arch) fields of Table C.1 that hold for one architecture only; an experiment's own keys
override them like any preset field."""


def arch_preset(name: str, arch: str | None) -> dict[str, Any]:
    """The fields preset `name` sets for `arch` beyond its common ones (empty for most)."""
    return dict(ARCH_PRESETS.get((name, arch), {})) if arch is not None else {}


def recipe(name: str, arch: str | None = None, **overrides: Any) -> Recipe:
    """Preset `name` for `arch` (Table C.1, with its per-arch fields), then `overrides`."""
    if name not in PRESETS:
        raise ValueError(f"unknown recipe {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name].override(**{**arch_preset(name, arch), **overrides})
