"""`lth-audit run FILE --executor ray`: the scheduler's units as Ray tasks.

The scheduler (`scheduler.py`) does what it does for every executor: resume, dependencies, priorities,
claims, the one store writer, progress and the summary. This executor only runs units on a Ray cluster
(docs/ray.md says the same for users):

- **Unit = one planned run**, one Ray task (`train_unit`): it checks the shared checkpoint folder, then calls
  `units.execute` (single-run trainer; checkpoints written atomically, so a retried task rewrites the same
  files) and returns the records to the driver, which appends them.
- **Slots.** As many tasks in flight as the cluster has room for (CPUs, and GPUs divided by the fraction one
  task asks), re-read every 10 s: the cluster may grow or shrink. The ready runs wait on the driver.
- **Faults.** A task whose worker process or node dies is retried by Ray (`max_retries`); OSErrors are
  retried too (a checkpoint just written by another node may show up late on NFS). Other exceptions are
  not retried (they would fail again): the scheduler records whatever else finishes, then raises.
- **Resources.** CPU: `num_cpus=1` per task and one torch thread for models under 1M parameters (as
  locally). CUDA: a fraction of a GPU per task (1/8 under 1M parameters, 1/4 under 30M, else 1).

`ray` is imported only here, and only when the executor opens (it is an optional extra).
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

from ..records import RunRecord
from .executors import Executor, Finished
from .units import Hook, Job, Unit, execute

INSTALL_HINT = 'the ray executor needs Ray: pip install -e ".[ray]"   (or: pip install "ray[default]>=2.9")'
MAX_RETRIES = 3
SLOTS_EVERY_S = 10.0


class RayNotInstalled(RuntimeError):
    pass


class SharedStorageError(RuntimeError):
    """The checkpoint folder is missing or not writable on a worker node (never retried)."""


def gpus_per_run(n_params: int) -> float:
    """A fraction of a GPU for one run: small models share a GPU eight ways."""
    if n_params < 1_000_000:
        return 1 / 8
    if n_params < 30_000_000:
        return 1 / 4
    return 1.0


# ------------------------------------------------------------------------------------------ worker side
def check_shared_dir(path: str | os.PathLike[str]) -> None:
    """On a worker: the checkpoint folder must exist and take a file, else a clear, non-retried error."""
    path = Path(path)
    host = socket.gethostname()
    why = None
    if not path.is_dir():
        why = "does not exist"
    else:
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            why = f"is not writable ({exc.strerror or exc})"
    if why:
        raise SharedStorageError(
            f"checkpoint folder {path} {why} on worker node {host}: with --executor ray it must be on "
            f"storage shared by every node (NFS, Lustre, ...) and mounted at the same path; see docs/ray.md")


def train_unit(job: Job, unit: Unit, hook: Hook | None = None) -> tuple[list[str], float]:
    """A Ray task: train `unit` on this worker, write its checkpoints; (its records as JSON, wall seconds)."""
    t0 = time.perf_counter()
    check_shared_dir(job.experiment.ckpt_dir)
    records = execute(job, unit, hook)
    return [r.to_json() for r in records], time.perf_counter() - t0


# ------------------------------------------------------------------------------------------ driver side
def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalled(INSTALL_HINT) from exc
    return ray


class RayExecutor(Executor):
    """Units as Ray tasks on a cluster (`address`), or on a local Ray instance it starts and stops."""

    name = "ray"
    can_batch = False

    def __init__(self, address: str | None = None, gpus: float | None = None, max_retries: int = MAX_RETRIES,
                 hook: Hook | None = None):
        self.address = address
        self.gpus_arg = gpus
        self.max_retries = max_retries
        self.hook = hook
        self.gpu_hours = self.cpu_hours = 0.0
        self._ray = None
        self._started = False
        self._in_flight: dict = {}
        self._slots = (0.0, 1)

    def _connect(self):
        if self._ray is None:
            ray = _import_ray()
            if not ray.is_initialized():
                ray.init(address=self.address, logging_level="WARNING", log_to_driver=True,
                         **({} if self.address else {"include_dashboard": False}))
                self._started = True
            self._ray = ray
        return self._ray

    def device(self, asked: str) -> str:
        """`auto` means CUDA when the cluster has GPUs (the driver itself may have none)."""
        have_gpu = self._connect().cluster_resources().get("GPU", 0) > 0
        if asked == "cuda" and not have_gpu:
            raise RuntimeError("--device cuda: the Ray cluster has no GPU resources")
        return "cuda" if asked == "cuda" or (asked == "auto" and have_gpu) else "cpu"

    def open(self, job: Job) -> None:
        from .steps import Steps

        exp = job.experiment
        if exp.source is not None:  # workers resolve `out` / `data_root` against it: make it absolute
            exp = exp.model_copy(update={"source": str(Path(exp.source).resolve())})
        self.job = Job(exp, job.device, False, job.threads, job.executor)
        ray = self._connect()
        self.cpus = 1.0
        self.gpus = 0.0 if job.device == "cpu" else (self.gpus_arg or gpus_per_run(Steps(exp).total_params))
        self._task = ray.remote(train_unit).options(num_cpus=self.cpus, num_gpus=self.gpus,
                                                    max_retries=self.max_retries, retry_exceptions=[OSError],
                                                    name="lth-audit-train")
        self._job_ref = ray.put(self.job)

    def slots(self) -> int:
        at, n = self._slots
        if time.monotonic() - at > SLOTS_EVERY_S:
            res = self._ray.cluster_resources()
            n = int(res.get("CPU", 1) // self.cpus)
            if self.gpus:
                n = min(n, int(res.get("GPU", 0) / self.gpus + 1e-9))
            self._slots = (time.monotonic(), max(1, n))
        return self._slots[1]

    def submit(self, unit: Unit) -> None:
        self._in_flight[self._task.remote(self._job_ref, unit, self.hook)] = unit

    def wait(self) -> list[Finished]:
        ray = self._ray
        ready, _ = ray.wait(list(self._in_flight), num_returns=1)
        out = []
        for ref in ready:
            unit = self._in_flight.pop(ref)
            try:
                lines, wall = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the scheduler raises it once the store is up to date
                out.append(Finished(unit, error=self._cause(exc)))
                continue
            self.gpu_hours += wall * self.gpus / 3600
            self.cpu_hours += wall * self.cpus / 3600
            out.append(Finished(unit, [RunRecord.model_validate_json(line) for line in lines]))
        return out

    def _cause(self, exc: BaseException) -> BaseException:
        """The worker's exception when it says what to fix (shared storage), else a RuntimeError naming it."""
        cause = exc
        if isinstance(exc, self._ray.exceptions.RayTaskError) and getattr(exc, "cause", None) is not None:
            cause = exc.cause
        if isinstance(cause, SharedStorageError):
            return SharedStorageError(str(cause))
        return RuntimeError(f"a run failed on a Ray worker: {type(cause).__name__}: {cause}")

    def notes(self) -> dict[str, str]:
        return {"GPU-h": f"{self.gpu_hours:.3f}", "CPU-h": f"{self.cpu_hours:.3f}"}

    def close(self) -> None:
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._started, self._in_flight = None, False, {}
