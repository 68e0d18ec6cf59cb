"""`lth-audit run FILE --executor ray`: the runs of a plan as Ray tasks, one writer for the records.

Design (docs/ray.md says the same for users):

- **Unit = one planned run.** Every `PlannedRun` is one Ray task (`train_run`) that trains it with the
  single-run trainer, writes its checkpoints to `<out>.ckpt/` (atomic, so a retried task is idempotent)
  and returns its record as JSON. Runs of one stage at different (lr, seed) run in parallel; an IMP chain
  (per lr, seed) advances as soon as its own previous round is done, not when the whole round is.
- **Scheduling on the driver.** A run is submitted once every run in `PlannedRun.deps` is finished
  (record + checkpoints). At most as many tasks are in flight as the cluster has slots for (CPUs / GPUs
  divided by what one task asks), so the ready queue stays on the driver and is ordered by the longest
  chain of epochs still hanging off each run (the IMP chain first, SDT runs fill gaps).
- **One writer.** Only the driver appends records (`RecordStore.append`), and only for a run_id not yet
  in the store; a lock file `<out>.lock` keeps a second driver off the same store.
- **Faults.** A task whose worker process or node dies is retried by Ray (`max_retries`); OSErrors are
  retried too (a checkpoint just written by another node may show up late on NFS). Other exceptions are
  not retried (they would fail again): the driver records whatever else finishes, then reports the
  error. Killing the driver loses at most the runs in flight; running it again resumes like the local
  executor (`Runner.satisfied`).
- **Resources.** CPU: `num_cpus=1` per task and one torch thread for models under 1M parameters (as the
  local runner). CUDA: a fraction of a GPU per task (1/8 under 1M parameters, 1/4 under 30M, else 1).

`ray` is imported only here, and only when the executor runs (it is an optional extra).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..records import RunRecord
from ..store import RecordStore
from .experiment import Experiment
from .plan import PlannedRun

INSTALL_HINT = 'the ray executor needs Ray: pip install -e ".[ray]"   (or: pip install "ray[default]>=2.9")'
MAX_RETRIES = 3


class RayNotInstalled(RuntimeError):
    pass


class SharedStorageError(RuntimeError):
    """The checkpoint folder is missing or not writable on a worker node (never retried)."""


@dataclass
class RaySummary:
    trained: list[str]
    skipped: int
    diverged: list[str]
    wall_s: float
    gpu_hours: float
    cpu_hours: float
    device: str


def gpus_per_run(n_params: int) -> float:
    """A fraction of a GPU for one run: small models share a GPU eight ways."""
    if n_params < 1_000_000:
        return 1 / 8
    if n_params < 30_000_000:
        return 1 / 4
    return 1.0


# ------------------------------------------------------------------------------------------ worker side
_WORKER_CACHE: dict[tuple, tuple] = {}


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


def _worker_state(exp: Experiment, device: str, threads: int | None):
    """(Runner, data on device) for this worker process, built once per experiment and device."""
    key = (exp.config_hash(), str(exp.out_path), device, threads)
    if key not in _WORKER_CACHE:
        import torch

        from . import device as dev
        from .data import load_dataset
        from .run import Runner

        runner = Runner(exp, device=device, quiet=True, batched=False, threads=threads)
        if runner.device.type == "cpu":
            n = threads or dev.cpu_threads(runner.total_params) or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
            if n:
                torch.set_num_threads(n)
        data = load_dataset(exp.dataset, exp.data_path, exp.download, exp.augment, in_memory=exp.data_in_memory,
                            num_workers=exp.loader_workers).to(runner.device)
        _WORKER_CACHE.clear()
        _WORKER_CACHE[key] = (runner, data)
    return _WORKER_CACHE[key]


def train_run(exp: Experiment, run: PlannedRun, device: str, threads: int | None = None,
              hook: Callable[[str, str], None] | None = None) -> dict:
    """Train one planned run on this worker; write its checkpoints; return its record (not appended).

    Idempotent: checkpoints are written atomically and the record is only returned, so a retry after a
    crash anywhere in here rewrites the same files and the driver appends once. `hook(run_id, point)`
    (point "start" or "trained") is for fault-injection tests.
    """
    t0 = time.perf_counter()
    check_shared_dir(exp.ckpt_dir)
    if hook is not None:
        hook(run.run_id, "start")
    from .train import train_one

    runner, data = _worker_state(exp, device, threads)
    spec, info = runner.spec(run)
    out = train_one(spec, data, runner.device)
    runner.save_checkpoints(run, out)
    if hook is not None:
        hook(run.run_id, "trained")
    rec = runner.record(run, info, out, "single")
    rec.meta["executor"] = "ray"
    return {"run_id": run.run_id, "record": rec.to_json(), "diverged": out.diverged,
            "task_wall_s": time.perf_counter() - t0, "node": socket.gethostname()}


# ------------------------------------------------------------------------------------------ driver side
def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalled(INSTALL_HINT) from exc
    return ray


class _StoreLock:
    """An exclusive flock on `<out>.lock`: one driver (one writer) per record store; freed by the kernel
    if the driver dies."""

    def __init__(self, out: Path):
        self.path = out.with_name(out.name + ".lock")
        self.fd: int | None = None

    def __enter__(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise RuntimeError(f"another driver is writing {self.path.with_suffix('')} (lock {self.path} held)")
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def _priorities(runs: list[PlannedRun]) -> dict[str, int]:
    """Epochs on the longest chain from each run to the end of the plan (the run's own included)."""
    children: dict[str, list[PlannedRun]] = {}
    for r in runs:
        for d in r.deps:
            children.setdefault(d, []).append(r)
    prio: dict[str, int] = {}
    for r in reversed(runs):  # plan order is topological: deps come first
        prio[r.run_id] = r.epochs + max((prio[c.run_id] for c in children.get(r.run_id, [])), default=0)
    return prio


class RayExecutor:
    def __init__(self, exp: Experiment, address: str | None = None, device: str = "auto", quiet: bool = False,
                 threads: int | None = None, gpus: float | None = None, max_retries: int = MAX_RETRIES,
                 hook: Callable[[str, str], None] | None = None, log=None):
        if exp.source is not None:  # workers resolve `out` / `data_root` against it: make it absolute
            exp = exp.model_copy(update={"source": str(Path(exp.source).resolve())})
        self.exp = exp
        self.address = address
        self.device_arg = device
        self.quiet = quiet
        self.threads = threads
        self.gpus_arg = gpus
        self.max_retries = max_retries
        self.hook = hook
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.store = RecordStore(exp.out_path)

    def _device(self, ray) -> str:
        """`auto` means CUDA when the cluster has GPUs (the driver itself may have none)."""
        have_gpu = ray.cluster_resources().get("GPU", 0) > 0
        if self.device_arg == "cuda" and not have_gpu:
            raise RuntimeError("--device cuda: the Ray cluster has no GPU resources")
        return "cuda" if self.device_arg == "cuda" or (self.device_arg == "auto" and have_gpu) else "cpu"

    def run(self) -> RaySummary:
        ray = _import_ray()
        started = False
        if not ray.is_initialized():
            ray.init(address=self.address, logging_level="WARNING", log_to_driver=True,
                     **({} if self.address else {"include_dashboard": False}))
            started = True
        try:
            with _StoreLock(self.exp.out_path):
                return self._run(ray)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray) -> RaySummary:
        from tqdm.auto import tqdm

        from .run import Runner

        t0 = time.perf_counter()
        device = self._device(ray)
        drv = Runner(self.exp, device="cpu", quiet=True, batched=False, threads=self.threads)
        gpus = 0.0 if device == "cpu" else (self.gpus_arg or gpus_per_run(drv.total_params))
        cpus = 1.0
        done = self.store.run_ids()
        runs = drv.plan.runs
        todo = [r for r in runs if not drv.satisfied(r, done)]
        finished = {r.run_id for r in runs} - {r.run_id for r in todo}
        summary = RaySummary([], len(runs) - len(todo), [], 0.0, 0.0, 0.0, device)
        if not todo:
            summary.wall_s = time.perf_counter() - t0
            return summary
        drv.ck.root.mkdir(parents=True, exist_ok=True)
        for seed in sorted({r.seed for r in todo}):  # θ0 once, here, not raced by the workers
            drv.theta0(seed)

        task = ray.remote(train_run).options(num_cpus=cpus, num_gpus=gpus, max_retries=self.max_retries,
                                             retry_exceptions=[OSError], name="lth-audit-train")
        exp_ref = ray.put(self.exp)
        prio = _priorities(runs)
        waiting = sorted(todo, key=lambda r: -prio[r.run_id])  # stable: plan order among equals
        in_flight: dict = {}
        slots_at = [0.0, 1]

        def slots() -> int:
            if time.monotonic() - slots_at[0] > 10:  # the cluster may grow or shrink
                res = ray.cluster_resources()
                n = int(res.get("CPU", 1) // cpus)
                if gpus:
                    n = min(n, int(res.get("GPU", 0) / gpus + 1e-9))
                slots_at[:] = [time.monotonic(), max(1, n)]
            return slots_at[1]

        bar = tqdm(total=len(todo), desc=f"{self.exp.name} (ray, {device})", unit="run", disable=self.quiet)

        def postfix() -> None:
            # the bar counts runs done; the postfix: in flight, not started yet, device time spent
            bar.set_postfix({"in_flight": len(in_flight), "left": len(waiting),
                             "gpu_h": f"{summary.gpu_hours:.3f}", "cpu_h": f"{summary.cpu_hours:.3f}"})

        error: BaseException | None = None
        try:
            while waiting or in_flight:
                if error is None:
                    for r in list(waiting):
                        if len(in_flight) >= slots():
                            break
                        if all(d in finished for d in r.deps):
                            waiting.remove(r)
                            ref = task.remote(exp_ref, r, device, self.threads, self.hook)
                            in_flight[ref] = r
                elif not in_flight:
                    break
                postfix()
                if not in_flight:  # nothing runnable: deps that can never finish (should not happen)
                    raise RuntimeError(f"no runnable run among {[r.run_id for r in waiting]}")
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    r = in_flight.pop(ref)
                    try:
                        res = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - reported after the in-flight runs land
                        if error is None:
                            error = exc
                            waiting.clear()
                        continue
                    summary.gpu_hours += res["task_wall_s"] * gpus / 3600
                    summary.cpu_hours += res["task_wall_s"] * cpus / 3600
                    if r.run_id not in done:  # one writer, one record per run_id
                        self.store.append([RunRecord.model_validate(json.loads(res["record"]))])
                        done.add(r.run_id)
                        summary.trained.append(r.run_id)
                        if res["diverged"]:
                            summary.diverged.append(r.run_id)
                    finished.add(r.run_id)
                    bar.update(1)
        finally:
            postfix()
            bar.close()
        summary.wall_s = time.perf_counter() - t0
        if error is not None:
            cause = error
            if isinstance(error, ray.exceptions.RayTaskError):
                cause = error.cause if getattr(error, "cause", None) is not None else error
            if isinstance(cause, SharedStorageError):
                raise SharedStorageError(str(cause)) from None
            raise RuntimeError(f"a run failed on a Ray worker ({len(summary.trained)} records written): "
                               f"{type(cause).__name__}: {cause}") from error
        return summary


def run_ray(exp: Experiment, address: str | None = None, **kw) -> RaySummary:
    return RayExecutor(exp, address=address, **kw).run()
