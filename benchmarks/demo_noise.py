"""Is the demo's grid big enough? Seed SD per cell, the test set's binomial SE, margins against bands, and
whether the verdicts agree between record stores of one grid trained with another float order.

    python benchmarks/demo_noise.py STORE.jsonl [STORE.jsonl ...] [--seeds 0,1,2] [--lrs 0.1,0.2]
                                    [--sparsities 0.59,0.832] [--cells]

Each STORE is what `lth-audit run` wrote for the demo's experiment (`results/demo/<name>.yaml`, or any
bigger grid of the same arch and data set): for example one store trained `--batched` and one
`--no-batched`, or one from another machine. `--seeds`, `--lrs` and `--sparsities` audit a sub-grid of
the stores (the runs of a smaller grid are the same networks). Thresholds are the demo's
(`DemoGrid.thresholds`, sufficient epochs = the runs' epochs), profile rigorous, metric top1.

Prints, per store: the seed SD of every cell (`--cells`) and its summary over the cells that decide
verdicts (within 5 pp of their setting's best), the binomial SE of the test set at the best pretraining
accuracy, and per ticket (lt-imp and lt-omp at each sparsity) the verdict, its witness lr and, at that
witness, each comparison's margin against its band. Then the verdicts side by side and how many agree.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from lth_audit.audit import ClaimResult
from lth_audit.backend.data import DATASETS
from lth_audit.demo import DemoGrid, audit_tickets
from lth_audit.records import RunRecord, load_records

DECIDING_PP = 5.0
"""Cells within this many pp of their setting's best mean are the ones a max over lr or a witness can be."""


def floats(text: str | None) -> set[float] | None:
    return None if text is None else {float(v) for v in text.split(",") if v.strip()}


def sub_grid(records: Sequence[RunRecord], seeds: set[float] | None, lrs: set[float] | None) -> list[RunRecord]:
    return [r for r in records if (seeds is None or r.seed in seeds) and (lrs is None or r.lr in lrs)]


def binomial_se(p_percent: float, n: int) -> float:
    """SE in pp of an accuracy p measured on n independent test examples."""
    p = p_percent / 100.0
    return 100.0 * math.sqrt(p * (1.0 - p) / n)


def cell_sds(records: Sequence[RunRecord]) -> dict[tuple[str, float, float], tuple[int, float, float]]:
    """(setting, sparsity rounded, lr) -> (runs, mean, sample SD) of top1, for cells of 2+ runs."""
    cells: dict[tuple[str, float, float], list[float]] = {}
    for r in records:
        cells.setdefault((r.setting.value, round(r.sparsity, 3), r.lr), []).append(r.top1)
    return {k: (len(v), statistics.fmean(v), statistics.stdev(v)) for k, v in sorted(cells.items()) if len(v) > 1}


def deciding_sds(cells: dict[tuple[str, float, float], tuple[int, float, float]]) -> list[float]:
    """Seed SDs of the cells within DECIDING_PP of the best mean of their (setting, sparsity)."""
    best: dict[tuple[str, float], float] = {}
    for (setting, s, _), (_, mean, _) in cells.items():
        best[(setting, s)] = max(best.get((setting, s), -1.0), mean)
    return [sd for (setting, s, _), (_, mean, sd) in cells.items() if mean >= best[(setting, s)] - DECIDING_PP]


def audit(records: Sequence[RunRecord], sparsities: Sequence[float]) -> dict[tuple[str, float], ClaimResult]:
    """The demo's ticket audit (`lth_audit.demo.audit_tickets`) on a store of any grid of one arch and data
    set: the demo's thresholds, sufficient epochs = the longest run's."""
    grid = DemoGrid(arch=records[0].arch, dataset=records[0].dataset, epochs=max(r.epochs for r in records),
                    sparsities=tuple(sparsities))
    return audit_tickets(grid, records)


def describe(result: ClaimResult) -> str:
    """`verdict @lr: ②+m/b ③... ` with each comparison's margin and band at the witness (pp)."""
    marks = {2: "②", 3: "③", 4: "④", 5: "⑤"}
    parts = []
    for c in result.conditions:
        if c.id in marks and c.margin is not None:
            band = f"{c.band:.2f}" if c.band is not None else "-"
            parts.append(f"{marks[c.id]} {c.margin:+.2f}/{band} {c.status.value}")
    return f"{result.verdict:<20} lr {result.witness_lr}  " + "  ".join(parts)


def report(path: str, records: list[RunRecord], sparsities: Sequence[float], show_cells: bool
           ) -> dict[tuple[str, float], str]:
    cells = cell_sds(records)
    sds = deciding_sds(cells)
    dataset = records[0].dataset
    seeds, lrs = sorted({r.seed for r in records}), sorted({r.lr for r in records})
    print(f"\n== {path}: {len(records)} runs, {records[0].arch} on {dataset}, lrs {lrs}, seeds {seeds}")
    if show_cells:
        for (setting, s, lr), (n, mean, sd) in cells.items():
            print(f"  {setting:<8} s={s:<6g} lr={lr:<6g} n={n}  {mean:6.2f} ± {sd:.2f}")
    if sds:
        print(f"seed SD of the deciding cells ({len(sds)} cells within {DECIDING_PP:g} pp of their setting's best): "
              f"median {statistics.median(sds):.2f}, max {max(sds):.2f} pp; SE of a {len(seeds)}-seed mean: "
              f"median {statistics.median(sds) / math.sqrt(len(seeds)):.2f} pp")
    pre = [m for (setting, _, _), (_, m, _) in cells.items() if setting == "pretrain"]
    if pre and dataset in DATASETS and DATASETS[dataset].test_size:
        n = DATASETS[dataset].test_size
        print(f"binomial SE of the test set ({n} examples) at the best pretraining accuracy {max(pre):.2f} %: "
              f"{binomial_se(max(pre), n):.2f} pp")
    results = audit(records, sparsities)
    for (t, s), res in results.items():
        print(f"  {t} s={s:<6g} {describe(res)}")
    return {k: v.verdict for k, v in results.items()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds to audit (default: all)")
    ap.add_argument("--lrs", default=None, help="comma-separated learning rates to audit (default: all)")
    ap.add_argument("--sparsities", default=None, help="comma-separated ticket sparsities (default: the demo's)")
    ap.add_argument("--cells", action="store_true", help="print every cell's mean and seed SD")
    args = ap.parse_args(argv)
    sparsities = sorted(floats(args.sparsities) or DemoGrid().sparsities)
    verdicts = []
    for path in args.stores:
        loaded = load_records([Path(path)]).raise_on_problems()
        records = sub_grid(loaded, floats(args.seeds), floats(args.lrs))
        if not records:
            print(f"{path}: no runs in the sub-grid asked for", file=sys.stderr)
            return 2
        verdicts.append(report(path, records, sparsities, args.cells))
    if len(verdicts) > 1:
        print("\nverdicts side by side:")
        keys = list(verdicts[0])
        for k in keys:
            print(f"  {k[0]} s={k[1]:<6g} " + "  ".join(f"{v[k]:<20}" for v in verdicts))
        same = sum(len({v[k] for v in verdicts}) == 1 for k in keys)
        print(f"agree: {same} of {len(keys)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
