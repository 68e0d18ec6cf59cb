"""Executors: where the scheduler's units train. The scheduler decides what, when and in which groups; an
executor only runs units and hands their records back.

An executor is a class with this life cycle (the scheduler calls it in this order):

- `device(asked)`: what `--device auto|cpu|cuda` means where it trains ("cpu", "cuda");
- `open(job)`: get ready (start processes, join a cluster); `job` (units.Job) is what every unit shares;
- `slots()`: how many units it can have in flight now (the scheduler submits until that many are);
- `submit(unit)`: start a unit (units.Unit, picklable: a description of its runs, no tensors);
- `wait()`: block until at least one submitted unit is finished; its `Finished` results: the records of its
  runs (from `units.execute`, whose checkpoints are written already) or the exception that stopped it;
- `notes()`: words for the progress bar and the closing line (e.g. device hours);
- `close()`: let go of what `open` took, also after an error or Ctrl-C.

`LocalExecutor` trains in this process, one unit at a time; `workers.WorkerExecutor` on worker processes
(`submit` sends (job, unit) to a process that calls `units.execute`, `wait` returns what came back);
`ray_executor.RayExecutor` as Ray tasks. The store, resume, claims, progress and the summary stay in the
scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..records import RunRecord
from .units import Hook, Job, Unit, execute, forget


@dataclass
class Finished:
    """A unit that is done: the records of its runs, or the error that stopped it (then no records)."""

    unit: Unit
    records: list[RunRecord] = field(default_factory=list)
    error: BaseException | None = None


class Executor:
    """The interface (module docstring); subclasses override what they need."""

    name = "executor"
    can_batch = True
    """Units may be groups for the batched trainer (else one run each)."""

    def device(self, asked: str) -> str:
        from . import device as dev

        return str(dev.resolve(asked))

    def open(self, job: Job) -> None:
        self.job = job

    def slots(self) -> int:
        return 1

    def submit(self, unit: Unit) -> None:
        raise NotImplementedError

    def wait(self) -> list[Finished]:
        raise NotImplementedError

    def notes(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        pass


class LocalExecutor(Executor):
    """Trains each unit in this process when the scheduler waits for it (one at a time)."""

    name = "local"

    def __init__(self, progress: bool = False, hook: Hook | None = None):
        self.progress = progress
        self.hook = hook
        self._queue: list[Unit] = []

    def submit(self, unit: Unit) -> None:
        self._queue.append(unit)

    def wait(self) -> list[Finished]:
        unit = self._queue.pop(0)
        try:
            return [Finished(unit, execute(self.job, unit, self.hook, self.progress))]
        except Exception as exc:  # noqa: BLE001 - the scheduler raises it once the store is up to date
            return [Finished(unit, error=exc)]

    def close(self) -> None:
        self._queue.clear()
        forget()   # the data set and models on the device go with the run
