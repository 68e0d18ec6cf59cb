"""Worker processes on the CPU: the scheduler's units on N processes of one intra-op thread each.

Small networks do not use two cores inside one matmul: two intra-op threads on two cores wait on each other
at every parallel region whenever anything else runs on the machine (measured: 2.2x slower beside one busy
process, where a fair share costs 1.5x). The grids are embarrassingly parallel, so on the CPU the
parallelism is across units: `WorkerExecutor` sends each unit to one of N spawned processes, which call
`units.execute` with one intra-op thread and hand the records back; the scheduler stays the one writer.

Results do not depend on N: a unit is the same group of runs whatever N is (the scheduler cuts each stage
into fixed groups, `scheduler.units_of`), every process trains with one thread, and a run's arithmetic
depends only on its group. On CUDA one process drives the device (`for_this_machine`).

When the workers are as many as the cores this process may run on, each worker is pinned to its own core
(`pinned_cores`). Left to itself the kernel often puts two workers on one core and a competing process alone
on the other, where no migration looks like an improvement to its load balancer (3 tasks on 2 cores are
split 2 + 1 either way): the workers then get one core between them instead of one and a half (measured on
the demo's grid beside one busy process: docs/demo.md).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path

from .executors import Executor, Finished, LocalExecutor
from .units import Job, Unit, execute

QUEUED = 1
"""Units submitted beyond the workers (`WorkerExecutor.slots`)."""


def usable_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup CPU quota (containers, Slurm)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cgroup_quota()
    return max(1, min(cores, quota)) if quota else max(1, cores)


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Whole cores allowed by the cgroup's CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), rounded up;
    None when unlimited or unreadable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def pinned_cores(workers: int) -> list[int] | None:
    """The cores to pin `workers` processes to, one each: this process's affinity mask when it has exactly
    that many cores; None (the kernel places them) when it has more (a cgroup quota below the mask, or fewer
    workers asked: free cores to move to), fewer (more workers asked than cores), or no affinity API."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    return cores if len(cores) == workers and workers > 1 else None


PARENT_POLL_S = 1.0
"""How often a worker checks that its scheduler process is still there."""


def _exit_with_parent(parent: int) -> None:
    """A worker whose scheduler died (SIGKILL, out of memory) has nobody to hand records to, and the pool's
    queue would keep it waiting forever, holding its memory: it exits too."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _start_worker(started, cores: list[int] | None) -> None:
    """In each worker before any task: the next core of `cores` (`started` counts the workers so far), a
    watch on the parent (`_exit_with_parent`), and Ctrl-C left to the parent, which stops the workers itself
    (so a terminal's Ctrl-C gives one clean exit, not N tracebacks). The thread count is the job's
    (`units.context`: one intra-op thread on the CPU unless --threads says otherwise)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    if cores:
        with started.get_lock():
            i = started.value
            started.value += 1
        os.sched_setaffinity(0, {cores[i % len(cores)]})


class WorkerExecutor(Executor):
    """Units on `workers` spawned processes (spawn: a fresh interpreter, no forked torch or OpenMP state)."""

    name = "local"   # the same machine and results as the in-process executor; meta.executor says so

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[Future, Unit] = {}

    def open(self, job: Job) -> None:
        super().open(job)
        spawn = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(self.workers, mp_context=spawn, initializer=_start_worker,
                                         initargs=(spawn.Value("i", 0), pinned_cores(self.workers)))

    def slots(self) -> int:
        """One unit more than the workers: it waits in the pool's queue, so a worker that finishes starts its
        next unit at once instead of idling while the scheduler lands records and claims the next unit."""
        return self.workers + QUEUED

    def submit(self, unit: Unit) -> None:
        self._running[self._pool.submit(execute, self.job, unit)] = unit

    def wait(self) -> list[Finished]:
        done, _ = wait_futures(list(self._running), return_when=FIRST_COMPLETED)
        out = []
        for future in done:
            unit = self._running.pop(future)
            error = future.exception()   # BrokenProcessPool when a worker died (killed, out of memory)
            out.append(Finished(unit, error=error) if error is not None else Finished(unit, future.result()))
        return out

    def notes(self) -> dict[str, str]:
        return {"workers": str(self.workers)}

    def close(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if self._running:   # stopped early (an error, Ctrl-C): the units in flight are not waited for
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:   # ProcessPoolExecutor has no public terminate before Python 3.14
                proc.terminate()
            for proc in processes:
                proc.join(5)
            self._running.clear()
        else:
            pool.shutdown(wait=True)


class WorkersOnCuda(ValueError):
    """`--workers N > 1` asked on CUDA, where one process drives a device."""


def for_this_machine(device: str, workers: int | None, progress: bool = False) -> Executor:
    """The executor `lth-audit run` uses here: on the CPU, `workers` processes (None: the usable cores; 1:
    this process); on CUDA, this process (one process per device; WorkersOnCuda for more)."""
    if device.startswith("cuda"):
        if workers not in (None, 1):
            raise WorkersOnCuda(f"--workers {workers} on CUDA: one process drives a device; to use several GPUs, "
                             "start one `lth-audit run` per GPU (CUDA_VISIBLE_DEVICES=i) on the same file: "
                             "the processes share the runs (docs/backend.md)")
        return LocalExecutor(progress=progress)
    n = usable_cores() if workers is None else workers
    return LocalExecutor(progress=progress) if n == 1 else WorkerExecutor(n)
