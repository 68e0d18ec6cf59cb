"""`lth-audit landscape`: loss-surface contours around runs' training trajectories (docs/replication.md).

`register(subparsers)` adds the subcommand without importing torch; the handler imports what it needs.
"""

from __future__ import annotations

import argparse
import json
import time

from ..backend.commands import requires_train
from ..exitcodes import CommandError, reported


def cmd_landscape(args: argparse.Namespace) -> int:
    import torch

    from ..backend.data import load_dataset
    from ..backend.experiment import load_experiment
    from .landscape import GridSpec, landscape, load_trajectory, plot, select_runs

    exps = [load_experiment(f) for f in args.experiments]
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    picked = select_runs(exps, args.run or (), args.setting or (), args.lr or (), args.seed or (),
                         args.sparsity or ())
    if args.run:
        missing = sorted(set(args.run) - {rec.run_id for _, rec in picked})
        if missing:
            raise CommandError(f"no record for run(s) {', '.join(missing)}")
    if not picked:
        raise CommandError("no run matches; give --run IDs or --setting/--lr/--seed/--sparsity filters")
    if len(picked) > args.max_runs:
        raise CommandError(f"{len(picked)} runs match (more than --max-runs {args.max_runs}); narrow the "
                                 "filters")
    spec = GridSpec(size=args.grid, margin=args.margin, span=tuple(args.range) if args.range else None,
                    norm=args.norm, bn=args.bn, samples=args.samples, eval_batch=args.eval_batch, chunk=args.chunk)
    data_cache: dict = {}
    results = []
    with reported(ValueError):
        for exp, rec in picked:
            dkey = (exp.dataset, str(exp.data_path))
            if dkey not in data_cache:
                data_cache[dkey] = load_dataset(exp.dataset, exp.data_path, exp.download, "none")
            data = data_cache[dkey]
            traj = load_trajectory(exp, rec)
            res = landscape(traj, data.x_train, data.y_train, spec, cache_dir=exp.ckpt_dir / "landscape",
                            use_cache=not args.no_cache)
            results.append(res)
            ev = res["explained_variance_ratio"]
            print(f"{rec.run_id}: {len(traj.epochs)} states, PC1/PC2 {100 * ev[0]:.1f}/{100 * ev[1]:.1f} % "
                  f"(plane holds {100 * res['plane_captured']:.1f} %), final train loss {res['final_loss']:.4f}, "
                  f"{'cached' if res['from_cache'] else 'computed'} in {res['wall_s']:.1f}s")
    out = plot(results, args.out, title=args.title, cols=args.cols)
    print(f"figure: {out}\nsidecar: {out.with_suffix('.json')}\n"
          f"{len(results)} runs, {time.perf_counter() - t0:.1f}s wall "
          f"({sum(r['from_cache'] for r in results)} from cache)")
    if args.json:
        print(json.dumps([{k: r[k] for k in ("run_id", "final_loss", "explained_variance_ratio", "plane_captured",
                                             "from_cache", "wall_s")} for r in results], indent=1))
    return 0


def register(subparsers) -> None:
    """Add `landscape` to an argparse subparsers object (no torch import here)."""
    p = subparsers.add_parser(
        "landscape", help="loss contours on the PCA plane of runs' training trajectories (needs trajectory_every)",
        description="One subplot per run: the two PCA directions of its kept weights (filter-normalised), the "
                    "training loss on a grid in that plane (masked runs stay masked), the trajectory projected "
                    "on it. Writes OUT (.png/.svg) and OUT with .json. Grids are cached in <out>.ckpt/landscape/. "
                    "Needs the [train] extra.")
    p.add_argument("experiments", nargs="+", metavar="EXPERIMENT", help="experiment file(s) whose runs to draw")
    p.add_argument("-o", "--out", required=True, help="figure path (.png, .svg or .pdf); sidecar: same name .json")
    p.add_argument("--run", action="append", metavar="ID", help="run id (repeatable); subplots in this order")
    p.add_argument("--setting", action="append", help="keep runs of this setting (repeatable)")
    p.add_argument("--lr", action="append", type=float, help="keep runs at this learning rate (repeatable)")
    p.add_argument("--seed", action="append", type=int, help="keep runs of this seed (repeatable)")
    p.add_argument("--sparsity", action="append", type=float, help="keep runs at this sparsity (±0.002)")
    p.add_argument("--grid", type=int, default=21, help="points per axis (default 21)")
    p.add_argument("--margin", type=float, default=0.25, help="padding around the trajectory, fraction of its span")
    p.add_argument("--range", type=float, nargs=4, metavar=("A0", "A1", "B0", "B1"), help="fixed axis ranges")
    p.add_argument("--norm", choices=["filter", "none"], default="filter",
                   help="filter: filter-normalised orthogonal directions (default); none: raw PCA components")
    p.add_argument("--bn", choices=["final", "batch"], default="final",
                   help="final: BN in eval mode with the final weights' running stats (default, Li et al.); "
                        "batch: BN with the evaluated data's statistics at every point")
    p.add_argument("--samples", type=int, default=None, help="first N training examples (default: all)")
    p.add_argument("--eval-batch", type=int, default=None,
                   help="examples per forward pass (default 1000; with --bn batch: all, i.e. exact statistics)")
    p.add_argument("--chunk", type=int, default=2, help="grid points per vmapped forward pass (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--max-runs", type=int, default=12, help="refuse more runs than this (default 12)")
    p.add_argument("--title", default=None)
    p.add_argument("--cols", type=int, default=None, help="subplots per row (default: 2 for 4 runs, else up to 4)")
    p.add_argument("--no-cache", action="store_true", help="recompute even when a cached grid exists")
    p.add_argument("--json", action="store_true", help="also print a per-run summary as JSON")
    p.set_defaults(func=requires_train(cmd_landscape))
