"""What the trainers exchange: one network to train (TrainSpec) and what came of it (TrainOutcome).

Both the single-run trainer and the batched trainer take a list of TrainSpec and return one TrainOutcome
per spec, in order, with the same semantics; the experiment runner does not care which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .recipes import Recipe

Mask = dict[str, torch.Tensor]
"""Parameter name -> {0, 1} tensor of that parameter's shape. Parameters not named are dense."""


@dataclass
class TensorData:
    """A data set small enough to live as tensors on the training device.

    `augment` names the augmentation done on the device per batch: "none", or "crop-flip" (CIFAR:
    4-pixel padded random crop and horizontal flip), or "shift" (1-D random circular shift, MNIST-1D).
    Inputs are already normalised.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    augment: str = "none"

    def to(self, device: torch.device | str) -> TensorData:
        return TensorData(self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
                          self.y_test.to(device), self.num_classes, self.augment)


@dataclass
class TrainSpec:
    """One network to train: its starting weights are `model`'s (θ0, θ'0 or θt, already masked)."""

    model: nn.Module
    lr: float
    seed: int                       # drives data order and augmentation
    recipe: Recipe
    epochs: int                     # epochs to train in this call
    mask: Mask | None = None
    schedule_offset: int = 0        # epochs of the recipe's schedule already spent (wr-*: the rewind epoch)
    keep_epochs: tuple[int, ...] = ()  # also return the weights after these epochs (θt for rewinding)


@dataclass
class TrainOutcome:
    state: dict[str, torch.Tensor]  # weights after the last epoch, on the CPU, masked weights exactly 0
    top1: float                     # test accuracy (%) after the last epoch trained
    best_top1: float                # best test accuracy (%) over the epochs
    diverged: bool                  # loss became NaN/inf; training stopped there
    epochs_run: int
    best_state: dict[str, torch.Tensor] | None = None
    kept: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    curve: list[float] = field(default_factory=list)  # test accuracy after each epoch
    wall_s: float = 0.0
