"""The single-run trainer `train_one`, and `train_many`, which hands a group to the batched trainer.

Semantics are those documented in `jobs.py` (the contract both trainers follow); this file is the
reference implementation of them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import device as dev
from .augment import Mix, augment_batch, mixup_draws
from .jobs import EVAL_BATCH, TensorData, TrainOutcome, TrainSpec, epoch_generator
from .stream import SEED_HIGH, StreamData


def mixed_loss(out: torch.Tensor, y: torch.Tensor, mix: Mix | None, smoothing: float) -> torch.Tensor:
    """The batch's training loss (jobs.py): mean smoothed cross-entropy, of mixup's two targets when mixed."""
    if mix is None:
        return F.cross_entropy(out, y, label_smoothing=smoothing)
    lam, q = mix
    per = lam * F.cross_entropy(out, y, reduction="none", label_smoothing=smoothing) \
        + (1 - lam) * F.cross_entropy(out, y[q], reduction="none", label_smoothing=smoothing)
    return per.mean()


@torch.no_grad()
def _accuracy(model: nn.Module, batches, device: torch.device) -> float:
    """Top-1 accuracy in percent over (x, y) batches, model in eval mode."""
    was = model.training
    model.eval()
    correct = total = 0
    for xb, yb in batches:
        xb = xb.contiguous(memory_format=dev.memory_format(device, xb))
        with dev.autocast(device):
            pred = model(xb).argmax(1)
        correct += int((pred == yb).sum())
        total += yb.shape[0]
    model.train(was)
    return 100.0 * correct / max(1, total)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Top-1 accuracy in percent, model in eval mode, batches of EVAL_BATCH."""
    return _accuracy(model, ((x[i:i + EVAL_BATCH], y[i:i + EVAL_BATCH]) for i in range(0, x.shape[0], EVAL_BATCH)),
                     device)


def _tensor_batches(data: TensorData, seed: int, epoch: int, bs: int, device: torch.device, mixup: float):
    """(x, y, mix) train batches of one schedule epoch of in-memory data: permutation, augmentation and mixup
    draws from the epoch generator, in the order jobs.py documents (drawn lazily, batch by batch)."""
    g = epoch_generator(seed, epoch)
    n = data.x_train.shape[0]
    perm = torch.randperm(n, generator=g).to(device)
    for it in range((n + bs - 1) // bs):
        idx = perm[it * bs:(it + 1) * bs]
        x = augment_batch(data.x_train[idx], data.augment, g)
        yield x, data.y_train[idx], _on(mixup_draws(g, x.shape[0], mixup), device) if mixup else None


def _on(mix: Mix, device: torch.device) -> Mix:
    return mix[0], mix[1].to(device)


class _Batches:
    """Where a run's train batches and test accuracy come from: in-memory tensors or a stream."""

    def __init__(self, data: TensorData | StreamData, seed: int, bs: int, device: torch.device, mixup: float = 0.0):
        self.data, self.seed, self.bs, self.device, self.mixup = data, seed, bs, device, mixup
        self.stream = isinstance(data, StreamData)
        if self.stream:
            self.n = data.n_train
            self.loader = data.train_loader(bs, seed)   # built once: workers persist over the run
            self.test_loader = data.test_loader()
        else:
            self.n = data.x_train.shape[0]
        self.iters = (self.n + bs - 1) // bs

    def epoch(self, epoch: int):
        """(x, y, mix) batches of schedule epoch `epoch` (mix: the batch's mixup draws, or None)."""
        if not self.stream:
            return _tensor_batches(self.data, self.seed, epoch, self.bs, self.device, self.mixup)
        batches = self.data.epoch_batches(self.loader, epoch)
        return self._stream_mixed(batches, epoch) if self.mixup else ((x, y, None) for x, y in batches)

    def _stream_mixed(self, batches, epoch: int):
        g = epoch_generator(self.seed, epoch)
        torch.randperm(self.n, generator=g)                      # what stream.EpochSampler.order draws first:
        torch.randint(0, SEED_HIGH, (self.n,), generator=g)      # the permutation, then one seed per sample
        for x, y in batches:
            yield x, y, _on(mixup_draws(g, x.shape[0], self.mixup), self.device)

    def test_accuracy(self, model: nn.Module) -> float:
        if self.stream:
            return _accuracy(model, self.data.batches(self.test_loader), self.device)
        return evaluate(model, self.data.x_test, self.data.y_test, self.device)

    def close(self) -> None:
        if self.stream:   # shut persistent workers down now, not at garbage collection
            for loader in (self.loader, self.test_loader):
                it = getattr(loader, "_iterator", None)
                if it is not None and hasattr(it, "_shutdown_workers"):
                    it._shutdown_workers()
                loader._iterator = None


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def train_one(spec: TrainSpec, data: TensorData | StreamData, device: torch.device | str = "cpu",
              progress: bool = False) -> TrainOutcome:
    """Train one network as `spec` says, on `data` (already on `device`; a StreamData moves each batch
    there). `spec.model` is not modified."""
    device = dev.resolve(device)
    t0 = time.perf_counter()
    fmt = dev.memory_format(device, data.x_train[:1] if isinstance(data, TensorData) else torch.empty(1, 1, 1, 1))
    model = copy.deepcopy(spec.model).to(device)
    if fmt is torch.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    params = dict(model.named_parameters())
    mask = {n: m.to(device, params[n].dtype) for n, m in (spec.mask or {}).items()}
    with torch.no_grad():
        for n, m in mask.items():
            params[n].mul_(m)
    r = spec.recipe
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=r.momentum, weight_decay=r.weight_decay,
                          nesterov=r.nesterov and r.momentum > 0)
    src = _Batches(data, spec.seed, r.batch_size, device, r.mixup)
    iters = src.iters
    kept: dict[int, dict[str, torch.Tensor]] = {}
    if 0 in spec.keep_epochs:
        kept[0] = _cpu_state(model)
    curve: list[float] = []
    best, best_state, diverged, epochs_run = -1.0, None, False, 0
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=spec.epochs, desc="  epochs", leave=False, unit="ep")
    for epoch in range(spec.epochs):
        sched_epoch = spec.schedule_offset + epoch
        for it, (xb, yb, mix) in enumerate(src.epoch(sched_epoch)):
            for group in opt.param_groups:
                group["lr"] = spec.lr * r.lr_factor(sched_epoch + it / iters)
            if mix is not None:
                xb = mix[0] * xb + (1 - mix[0]) * xb[mix[1]]
            with dev.autocast(device):
                loss = mixed_loss(model(xb.contiguous(memory_format=fmt)), yb, mix, r.label_smoothing)
            if not torch.isfinite(loss):
                diverged = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for name, m in mask.items():
                if params[name].grad is not None:
                    params[name].grad.mul_(m)
            opt.step()
            with torch.no_grad():
                for name, m in mask.items():
                    params[name].mul_(m)
        epochs_run = epoch + 1
        acc = src.test_accuracy(model)
        curve.append(acc)
        if acc > best:
            best = acc
            if spec.keep_best:
                best_state = _cpu_state(model)
        if epochs_run in spec.keep_epochs:
            kept[epochs_run] = _cpu_state(model)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(acc=f"{acc:.1f}")
        if diverged:
            break
    if bar is not None:
        bar.close()
    if not curve:  # zero epochs asked: measure the starting point
        curve.append(src.test_accuracy(model))
        best = curve[-1]
    src.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return TrainOutcome(state=_cpu_state(model), top1=curve[-1], best_top1=max(best, 0.0), diverged=diverged,
                        epochs_run=epochs_run, best_state=best_state, kept=kept, curve=curve,
                        wall_s=time.perf_counter() - t0)


def train_many(specs: Sequence[TrainSpec], data: TensorData | StreamData, device: torch.device | str = "cpu",
               batched: bool = False, progress: bool = False,
               on_result: Callable[[int, TrainOutcome, str], None] | None = None) -> list[TrainOutcome]:
    """Train a group of specs; with `batched`, try the batched trainer first, else one after another.

    `on_result(i, outcome, trainer)` (trainer: "single" or "batched") is called as each result is known (one
    at a time for the single trainer, so a kill loses at most the run in flight; all at the end of the group
    for the batched trainer).
    Streaming data always goes one spec at a time (the batched trainer raises NotImplementedError for it).
    """
    device = dev.resolve(device)
    specs = list(specs)
    if batched and len(specs) > 1:
        from .batched import train_batched

        try:
            outs = train_batched(specs, data, device)
        except NotImplementedError:
            outs = None
        if outs is not None:
            for i, o in enumerate(outs):
                if on_result:
                    on_result(i, o, "batched")
            return list(outs)
    outs = []
    for i, s in enumerate(specs):
        o = train_one(s, data, device, progress=progress)
        if on_result:
            on_result(i, o, "single")
        outs.append(o)
    return outs
