"""The device check: one command to run when a GPU is lent (under 8 minutes on one GPU).

    python benchmarks/gpu_check.py [--json PATH] [--device auto|cuda|cpu] [--train-size N]

On CUDA it measures and checks:
  1. epoch time of ResNet-20 (width 1) on CIFAR-shaped random tensors (50k train, 10k test, crop-flip,
     batch 128, the cifar recipe, bf16 autocast): the plain loop (one run: DataLoader + torch.optim.SGD,
     `train_throughput.reference_loop`), the single-run trainer `train_one`, and the batched trainer at
     R = 8 and R = 16 runs; per-run epoch seconds and the batched speed-up over R plain-loop epochs;
  2. batched equal to one-at-a-time: R = 4 ResNet-20 runs (lr 0.01 and 0.1), 2 steps of 128, trained by
     `train_batched` and by `train_one`; per run, the relative difference of the two weight updates
     (||Δ_batched − Δ_single|| / ||Δ_single|| over all parameters and BatchNorm statistics) must stay
     within the tolerance of the device's arithmetic (bf16 autocast on CUDA: BF16_TOL; fp32 on the CPU:
     FP32_TOL), and the test accuracies (256 examples) at most one example apart. Two steps, because
     rounding differences grow about tenfold a step at lr 0.1 through BatchNorm (fp32 on the CPU:
     2e-7, 4e-6, 4e-5 after 1, 2, 4 steps);
  3. a tiny `lth-audit run --device cuda` (resnet1d on MNIST-1D, 2 lrs x 2 seeds, every setting of the
     demo at s = 0.59, 2 epochs): it must finish, record every run, on the device asked for.
Then prints one table of figures and checks (and writes it as JSON with --json PATH). Exit status 0 when
every check passed, 1 when one failed.

Without CUDA (or with --device cpu) it is a smoke test of the same code on the CPU: sizes reduced
(128 training examples in part 1, R = 2, 2 runs in part 2, one lr and 1 epoch in part 3), fp32
tolerance, and every figure marked as a CPU figure, not a GPU measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import cifar_like, reference_loop  # noqa: E402

from lth_audit.backend.batched import train_batched  # noqa: E402
from lth_audit.backend.device import describe  # noqa: E402
from lth_audit.backend.jobs import TensorData, TrainSpec  # noqa: E402
from lth_audit.backend.models import build_model  # noqa: E402
from lth_audit.backend.recipes import recipe  # noqa: E402
from lth_audit.backend.train import train_one  # noqa: E402

BF16_TOL = 3e-2
"""Relative update difference allowed under bf16 autocast (unit roundoff 2^-9 ≈ 2e-3, through ResNet-20's
forward and backward in a different kernel order): a first bound, to be confirmed by the first GPU run."""
FP32_TOL = 1e-4
"""The same in fp32 on the CPU (measured there after 2 steps: 4e-6 at most)."""
EQ_EXAMPLES = 256
"""Training and test examples of part 2: two steps of 128."""
LRS = (0.01, 0.03, 0.1, 0.3)


@dataclass
class Report:
    """Figures (name, value, unit) and checks (name, passed, detail) gathered while the parts run."""

    device: str
    figures: list[tuple[str, float, str]] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def figure(self, name: str, value: float, unit: str) -> None:
        self.figures.append((name, value, unit))
        print(f"  {name}: {value:.4g} {unit}", flush=True)

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append((name, passed, detail))
        print(f"  {'PASS' if passed else 'FAIL'} {name}: {detail}", flush=True)

    def table(self) -> str:
        rows = [f"| figure ({self.device}) | value | unit |", "|---|---:|---|"]
        rows += [f"| {n} | {v:.4g} | {u} |" for n, v, u in self.figures]
        rows += ["", "| check | result | detail |", "|---|---|---|"]
        rows += [f"| {n} | {'pass' if p else 'FAIL'} | {d} |" for n, p, d in self.checks]
        return "\n".join(rows)

    def as_json(self) -> dict:
        return {"schema": "lth-audit.gpu-check/1", "device": self.device, "torch": torch.__version__,
                "host": platform.node(),
                "figures": [{"name": n, "value": v, "unit": u} for n, v, u in self.figures],
                "checks": [{"name": n, "passed": p, "detail": d} for n, p, d in self.checks]}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def resnet20_specs(r: int, epochs: int = 1) -> list[TrainSpec]:
    rc = recipe("cifar", batch_size=128, epochs=max(epochs, 1))
    return [TrainSpec(build_model("resnet20", "cifar10", seed=i), lr=LRS[i % len(LRS)], seed=i, recipe=rc,
                      epochs=epochs) for i in range(r)]


def subset(data: TensorData, n_train: int, n_test: int) -> TensorData:
    return TensorData(data.x_train[:n_train], data.y_train[:n_train], data.x_test[:n_test], data.y_test[:n_test],
                      data.num_classes, data.augment)


def epoch_times(rep: Report, device: torch.device, data: TensorData, rs: tuple[int, ...]) -> None:
    """Part 1: per-run epoch seconds, plain loop vs train_one vs batched at each R (after a warm-up of each
    shape on a small subset: cuDNN's algorithm search is not an epoch's cost)."""
    warm = subset(data, 128, 1000)
    one = resnet20_specs(1)[0]
    reference_loop(one, warm, device)
    train_one(one, warm, device)
    t_ref = seconds(lambda: reference_loop(one, data, device), device)
    t_one = seconds(lambda: train_one(one, data, device), device)
    rep.figure("plain loop, one run, epoch", t_ref, "s")
    rep.figure("train_one, one run, epoch", t_one, "s")
    for r in rs:
        specs = resnet20_specs(r)
        train_batched(specs, warm, device)
        t = seconds(lambda: train_batched(specs, data, device), device)
        rep.figure(f"batched R={r}, epoch of all runs", t, "s")
        rep.figure(f"batched R={r}, per run", t / r, "s")
        rep.figure(f"batched R={r} speed-up over {r} plain-loop epochs", r * t_ref / t, "x")
        rep.figure(f"batched R={r} speed-up over {r} train_one epochs", r * t_one / t, "x")
    if device.type == "cuda":
        rep.figure("peak GPU memory", torch.cuda.max_memory_allocated(device) / 2**30, "GiB")


def update_difference(start: dict[str, torch.Tensor], a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]
                      ) -> float:
    """||Δa − Δb|| / ||Δb|| over every floating-point tensor, Δ = end − start."""
    num = den = 0.0
    for k, s in start.items():
        if not s.is_floating_point():
            continue
        da, db = a[k].double() - s.double(), b[k].double() - s.double()
        num += float((da - db).pow(2).sum())
        den += float(db.pow(2).sum())
    return (num / den) ** 0.5 if den else float("inf")


def equivalence(rep: Report, device: torch.device, data: TensorData, runs: int) -> None:
    """Part 2: the batched trainer against train_one, run by run, within the device's tolerance."""
    tol = BF16_TOL if device.type == "cuda" else FP32_TOL
    small = subset(data, EQ_EXAMPLES, EQ_EXAMPLES)
    acc_tol = 100.0 / small.y_test.shape[0] + 1e-9   # one test example
    specs = [TrainSpec(build_model("resnet20", "cifar10", seed=i), lr=(0.01, 0.1)[i % 2], seed=i,
                       recipe=recipe("cifar", batch_size=128, epochs=1), epochs=1) for i in range(runs)]
    batched = train_batched(specs, small, device)
    worst, acc_gap = 0.0, 0.0
    for spec, b in zip(specs, batched):
        single = train_one(spec, small, device)
        start = {k: v.detach().cpu() for k, v in spec.model.state_dict().items()}
        worst = max(worst, update_difference(start, b.state, single.state))
        acc_gap = max(acc_gap, abs(b.top1 - single.top1))
    rep.figure(f"batched vs one at a time: relative update difference (worst of {runs} runs)", worst, "")
    rep.figure(f"batched vs one at a time: test accuracy difference (worst of {runs} runs)", acc_gap, "pp")
    rep.check("batched equals one at a time", worst <= tol and acc_gap <= acc_tol,
              f"update difference {worst:.2e} (tolerance {tol:g}), accuracy {acc_gap:.2f} pp (tolerance "
              f"{acc_tol:.2f}: one example)")


def tiny_run(rep: Report, device: torch.device, epochs: int, lrs: tuple[float, ...]) -> None:
    """Part 3: `lth-audit run` end to end on the device, in a fresh folder with its own MNIST-1D cache."""
    from lth_audit.records import load_records

    with tempfile.TemporaryDirectory(prefix="lth-gpu-check-") as tmp:
        exp = {"name": "gpu-check", "arch": "resnet1d", "dataset": "mnist1d", "recipe": "mnist1d", "epochs": epochs,
               "lrs": list(lrs), "seeds": [0, 1],
               "settings": ["pretrain", "lt-imp", "rr-imp", "lt-omp", "rr-omp", "sdt"], "sparsities": [0.59],
               "out": "gpu-check.jsonl"}
        path = Path(tmp) / "gpu-check.yaml"
        path.write_text(yaml.safe_dump(exp, sort_keys=False))
        cmd = [sys.executable, "-m", "lth_audit.cli", "run", str(path), "--device", device.type, "--quiet"]
        env = {**os.environ, "LTH_AUDIT_CACHE": str(Path(tmp) / "cache")}
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if done.returncode != 0:
            rep.check("tiny lth-audit run", False, f"exit status {done.returncode}: {done.stderr.strip()[-400:]}")
            return
        records = load_records([Path(tmp) / "gpu-check.jsonl"]).raise_on_problems()
    expected = len(lrs) * 2 * 9   # per (lr, seed): pretrain, IMP rounds 1-4, rr-imp, lt-omp, rr-omp, sdt
    devices = sorted({str((r.meta or {}).get("device", "?")) for r in records})
    on_device = all(d.startswith(device.type) for d in devices)
    rep.figure("tiny lth-audit run, wall (start-up and data generation included)", wall, "s")
    rep.check("tiny lth-audit run", len(records) == expected and on_device,
              f"{len(records)} of {expected} runs recorded, on {', '.join(devices)}, top-1 "
              f"{min(r.top1 for r in records):.1f}-{max(r.top1 for r in records):.1f} %")


def run_part(rep: Report, name: str, fn: Callable[[], None]) -> None:
    """Run one part; an exception is a failed check with its message, and the next part still runs."""
    print(f"{name} ...", flush=True)
    t = time.perf_counter()
    try:
        fn()
    except Exception as e:   # noqa: BLE001 - the check reports any failure and goes on
        traceback.print_exc()
        rep.check(name, False, f"{type(e).__name__}: {e}"[:400])
    print(f"  ({time.perf_counter() - t:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None, help="also write the figures and checks as JSON to this path")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--train-size", type=int, default=None,
                    help="training examples of part 1 (default 50000 on CUDA, 128 on the CPU)")
    args = ap.parse_args(argv)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        print("--device cuda: torch sees no CUDA device", file=sys.stderr)
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        print("No CUDA device: CPU smoke test with reduced sizes. No figure below is a GPU measurement.")
    n_train = args.train_size or (50000 if cuda else 128)
    rs, runs, epochs, lrs = ((8, 16), 4, 2, (0.05, 0.1)) if cuda else ((2,), 2, 1, (0.1,))
    rep = Report(describe(device) if cuda else "cpu (smoke test)")
    print(f"device {rep.device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    t0 = time.perf_counter()
    data = cifar_like(max(n_train, EQ_EXAMPLES), 10000 if cuda else EQ_EXAMPLES).to(device)
    run_part(rep, "epoch times", lambda: epoch_times(rep, device, subset(data, n_train, 10000), rs))
    run_part(rep, "batched equals one at a time", lambda: equivalence(rep, device, data, runs))
    run_part(rep, "tiny lth-audit run", lambda: tiny_run(rep, device, epochs, lrs))
    rep.figure("whole check, wall", time.perf_counter() - t0, "s")
    print()
    print(rep.table())
    if args.json:
        Path(args.json).write_text(json.dumps(rep.as_json(), indent=2) + "\n")
        print(f"\nwritten: {args.json}")
    return 0 if rep.checks and all(p for _, p, _ in rep.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
