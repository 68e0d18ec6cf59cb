"""Per-record cost of appending to a record store as it grows (a measurement, not a test).

    python benchmarks/store_append.py [--records 100000] [--window 1000] [--fsync | --no-fsync]

Appends `--records` records one at a time through `RecordStore.append` (the backend's path: the locked,
fsynced `RecordWriter`), into a fresh store in a temporary folder, and times windows of `--window` appends
at several store sizes. Appending is O(1) when the time per record stays flat as the store grows: the
table shows each window's time per record and its ratio to the first window (1.0x = flat; an O(n) append,
as a rewrite of the whole file per record would be, grows in proportion to the store: 100x at 100x the size).

The fsync per record dominates and varies with the disk (and with the rest of the machine's I/O);
`--no-fsync` replaces it by a no-op to show the rest of the path alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lth_audit import store as store_module  # noqa: E402
from lth_audit.records import RunRecord  # noqa: E402
from lth_audit.store import RecordStore  # noqa: E402


def record(i: int) -> RunRecord:
    """A record of the size `lth-audit run` writes (its meta carries the training configuration)."""
    return RunRecord.model_validate({
        "run_id": f"bench/mlp-lt-imp-s0.59-lr0.1-seed{i}", "arch": "mlp", "dataset": "mnist1d", "setting": "lt-imp",
        "sparsity": 0.5904, "lr": 0.1, "epochs": 40, "seed": i, "top1": 70.0 + (i % 100) / 10, "best_top1": 72.0,
        "params": 6200, "mask_lr": 0.1, "r_p": {"p": 0.1, "init": 0.31, "init_pretrained": 0.28},
        "meta": {"device": "cpu", "wall_s": 1.234, "torch": "2.x", "lth_audit": "0.1.0", "config_hash": "0" * 12,
                 "config": {"arch": "mlp", "epochs": 40, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 100,
                            "milestones": [0.5, 0.75], "ignore": ["fc"], "init": "pytorch"},
                 "experiment": "bench", "trainer": "batched", "executor": "local", "epochs_run": 40}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--fsync", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    if not args.fsync:
        store_module.os.fsync = lambda fd: None  # type: ignore[attr-defined]
    n, w = args.records, args.window
    marks = sorted({0, *(k for k in (n // 100, n // 10, n // 4, n // 2, n - w) if 0 <= k <= n - w)})
    recs = [record(i) for i in range(n)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "runs.jsonl"
        st = RecordStore(path)
        rows, t_all = [], time.perf_counter()
        i = 0
        for start in marks:
            while i < start:                      # grow the store to the next mark (untimed)
                st.append([recs[i]])
                i += 1
            t0 = time.perf_counter()
            for _ in range(w):
                st.append([recs[i]])
                i += 1
            rows.append((start, (time.perf_counter() - t0) / w))
        while i < n:
            st.append([recs[i]])
            i += 1
        total = time.perf_counter() - t_all
        size = path.stat().st_size
        assert len(st.load()) == n
    first = rows[0][1]
    print(f"{n} appends, {size / 1e6:.1f} MB store, {total:.1f} s in all ({total / n * 1e6:.0f} µs per record), "
          f"fsync {'on' if args.fsync else 'off'}, {os.cpu_count()} CPUs")
    print(f"{'records already in the store':>30}  {'µs per append':>14}  {'vs first window':>15}")
    for start, per in rows:
        print(f"{start:>30,}  {per * 1e6:>14.1f}  {per / first:>14.2f}x")
    print(f"per-record time with {rows[-1][0]:,} records in the store / with none: {rows[-1][1] / first:.2f}x")


if __name__ == "__main__":
    main()
