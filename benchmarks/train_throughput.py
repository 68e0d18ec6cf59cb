"""Training throughput (runs x epochs per second) of one slice of a grid, four ways, in one process.

    python benchmarks/train_throughput.py [--epochs 4] [--repeats 2] [--device cpu|cuda]

For `mlp` and `cnn1d` on MNIST-1D (12 runs = 4 lrs x 3 seeds, the mnist1d recipe, batch 100):
  reference  one run at a time: DataLoader(shuffle) + torch.optim.SGD + per-epoch test accuracy
  train_one  the single-run trainer (lth_audit.backend.train.train_one)
  batched    all runs at once (lth_audit.backend.batched.train_batched)
  vmap       all runs at once the library's way: torch.func.functional_call + vmap over the runs' stacked
             parameters, gradients by torch.func.grad, the same SGD arithmetic on the stacks (`vmap_train`)
  ceiling    forward+backward of the network on one 4000-sample batch: the most the kernels give per sample,
             timed over as many consecutive passes as one batched call makes over its samples (runs x epochs
             x train samples), like the ways it is compared with; `1-pass` is the best single pass, the rule
             before, which a shared CPU's short fast spells flatter (printed for comparison only)
With --device cuda it also trains ResNet-20 on CIFAR-shaped random tensors (10k train, crop-flip), 16 runs,
one epoch, the same ways (vmap has no rule for BatchNorm's running statistics: n/a there).
The ways take turns, --repeats rounds; each figure is its best round. Ends with the ratio lines the project tracks.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lth_audit.backend.batched import train_batched
from lth_audit.backend.data import DATASETS, load_mnist1d
from lth_audit.backend.device import autocast, keep_freed_memory
from lth_audit.backend.jobs import TensorData, TrainSpec, epoch_generator
from lth_audit.backend.models import build_model
from lth_audit.backend.recipes import Recipe, recipe
from lth_audit.backend.train import train_one

LRS = (0.003, 0.01, 0.03, 0.1)
SEEDS = (0, 1, 2)


def reference_loop(spec: TrainSpec, data: TensorData, device: torch.device) -> float:
    """The plain way: DataLoader, torch.optim.SGD, per-epoch lr from the recipe, test accuracy each epoch."""
    model = copy.deepcopy(spec.model).to(device)
    r = spec.recipe
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=r.momentum, weight_decay=r.weight_decay)
    gen = torch.Generator().manual_seed(spec.seed)
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=r.batch_size, shuffle=True,
                        generator=gen)
    acc = 0.0
    for epoch in range(spec.epochs):
        for group in opt.param_groups:
            group["lr"] = spec.lr * r.lr_factor(epoch)
        model.train()
        for xb, yb in loader:
            opt.zero_grad(set_to_none=True)
            with autocast(device):
                loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad(), autocast(device):
            acc = sum(int((model(data.x_test[i:i + 1000]).argmax(1) == data.y_test[i:i + 1000]).sum())
                      for i in range(0, len(data.x_test), 1000)) / len(data.x_test)
    return acc


def vmap_train(specs: list[TrainSpec], data: TensorData, device: torch.device
               ) -> tuple[list[dict[str, torch.Tensor]], list[float]]:
    """Train all `specs` at once with torch.func: vmap(grad(loss of functional_call)) over stacked parameters.

    The same work as the batched trainer (jobs.py's data order per run, per-iteration learning rate, SGD
    with momentum, weight decay and Nesterov on the stacks in place, test accuracy after every epoch),
    for specs of one architecture and recipe without masks, augmentation, mixup or label smoothing.
    Returns each run's final weights (CPU) and last test accuracy (%).
    """
    from torch.func import functional_call, grad, stack_module_state, vmap

    r, epochs = specs[0].recipe, specs[0].epochs
    if any(s.mask or s.schedule_offset or s.recipe != r or s.epochs != epochs for s in specs):
        raise ValueError("vmap_train: one recipe and epoch count, no masks or schedule offsets")
    if data.augment != "none" or r.mixup or r.label_smoothing:
        raise NotImplementedError("vmap_train: no augmentation, mixup or label smoothing")
    params, buffers = stack_module_state([s.model for s in specs])
    if buffers:
        raise NotImplementedError("vmap_train: vmap has no rule for BatchNorm's in-place running statistics")
    params = {k: v.detach().to(device) for k, v in params.items()}
    base = copy.deepcopy(specs[0].model).to("meta")

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(device):
            out = functional_call(base, p, (x,))
        return F.cross_entropy(out.float(), y)

    grads = vmap(grad(loss))
    logits = vmap(lambda p, x: functional_call(base, p, (x,)), in_dims=(0, None))
    lr0 = torch.tensor([s.lr for s in specs], device=device)
    bufs = {k: torch.zeros_like(v) for k, v in params.items()}
    shapes = {k: (-1,) + (1,) * (v.dim() - 1) for k, v in params.items()}
    n, bs = data.x_train.shape[0], r.batch_size
    iters = (n + bs - 1) // bs
    nesterov = r.nesterov and r.momentum > 0
    correct = torch.zeros(len(specs), device=device)
    for epoch in range(epochs):
        perms = torch.stack([torch.randperm(n, generator=epoch_generator(s.seed, epoch)) for s in specs]).to(device)
        for it in range(iters):
            idx = perms[:, it * bs:(it + 1) * bs]
            g = grads(params, data.x_train[idx], data.y_train[idx])
            lr = lr0 * r.lr_factor(epoch + it / iters)
            for k, p in params.items():
                d = g[k].add_(p, alpha=r.weight_decay)
                buf = bufs[k].mul_(r.momentum).add_(d)
                step = d.add_(buf, alpha=r.momentum) if nesterov else buf
                p.sub_(step * lr.view(shapes[k]))
        correct.zero_()
        with torch.no_grad():
            for i in range(0, data.x_test.shape[0], 1000):
                with autocast(device):
                    out = logits(params, data.x_test[i:i + 1000])
                correct += (out.argmax(-1) == data.y_test[i:i + 1000]).sum(1)
    accs = (100.0 * correct / data.x_test.shape[0]).tolist()
    states = [{k: v[i].detach().to("cpu", copy=True) for k, v in params.items()} for i in range(len(specs))]
    return states, accs


def ceiling_time(model: nn.Module, data: TensorData, device: torch.device, passes: int, batch: int = 4000
                 ) -> tuple[float, float]:
    """Seconds per sample of forward+backward on one `batch`-sample batch, after a warm-up pass: over
    `passes` consecutive passes, and the fastest of them alone."""
    model = copy.deepcopy(model).to(device).train()
    xb, yb = data.x_train[:batch], data.y_train[:batch]

    def once() -> float:
        t = time.perf_counter()
        model.zero_grad(set_to_none=True)
        with autocast(device):
            F.cross_entropy(model(xb), yb).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t

    once()
    t = time.perf_counter()
    fastest = min(once() for _ in range(passes))
    return (time.perf_counter() - t) / (passes * xb.shape[0]), fastest / xb.shape[0]


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t


def cifar_like(n_train: int, n_test: int, seed: int = 0) -> TensorData:
    """CIFAR-shaped random tensors (3x32x32, 10 classes, crop-flip augmentation) on the CPU."""
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n_train, 3, 32, 32, generator=g), torch.randint(0, 10, (n_train,), generator=g),
                      torch.randn(n_test, 3, 32, 32, generator=g), torch.randint(0, 10, (n_test,), generator=g),
                      DATASETS["cifar10"].num_classes, DATASETS["cifar10"].augment)


def grid(arch: str, dataset: str, rc: Recipe, epochs: int, lrs: tuple[float, ...], seeds: tuple[int, ...],
         device: torch.device) -> list[TrainSpec]:
    return [TrainSpec(build_model(arch, dataset, seed=s).to(device), lr=lr, seed=s, recipe=rc, epochs=epochs)
            for lr in lrs for s in seeds]


def bench(arch: str, data: TensorData, specs: list[TrainSpec], device: torch.device, repeats: int
          ) -> dict[str, float]:
    """runs x epochs / s of each way; the ways take turns, each keeps its best of `repeats` (a shared,
    noisy CPU slows whichever way runs at the time)."""
    ways: dict[str, Callable[[], object]] = {
        "reference": lambda: [reference_loop(s, data, device) for s in specs],
        "train_one": lambda: [train_one(s, data, device) for s in specs],
        "batched": lambda: train_batched(specs, data, device),
        "vmap": lambda: vmap_train(specs, data, device)}
    try:
        vmap_train([dataclasses.replace(s, epochs=0) for s in specs[:2]], data, device)
    except NotImplementedError as e:   # BatchNorm, augmentation: no comparable vmap way
        print(f"{arch}: vmap way n/a ({e})", flush=True)
        del ways["vmap"]
    best = dict.fromkeys(ways, float("inf"))
    work = len(specs) * specs[0].epochs
    n = data.x_train.shape[0]
    passes = max(1, round(work * n / min(n, 4000)))
    ceiling = one_pass = float("inf")
    for _ in range(repeats):
        for name, fn in ways.items():
            best[name] = min(best[name], timed(fn, device))
        sustained, fastest = ceiling_time(specs[0].model, data, device, passes)
        ceiling, one_pass = min(ceiling, sustained), min(one_pass, fastest)
    out = {name: work / t for name, t in best.items()}
    out.setdefault("vmap", float("nan"))
    out["ceiling"] = 1.0 / (ceiling * n)
    out["1-pass"] = 1.0 / (one_pass * n)
    print(f"{arch:9s} " + "  ".join(f"{k} {v:8.2f}" for k, v in out.items()), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    # The process setting `lth-audit run` and the demo train under; every way below shares it.
    tuned = device.type == "cpu" and keep_freed_memory()
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"allocator keeps freed blocks: {'yes' if tuned else 'no'}; runs x epochs / s (higher is better)")
    data = load_mnist1d().to(device)
    rc = recipe("mnist1d")
    res = {arch: bench(arch, data, grid(arch, "mnist1d", rc, args.epochs, LRS, SEEDS, device), device, args.repeats)
           for arch in ("mlp", "cnn1d")}
    if device.type == "cuda":
        cifar = cifar_like(10000, 2000).to(device)
        specs = grid("resnet20", "cifar10", recipe("cifar", batch_size=128), 1, (0.01, 0.03, 0.1, 0.3),
                     (0, 1, 2, 3), device)
        r20 = bench("resnet20", cifar, specs, device, 1)
        print(f"batched/reference (resnet20, 16 runs): {r20['batched'] / r20['reference']:.2f}x")
    for arch in ("mlp", "cnn1d"):
        print(f"batched/vmap ({arch}): {res[arch]['batched'] / res[arch]['vmap']:.2f}x   "
              f"vmap/reference ({arch}): {res[arch]['vmap'] / res[arch]['reference']:.2f}x")
    print(f"batched/reference (mlp): {res['mlp']['batched'] / res['mlp']['reference']:.2f}x")
    print(f"(cnn1d batched/1-pass ceiling, the former rule: {res['cnn1d']['batched'] / res['cnn1d']['1-pass']:.2f})")
    print(f"batched/ceiling (cnn1d): {res['cnn1d']['batched'] / res['cnn1d']['ceiling']:.2f}")


if __name__ == "__main__":
    main()
