"""The one scheduler: walks an experiment's plan, hands units to an executor, writes the records.

`Scheduler(exp, executor).run()`:

1. **Resume.** Reads the store (under its lock) and compares every recorded run of the plan with the
   experiment's configuration (`resume.py`). Changed runs stop the command (exit 2, naming the fields), or,
   with `rerun_changed`, their records are moved to `<out>.changed-<time>` and they train again.
2. **Walk.** A run is *finished* when its record is in the store and the checkpoints later runs read from it
   exist (a recorded run whose checkpoints are gone trains again for its weights only; no second record).
   A run is *ready* when every run in its `deps` is finished. Units are fixed before the walk: one run each,
   or, when the job trains batched, each stage cut into near-equal groups of at most `max_group` runs in
   plan order (default CPU_GROUP on the CPU, the whole stage on CUDA). A unit starts when all its runs are
   ready, highest `Plan.priorities` first (longest chain of epochs). Because units never depend on timing
   or on how many run at once, neither do the results: the same bits with 1 or N worker processes.
3. **Claims.** Before a unit is submitted its runs are claimed (`claims.py`), then the lines appended to the
   store since the scheduler last read it are read (`RecordStore.new_records`): a run another process
   claimed is left to it, one another process finished meanwhile is not trained again. So processes
   sharing one store (two terminals, two Slurm jobs) share its runs, each run trained once. With nothing
   to start and runs left, the scheduler waits for the other processes (polling).
4. **One writer.** Each record is appended through `RecordStore.append` (the locked, fsynced writer) when its
   unit comes back, then its claim is released. An error in a unit stops new submissions; the units in
   flight land and are recorded; then the error is raised. A kill loses at most the units in flight.

Progress (a tqdm bar on a terminal, in epochs so that its ETA is the epochs left at the average rate so far,
with runs done, in flight and left; `quiet` silences it) and the closing summary live here too.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..records import RunRecord
from ..store import RecordRejected, RecordStore
from . import resume
from .claims import Claims
from .executors import Executor, LocalExecutor
from .experiment import Experiment
from .plan import Plan, PlannedRun
from .steps import Steps
from .units import Job, Unit

CPU_GROUP = 8
"""Most runs per batched unit on the CPU: enough rows for the batched trainer's gain, and a stage of the
demo's 12 (lr, seed) pairs makes two units for two workers."""
POLL_S = (0.2, 2.0)
"""Waiting for other processes: first and longest pause between reads of the store (seconds)."""


@dataclass
class RunSummary:
    """What one `run` did."""

    trained: list[str] = field(default_factory=list)     # records this process appended
    skipped: int = 0                                     # finished before it started
    elsewhere: list[str] = field(default_factory=list)   # finished by another process while it ran
    weights: list[str] = field(default_factory=list)     # recorded runs trained again for their checkpoints
    twice: list[str] = field(default_factory=list)       # trained here, but recorded first by another writer
    diverged: list[str] = field(default_factory=list)
    moved: int = 0                                       # records of changed runs moved aside
    moved_to: Path | None = None
    wall_s: float = 0.0
    device: str = "cpu"
    executor: str = "local"
    notes: dict[str, str] = field(default_factory=dict)

    def line(self, exp: Experiment) -> str:
        """The closing line of `lth-audit run`."""
        parts = [f"trained {len(self.trained)} runs", f"{self.skipped} already done"]
        if self.elsewhere:
            parts.append(f"{len(self.elsewhere)} trained by another process")
        if self.weights:
            parts.append(f"{len(self.weights)} trained again for their checkpoints")
        if self.twice:
            parts.append(f"{len(self.twice)} also trained by another writer, which recorded them first")
        if self.moved:
            parts.append(f"{self.moved} changed records moved to {self.moved_to}")
        parts.append(f"{len(self.diverged)} diverged")
        where = self.device if self.executor == "local" else f"{self.executor} ({self.device})"
        extra = "".join(f", {v} {k}" for k, v in self.notes.items())
        return f"{exp.name}: {', '.join(parts)}, {self.wall_s:.1f}s on {where}{extra} -> {exp.out_path}"


class Scheduler:
    def __init__(self, exp: Experiment, executor: Executor | None = None, *, device: str = "auto",
                 batched: bool | None = None, threads: int | None = None, max_group: int | None = None,
                 rerun_changed: bool = False, quiet: bool = False, log: Callable[[str], None] | None = None):
        self.exp = exp
        self.executor = executor or LocalExecutor(progress=not quiet)
        self.device_asked = device
        self.batched = batched
        self.threads = threads
        self.max_group = max_group
        self.rerun_changed = rerun_changed
        self.quiet = quiet
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.store = RecordStore(exp.out_path)
        self.claims = Claims(exp.ckpt_root / "claims")

    # ------------------------------------------------------------------------------------------ main
    def run(self) -> RunSummary:
        t0 = time.perf_counter()
        exp, summary = self.exp, RunSummary(executor=self.executor.name)
        steps = Steps(exp)       # this side only reads and writes checkpoints (θ0), never trains
        plan = steps.plan
        records = self.store.load()
        changed = resume.changes(plan, records)
        if changed:
            if not self.rerun_changed:
                raise resume.ChangedRuns(exp, changed)
            summary.moved_to = resume.aside_path(exp.out_path)
            summary.moved = self.store.move_aside(changed, summary.moved_to)
            self.log(f"{exp.out_path}: moved the records of {summary.moved} changed run(s) to {summary.moved_to}; "
                     "training them again")
            records = self.store.load()
        try:
            self._start(steps, records, summary)
        finally:
            self.executor.close()
            self.claims.release_all()
        summary.notes = self.executor.notes()
        summary.wall_s = time.perf_counter() - t0
        return summary

    def _start(self, steps: Steps, records: list[RunRecord], summary: RunSummary) -> None:
        exp, plan = self.exp, steps.plan
        summary.device = self.executor.device(self.device_asked)
        batched = self.executor.can_batch and (self.batched if self.batched is not None
                                               else summary.device.startswith("cuda"))
        job = Job(exp, summary.device, batched, self.threads, self.executor.name)
        self._recorded = {r.run_id for r in records}
        self._finished = {r.run_id for r in plan.runs if r.run_id in self._recorded and steps.has_checkpoints(r)}
        self._pending = {r.run_id: r for r in plan.runs if r.run_id not in self._finished}
        summary.skipped = len(plan.runs) - len(self._pending)
        if not self._pending:
            return
        exp.ckpt_dir.mkdir(parents=True, exist_ok=True)
        for seed in sorted({r.seed for r in self._pending.values() if r.rule.start == "theta0"}):
            steps.theta0(seed)   # once, here, before units that start from it run anywhere
        size = self.max_group or (None if summary.device.startswith("cuda") else CPU_GROUP)
        self._units = units_of(plan, size if batched else 1)
        self.executor.open(job)
        self._walk(steps, summary)

    # ------------------------------------------------------------------------------------------ walk
    def _walk(self, steps: Steps, summary: RunSummary) -> None:
        from tqdm.auto import tqdm

        plan = steps.plan
        prio, order = plan.priorities(), {r.run_id: i for i, r in enumerate(plan.runs)}
        self._in_flight: dict[str, Unit] = {}
        self._elsewhere: set[str] = set()
        units = 0
        error: BaseException | None = None
        pause = POLL_S[0]
        total = len(self._pending)
        bar = tqdm(total=sum(r.trained_epochs for r in self._pending.values()), desc=self.exp.name, unit="epoch",
                   smoothing=0, disable=self.quiet)

        def postfix() -> None:
            left = len(self._pending) - len(self._in_flight)
            bar.set_postfix({"runs done": total - len(self._pending), "in flight": len(self._in_flight),
                             "left": left, **({"others": len(self._elsewhere)} if self._elsewhere else {}),
                             **self.executor.notes()})

        try:
            while self._pending:
                if error is None:
                    while units < self.executor.slots():
                        unit = self._next_unit(steps, prio, order, summary, bar)
                        if unit is None:
                            break
                        self.executor.submit(unit)
                        self._in_flight.update(dict.fromkeys(unit.run_ids, unit))
                        units += 1
                        bar.set_description(unit.stage)
                postfix()
                if units == 0:
                    if error is not None:
                        break
                    time.sleep(pause)   # the runs left are another process's, or wait on its runs
                    pause = min(POLL_S[1], pause * 1.5)
                    self._elsewhere.clear()
                    error = self._refresh(steps, summary, bar)
                    continue
                pause = POLL_S[0]
                for done in self.executor.wait():
                    units -= 1
                    for run_id in done.unit.run_ids:
                        self._in_flight.pop(run_id, None)
                    if done.error is not None:
                        error = error or done.error
                        for run_id in done.unit.run_ids:
                            self.claims.release(run_id)
                        continue
                    for rec in done.records:
                        self._land(rec, summary, bar)
                self._elsewhere.clear()   # retry those claims: their process may have finished or died
        finally:
            postfix()
            bar.close()
        if error is not None:
            raise error

    def _next_unit(self, steps: Steps, prio: dict[str, int], order: dict[str, int],
                   summary: RunSummary, bar) -> Unit | None:
        """The next unit to submit (the runs of one of `units_of`'s groups still to train here, all ready),
        its runs claimed; None when nothing can start now."""
        while True:
            ready = []
            for unit in self._units:
                todo = [r for r in unit if r.run_id in self._pending and r.run_id not in self._in_flight
                        and r.run_id not in self._elsewhere]
                if todo and all(d in self._finished for r in todo for d in r.deps):
                    ready.append(todo)
            if not ready:
                return None
            group = min(ready, key=lambda g: (-max(prio[r.run_id] for r in g), order[g[0].run_id]))
            claimed = [r for r in group if self.claims.take(r.run_id)]
            self._elsewhere.update(r.run_id for r in group if r not in claimed)
            if not claimed:
                continue
            error = self._refresh(steps, summary, bar)   # what others finished before we claimed
            if error is not None:
                raise error
            claimed = [r for r in claimed if r.run_id in self._pending]
            if claimed:
                return Unit(tuple(claimed))

    def _refresh(self, steps: Steps, summary: RunSummary, bar) -> BaseException | None:
        """Read what was appended to the store since the last read: runs other processes finished leave the
        queue (and their claims here); a record of another configuration is an error (returned)."""
        new = [r for r in self.store.new_records() if r.run_id not in self._recorded]
        self._recorded.update(r.run_id for r in new)
        changed = resume.changes(steps.plan, new)
        if changed:
            return resume.ChangedRuns(self.exp, changed)
        for run_id, run in list(self._pending.items()):
            if run_id in self._in_flight or run_id not in self._recorded or not steps.has_checkpoints(run):
                continue
            del self._pending[run_id]
            self._finished.add(run_id)
            self.claims.release(run_id)
            summary.elsewhere.append(run_id)
            bar.update(run.trained_epochs)
        return None

    def _land(self, rec: RunRecord, summary: RunSummary, bar) -> None:
        """A trained run's record into the store (unless the run was recorded already), then its claim freed."""
        run: PlannedRun = self._pending.pop(rec.run_id)
        if rec.run_id in self._recorded:
            summary.weights.append(rec.run_id)
        else:
            try:
                self.store.append([rec])
            except RecordRejected as exc:
                if any(p.field != "run_id" for p in exc.problems):
                    raise
                summary.twice.append(rec.run_id)   # recorded meanwhile by a writer that takes no claims
            else:
                summary.trained.append(rec.run_id)
                if rec.diverged:
                    summary.diverged.append(rec.run_id)
            self._recorded.add(rec.run_id)
        self._finished.add(run.run_id)
        self.claims.release(run.run_id)
        bar.update(run.trained_epochs)


def units_of(plan: Plan, size: int | None) -> list[list[PlannedRun]]:
    """The plan's units: each stage's runs in plan order, cut into near-equal consecutive groups of at most
    `size` runs (None: the whole stage; 1: one run each)."""
    out = []
    for _, runs in plan.stages:
        n = 1 if size is None else math.ceil(len(runs) / size)
        cuts = [round(i * len(runs) / n) for i in range(n + 1)]
        out += [runs[a:b] for a, b in zip(cuts, cuts[1:])]
    return out


def run_experiment(exp: Experiment, device: str = "auto", quiet: bool = False, batched: bool | None = None,
                   threads: int | None = None, rerun_changed: bool = False, workers: int | None = 1) -> RunSummary:
    """Train the experiment on this machine: in this process (`workers` 1), on that many worker processes on
    the CPU, or (None) on the usable cores (`workers.for_this_machine`). With workers > 1 the calling script
    is imported by spawned processes: guard it with `if __name__ == "__main__":`."""
    from . import device as dev
    from .workers import for_this_machine

    executor = for_this_machine(str(dev.resolve(device)), workers, progress=not quiet)
    return Scheduler(exp, executor, device=device, batched=batched, threads=threads,
                     rerun_changed=rerun_changed, quiet=quiet).run()
