"""Your own training code, audited: a plain PyTorch lottery-ticket experiment on MNIST-1D.

Nothing here uses lth-audit's backend. The network is trained with an ordinary loop, pruned with
`torch.nn.utils.prune`, and every finished network is written as one run record through
`lth_audit.RecordWriter`, with the measurements from `lth_audit.pytorch`. For each learning rate and
seed it trains:

  pretrain   the dense network from θ0
  lt-imp     IMP: prune 20 % of the remaining weights, rewind the rest to θ0, train; `--rounds` times
  rr-imp     the last round's mask on a fresh random initialisation
  sdt        a dense network as wide as leaves the same number of parameters as the last ticket

Then `lth-audit audit checks/` (or `pytest checks/`) rules on the claim in checks/. Run:

    python train.py                      # the grid behind results/mnist1d-own.jsonl (a few minutes on a CPU)
    python train.py --quick --out /tmp/runs.jsonl   # a tiny grid, seconds
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from lth_audit import RecordWriter, load_records
from lth_audit import pytorch as lth

HERE = Path(__file__).resolve().parent


def load_mnist1d(cache: Path) -> tuple[torch.Tensor, ...]:
    """MNIST-1D (4000 train / 1000 test sequences of 40), generated once and kept in `cache`."""
    if not cache.exists():
        from mnist1d.data import get_dataset_args, make_dataset

        d = make_dataset(get_dataset_args())
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, x=d["x"], y=d["y"], x_test=d["x_test"], y_test=d["y_test"])
    d = np.load(cache)
    return (torch.tensor(d["x"], dtype=torch.float32), torch.tensor(d["y"]),
            torch.tensor(d["x_test"], dtype=torch.float32), torch.tensor(d["y_test"]))


def build(width: float = 1.0) -> nn.Module:
    """An MLP 40-100-100-10; `width` scales the hidden layers (the small-dense network uses it)."""
    h = max(1, round(100 * width))
    return nn.Sequential(nn.Linear(40, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10))


def train(model: nn.Module, data, lr: float, epochs: int, seed: int) -> tuple[float, float]:
    """SGD with momentum and a cosine schedule; returns (last-epoch, best-epoch) test accuracy in percent."""
    x, y, x_test, y_test = data
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    accs = []
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=g).split(100):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()   # a pruned weight stays 0: torch.nn.utils.prune multiplies by the mask in forward
        sched.step()
        model.eval()
        with torch.no_grad():
            accs.append(100.0 * (model(x_test).argmax(1) == y_test).float().mean().item())
    return accs[-1], max(accs)


def prunable(model: nn.Module) -> dict[str, nn.Module]:
    """{weight name: its module} for the weights IMP ranks: every linear layer but the classifier
    (lth_audit.pytorch's default exclusions, SPEC §1)."""
    return {n: model.get_submodule(n.removesuffix(".weight")) for n in lth.prunable_names(model)}


def fresh(seed: int, width: float = 1.0) -> nn.Module:
    torch.manual_seed(seed)
    return build(width)


def run_grid(args: argparse.Namespace) -> None:
    data = load_mnist1d(args.data)
    writer = RecordWriter(args.out)
    done = {r.run_id for r in load_records([args.out]).records} if args.out.exists() else set()

    def record(run_id: str, model: nn.Module, setting: str, lr: float, seed: int, accs, sparsity: float,
               **extra) -> None:
        if run_id in done:
            return
        writer.write(run_id=run_id, arch="mlp-own", dataset="mnist1d", setting=setting, sparsity=round(sparsity, 4),
                     lr=lr, epochs=args.epochs, seed=seed, top1=round(accs[0], 2), best_top1=round(accs[1], 2),
                     params=lth.nonzero_params(model), **extra)

    for lr in args.lrs:
        for seed in args.seeds:
            tag = f"lr{lr:g}-seed{seed}"
            if {f"pretrain-{tag}", f"lt-imp-r{args.rounds}-{tag}", f"rr-imp-{tag}", f"sdt-{tag}"} <= done:
                continue
            model = fresh(seed)
            theta0 = copy.deepcopy(model.state_dict())
            record(f"pretrain-{tag}", model, "pretrain", lr, seed, train(model, data, lr, args.epochs, seed), 0.0)
            for k in range(1, args.rounds + 1):
                # prune 20 % of the remaining weights by global magnitude, then rewind the rest to θ0
                prune.global_unstructured([(m, "weight") for m in prunable(model).values()], prune.L1Unstructured,
                                          amount=0.2)
                lth.rewind(model, theta0)
                start = lth.weights(model)
                accs = train(model, data, lr, args.epochs, seed)
                r_p = {"p": 0.1, "init": round(lth.r_p(start, model, lth.masks(model)), 6)}
                record(f"lt-imp-r{k}-{tag}", model, "lt-imp", lr, seed, accs, lth.sparsity(model), mask_lr=lr,
                       r_p=r_p)
            ticket_sparsity, mask = lth.sparsity(model), lth.masks(model)

            rr = fresh(1_000_000 + seed)   # a new random initialisation under the same mask
            for name, module in prunable(rr).items():
                prune.custom_from_mask(module, "weight", mask[name])
            record(f"rr-imp-{tag}", rr, "rr-imp", lr, seed, train(rr, data, lr, args.epochs, seed),
                   lth.sparsity(rr), mask_lr=lr)

            target = lth.nonzero_params(model)   # the small-dense network keeps as many parameters as the ticket
            width, params = lth.small_dense_width(build, target)
            sdt = fresh(seed, width)
            record(f"sdt-{tag}", sdt, "sdt", lr, seed, train(sdt, data, lr, args.epochs, seed), ticket_sparsity,
                   meta={"width": round(width, 4), "target_params": target})
            print(f"{tag}: trained", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=4, help="IMP rounds: 4 reaches sparsity 1 - 0.8^4 = 0.59")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "mnist1d-own.jsonl")
    ap.add_argument("--data", type=Path, default=HERE / "results" / "mnist1d.npz")
    ap.add_argument("--quick", action="store_true", help="2 learning rates, 2 seeds, 3 epochs")
    args = ap.parse_args(argv)
    if args.quick:
        args.lrs, args.seeds, args.epochs = [0.05, 0.2], [0, 1], 3
    torch.set_num_threads(1)
    run_grid(args)


if __name__ == "__main__":
    main()
