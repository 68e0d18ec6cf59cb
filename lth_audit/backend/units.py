"""Units of work, as executors see them: picklable descriptions in, records out.

The scheduler (`scheduler.py`) cuts the plan into `Unit`s, runs of one stage trained together (one run, or a
group for the batched trainer), and hands them to an executor with the `Job` they share. Wherever a unit
runs (this process, a worker process, a Ray task), `execute(job, unit)`:

1. builds, once per process, the experiment's `Steps` and its data on the job's device;
2. starts every run of the unit (θ0, masks and θt read from the checkpoint folder, or made there);
3. trains them (`train.train_many`: batched when the job says so);
4. writes each run's checkpoints itself, atomically (a retried or repeated unit rewrites the same files), and
5. returns each run's record, *not appended*: only the scheduler writes the store.

So results carry records (small), never weights (large), and every executor shares one writer. `Job`, `Unit`
and `PlannedRun` are frozen dataclasses that pickle, so a new executor (worker processes, a cluster) only
has to call `execute` where it wants the work done and hand the records back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..records import RunRecord
from .experiment import Experiment
from .plan import PlannedRun

Hook = Callable[[str, str], None]
"""`hook(run_id, point)` at "start" (before training) and "trained" (checkpoints written): for fault tests."""


@dataclass(frozen=True)
class Job:
    """What every unit of one `lth-audit run` shares: the experiment and how to train."""

    experiment: Experiment
    device: str                 # "cpu", "cuda", "cuda:1"
    batched: bool = False       # groups of runs train together with the batched trainer
    threads: int | None = None  # CPU intra-op threads per process (None: 1)
    executor: str = "local"     # recorded in meta.executor


@dataclass(frozen=True)
class Unit:
    """Runs of one stage to train together: one run, or a group for the batched trainer."""

    runs: tuple[PlannedRun, ...]

    @property
    def stage(self) -> str:
        return self.runs[0].stage

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(r.run_id for r in self.runs)


_CONTEXT: dict[tuple, tuple] = {}


def context(job: Job):
    """(Steps, data on the job's device) for this process, built once per experiment and device."""
    exp = job.experiment
    key = (exp.model_dump_json(), str(exp.out_path), job.device, job.batched, job.threads)
    if key not in _CONTEXT:
        import torch

        from . import device as dev
        from .data import load_dataset
        from .steps import Steps

        steps = Steps(exp, device=job.device)
        if steps.device.type == "cpu":
            dev.keep_freed_memory()
            # Parallelism belongs across units (worker processes), not inside one (workers.py).
            torch.set_num_threads(job.threads or 1)
        data = load_dataset(exp.dataset, exp.data_path, exp.download, exp.augment, in_memory=exp.data_in_memory,
                            num_workers=exp.loader_workers).to(steps.device)
        _CONTEXT.clear()
        _CONTEXT[key] = (steps, data)
    return _CONTEXT[key]


def forget() -> None:
    """Drop this process's cached Steps and data (the local executor does when a run ends)."""
    _CONTEXT.clear()


def execute(job: Job, unit: Unit, hook: Hook | None = None, progress: bool = False) -> list[RunRecord]:
    """Train `unit` here (`progress`: a bar over each run's epochs); write its checkpoints; return its
    records, not appended."""
    from .jobs import TrainOutcome
    from .stability import path_errors
    from .train import train_many

    steps, data = context(job)
    if hook is not None:
        for r in unit.runs:
            hook(r.run_id, "start")
    starts = [steps.start(r) for r in unit.runs]
    # Each run, then its twin if it has one (SPEC §6): the trainer hands them back in this order.
    specs, owner = [], []
    for start in starts:
        specs.append(start.spec)
        owner.append(start)
        if start.run.twin:
            specs.append(steps.twin(start))
            owner.append(None)
    records: list[RunRecord] = []
    waiting: dict[int, TrainOutcome] = {}

    def finish(i: int, out: TrainOutcome, trainer: str) -> None:
        start = owner[i]
        if start is not None and start.run.twin:
            waiting[i] = out          # its record needs its twin's weights
            return
        path = None
        if start is None:             # a twin: its run's record can be made now
            start, twin_out, out = owner[i - 1], out, waiting.pop(i - 1)
            path = path_errors(start.spec.model, out.state, twin_out.state, start.mask, data, steps.device,
                               start.spec.recipe.batch_size)
        steps.save(start, out)
        if hook is not None:
            hook(start.run.run_id, "trained")
        records.append(steps.record(start, out, trainer, job.executor, path))

    train_many(specs, data, steps.device, batched=job.batched, progress=progress, on_result=finish)
    return records
