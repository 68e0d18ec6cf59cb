"""What the trainers exchange: one network to train (TrainSpec) and what came of it (TrainOutcome).

Both the single-run trainer and the batched trainer take a list of TrainSpec and return one TrainOutcome
per spec, in order, with the same semantics; the experiment runner does not care which one ran.

The semantics both trainers follow (reference implementation: `train.train_one`):

- Starting weights are `spec.model`'s state (never modified by the trainer); the mask, if any, is applied
  to them first. The model is in train mode for steps, eval mode for testing. (`recipe.init` is how the
  runner built those weights; the trainers do not read it.)
- Loss: the batch mean of the per-sample cross-entropy with PyTorch's label smoothing ε =
  recipe.label_smoothing, i.e. (1 - ε)·(-log p_y) + ε·mean over classes of (-log p_c) (ε = 0: plain).
- Epoch e of this call is epoch E = spec.schedule_offset + e of the recipe's schedule. Its randomness
  comes from one CPU generator `torch.Generator("cpu").manual_seed(spec.seed * 1_000_003 + E)`:
  first `perm = torch.randperm(N, generator=g)` (data order; the last batch is partial, not dropped,
  iters = ceil(N / batch_size)), then, per batch in order, the augmentation draws of that batch:
    "crop-flip": off = randint(0, 9, (B, 2), g) (row, col offset into the 4-pixel zero-padded
                 normalised image), then flip = randint(0, 2, (B,), g) (1 = horizontal flip);
    "shift":     s = randint(-4, 5, (B,), g), the sample rolled circularly by s (torch.roll direction);
    "none":      no draws;
  then, when recipe.mixup = α > 0, the mixup draws of that batch (`augment.mixup_draws`):
    gx, gy = torch._standard_gamma(torch.full((2,), α, dtype=float64), generator=g) (two Gamma(α, 1)),
    λ = gx / (gx + gy) (a Beta(α, α) draw; 0.5 in the underflow case gx + gy = 0), then
    q = randperm(B, g). The augmented batch x becomes λ·x + (1 - λ)·x[q] and the loss is the batch mean of
    λ·ℓ(y) + (1 - λ)·ℓ(y[q]), ℓ the per-sample smoothed cross-entropy above (mixup's targets; with one-hot
    labels this equals the soft-target cross-entropy of λ·y + (1 - λ)·y[q]).
  Draws are made on the CPU and moved to the device; augmentation and mixing run on the device.
- Learning rate is set PER ITERATION: at iteration i of epoch E (iters per epoch), before the step,
  lr = spec.lr * recipe.lr_factor(E + i / iters). (Step milestones therefore switch exactly at the
  epoch boundary; warmup and cosine move every iteration.)
- Optimiser: torch.optim.SGD(lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay on every
  parameter, nesterov=recipe.nesterov and momentum > 0).
- Masking: after backward, each masked parameter's grad is multiplied by its mask; after opt.step() the
  weights are multiplied by the mask again. Pruned weights thus stay exactly 0 and their momentum buffers
  stay 0 (weight decay of a 0 weight is 0).
- Divergence: if a batch's loss is NaN/inf, no step is taken for it and training stops; the test accuracy
  of the weights at that moment is measured and is `top1` (and appended to `curve`), `diverged=True`,
  `epochs_run` counts the epoch that was interrupted.
- After every epoch: test accuracy (% top-1, eval batches of 1000) appended to `curve`; `best_top1` is the
  max of `curve`; `best_state` is kept only when `spec.keep_best`. `kept[k]` holds the weights after k
  epochs of this call for every k in `spec.keep_epochs` (k = 0: the starting weights after masking).
- Streaming data (`stream.StreamData`, for data sets too big for memory) keeps the data order (the same
  permutation) and all of the above except the augmentation draws: after the permutation the generator
  draws one seed per sample, and each sample's torchvision transform runs under that seed (stream.py).
  The mixup draws then follow those N seeds, batch by batch in order (the same draws per batch as above).
- On CUDA: bf16 autocast for forward passes and channels_last for 4-D inputs; on CPU plain fp32, so fixed
  seeds reproduce bit for bit. Returned states are CPU tensors, contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .recipes import Recipe

EVAL_BATCH = 1000
"""Test samples per evaluation batch (both trainers)."""


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of one epoch: data order, then per-batch augmentation draws (see above)."""
    return torch.Generator(device="cpu").manual_seed(seed * 1_000_003 + epoch)


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
    keep_best: bool = False         # also return the weights of the best-test-accuracy epoch (prune_from: best)


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
