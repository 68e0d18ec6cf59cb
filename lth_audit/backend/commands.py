"""`lth-audit models | plan | run`: the backend's subcommands.

`register(subparsers)` adds them to the CLI's argparse tree without importing torch; each handler
imports what it needs. Errors are raised, and `exitcodes.run_guarded` (via `cli.main`) turns them into
exit statuses and one-line messages. `requires_train` guards every command that needs the [train] extra.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
from collections.abc import Callable

from ..exitcodes import CommandError, kept, reported

TRAIN_MODULES = ("torch", "torchvision", "mnist1d", "tqdm")
"""What the [train] extra installs (pyproject.toml); the audit side needs none of it."""
TRAIN_HINT = 'pip install "lth-audit[train]"   (from a clone: pip install -e ".[train]")'


def requires_train(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`handler`, run only when the [train] extra is installed; otherwise a CommandError (exit 2) saying how
    to install it."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        missing = [m for m in TRAIN_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise CommandError(f"`lth-audit {args.command}` needs the training backend, the [train] extra "
                               f"(missing: {', '.join(missing)}): {TRAIN_HINT}")
        return handler(args)

    return run


def _kept(out) -> str:
    return (f"the records already in {out} are kept, the run(s) in flight are lost; the same command resumes "
            "where they stopped")


def cmd_models(args: argparse.Namespace) -> int:
    from .data import DATASETS
    from .models import REGISTRY, count_params

    if args.dataset is not None and args.dataset not in DATASETS:
        raise CommandError(f"unknown dataset {args.dataset!r}; known: {', '.join(DATASETS)}")
    rows = []
    for name, e in REGISTRY.items():
        ds = args.dataset or e.default_dataset
        if e.kind != DATASETS[ds].kind:
            continue
        rows.append({"name": name, "params": count_params(name, ds), "dataset": ds,
                     "dense": list(e.dense), "description": e.description})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'arch':<17} {'params':>12}  {'dataset':<14} {'left dense':<14} description")
        for r in rows:
            print(f"{r['name']:<17} {r['params']:>12,}  {r['dataset']:<14} {', '.join(r['dense']):<14} "
                  f"{r['description']}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from ..store import RecordStore
    from .experiment import load_experiment

    exp = load_experiment(args.file)   # before torch is imported: a malformed file fails fast
    from . import resume
    from .plan import describe, make_plan

    plan = make_plan(exp)
    records = RecordStore(exp.out_path).load(repair=False)
    changed = resume.changes(plan, records)
    print(describe(plan, resume.states(plan, records, changed),
                   resume.summary(changed) + "\n(`lth-audit run --rerun-changed` trains them again)"
                   if changed else ""))
    return 0


def at_least_one(args: argparse.Namespace, *options: str) -> None:
    """A CommandError (exit 2) naming the first of `options` given below 1."""
    for option in options:
        value = getattr(args, option)
        if value is not None and value < 1:
            raise CommandError(f"--{option.replace('_', '-')} {value}: must be at least 1")


def cmd_run(args: argparse.Namespace) -> int:
    from .experiment import load_experiment

    if args.executor == "local" and args.address is not None:
        raise CommandError("--address is for --executor ray")
    if args.executor == "ray" and args.batched:
        raise CommandError("--batched is for --executor local (the ray executor trains one run per task)")
    if args.executor == "ray" and args.workers is not None:
        raise CommandError("--workers is for --executor local (Ray places its tasks on the cluster's cores)")
    at_least_one(args, "workers", "max_group", "threads")
    exp = load_experiment(args.file)
    from . import device as dev
    from .scheduler import Scheduler
    from .workers import WorkersOnCuda, for_this_machine

    if args.executor == "ray":
        from .ray_executor import RayExecutor, RayNotInstalled

        executor = RayExecutor(address=args.address, gpus=args.gpus_per_run)
        problems: tuple[type[BaseException], ...] = (RayNotInstalled, RuntimeError, ConnectionError)
    else:
        try:
            executor = for_this_machine(str(dev.resolve(args.device)), args.workers, progress=not args.quiet)
        except WorkersOnCuda as exc:
            raise CommandError(str(exc)) from None
        problems = (RuntimeError,)
    with reported(*problems), kept(_kept(exp.out_path)):
        summary = Scheduler(exp, executor, device=args.device, batched=args.batched, threads=args.threads,
                            max_group=args.max_group, rerun_changed=args.rerun_changed, quiet=args.quiet).run()
    print(summary.line(exp))
    return 0


def register(subparsers) -> None:
    """Add `models`, `plan` and `run` to an argparse subparsers object (no torch import here)."""
    def command(name: str, summary: str, description: str, handler) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=summary, description=f"{description} Needs the [train] extra.")
        p.set_defaults(func=requires_train(handler))
        return p

    p = command("models", "list the model registry with parameter counts",
                "The architectures `run` trains, each built for a data set (its own by default), with its "
                "parameter count (the paper's Table 2) and the layers left dense.", cmd_models)
    p.add_argument("--dataset", default=None, help="build for this data set (fixes stem and class count)")
    p.add_argument("--json", action="store_true", help="JSON: a list of {name, params, ...}")

    p = command("plan", "show the runs of an experiment file, what is done, epochs left",
                "Every run the experiment file asks for, in training order with its dependencies, which are "
                "already recorded in `out`, and the epochs left to train (SPEC §5).", cmd_plan)
    p.add_argument("file")

    p = command("run", "train the runs of an experiment file, appending records to `out`",
                "Train every run of the experiment file not yet recorded in `out` (resumes after a stop), keep "
                "the checkpoints later stages need in <out>.ckpt/, append one record per finished network "
                "(SPEC §5; docs/backend.md, docs/ray.md).", cmd_run)
    p.add_argument("file")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local: in this process; ray: one Ray task per run (docs/ray.md)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (`auto`, HEAD:6379, ray://...); default: start a local one")
    p.add_argument("--gpus-per-run", type=float, default=None,
                   help="ray: GPU fraction per run (default 1/8 under 1M parameters, 1/4 under 30M, else 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--workers", type=int, default=None,
                   help="local, on the CPU: worker processes training units side by side (default: the usable "
                        "cores, affinity and cgroup quota honoured; 1: in this process). Results do not depend on it")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU intra-op threads per process (default 1: parallelism goes across runs)")
    p.add_argument("--batched", action=argparse.BooleanOptionalAction, default=None,
                   help="train a stage's runs together with the batched trainer (default: on CUDA only)")
    p.add_argument("--max-group", type=int, default=None,
                   help="batched: most runs per unit (default 8 on the CPU, a whole stage on CUDA); "
                        "results depend on it (a run's arithmetic depends on its group), not on --workers")
    p.add_argument("--rerun-changed", action="store_true",
                   help="train again the runs recorded under another configuration (their records are moved "
                        "to <out>.changed-<time>); without it such runs stop the command (docs/backend.md)")
