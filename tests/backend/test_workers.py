"""Worker processes on the CPU: fixed units, the same bits with 1 or 2 workers, errors and dead workers
come back as errors, the usable cores."""

from __future__ import annotations

import os
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from lth_audit.backend.executors import LocalExecutor
from lth_audit.backend.experiment import load_experiment
from lth_audit.backend.plan import make_plan
from lth_audit.backend.scheduler import Scheduler, units_of
from lth_audit.backend.units import Job, Unit
from lth_audit.backend.workers import (WorkerExecutor, WorkersOnCuda, cgroup_quota, for_this_machine, pinned_cores,
                                       usable_cores)
from lth_audit.records import load_records

GRID = {"lrs": [0.05, 0.1], "seeds": [0, 1], "settings": ["pretrain", "lt-imp", "rr-imp", "lt-omp", "sdt"],
        "sparsities": [0.36]}


class RecordingWorkers(WorkerExecutor):
    def __init__(self, workers: int):
        super().__init__(workers)
        self.units: list[Unit] = []
        self.most_in_flight = 0

    def submit(self, unit: Unit) -> None:
        self.units.append(unit)
        super().submit(unit)
        self.most_in_flight = max(self.most_in_flight, len(self._running))


class RecordingLocal(LocalExecutor):
    def __init__(self):
        super().__init__()
        self.units: list[Unit] = []

    def submit(self, unit: Unit) -> None:
        self.units.append(unit)
        super().submit(unit)


def test_units_cut_each_stage_into_near_equal_groups_in_plan_order(tmp_path, write_exp):
    plan = make_plan(load_experiment(write_exp(tmp_path, lrs=[0.01, 0.05, 0.1], seeds=[0, 1, 2, 3],
                                               settings=["pretrain", "lt-omp"], sparsities=[0.36])))
    stages = dict(plan.stages)
    assert [len(u) for u in units_of(plan, 8)] == [6, 6, 6, 6]            # 12 runs a stage: two of six
    assert [len(u) for u in units_of(plan, 5)] == [4, 4, 4, 4, 4, 4]
    assert [len(u) for u in units_of(plan, None)] == [12, 12]
    assert [len(u) for u in units_of(plan, 1)] == [1] * 24
    for size in (1, 5, 8, None):
        units = units_of(plan, size)
        assert [r for u in units for r in u] == plan.runs                 # every run once, in plan order
        assert all(u == stages[u[0].stage][stages[u[0].stage].index(u[0]):][:len(u)] for u in units)


def _results(path):
    return {r.run_id: r.model_dump(mode="json", exclude={"meta"}) for r in load_records([path]).raise_on_problems()}


@pytest.mark.slow
def test_one_and_two_workers_train_the_same_units_and_the_same_bits(tmp_path, write_exp, mnist1d):
    runs = {}
    seen = {}
    for n in (1, 2):
        folder = tmp_path / f"w{n}"
        folder.mkdir()
        exp = load_experiment(write_exp(folder, **GRID))
        ex = RecordingLocal() if n == 1 else RecordingWorkers(n)
        summary = Scheduler(exp, ex, device="cpu", batched=True, max_group=2, quiet=True).run()
        assert len(summary.trained) == len(make_plan(exp).runs) == 24
        seen[n] = sorted(u.run_ids for u in ex.units)
        runs[n] = _results(exp.out_path)
        if n == 2:
            assert summary.notes == {"workers": "2"}
            assert ex.most_in_flight == 3      # a unit waits in the queue for the first worker to finish
            assert {r.meta["executor"] for r in load_records([exp.out_path]).records} == {"local"}
    assert seen[1] == seen[2] and all(len(ids) == 2 for ids in seen[1])    # the same groups of two
    assert runs[1] == runs[2]                                             # ... so the same records, bit for bit


@pytest.mark.slow
def test_an_error_in_a_worker_comes_back_with_its_unit(tmp_path, write_exp, mnist1d):
    exp = load_experiment(write_exp(tmp_path, **GRID))
    plan = make_plan(exp)
    orphan = next(r for r in plan.runs if r.setting.value == "lt-omp")     # its pretrained weights do not exist
    ex = WorkerExecutor(1)
    ex.open(Job(exp, "cpu", True, None, "local"))
    try:
        ex.submit(Unit((orphan,)))
        [done] = ex.wait()
    finally:
        ex.close()
    assert done.unit.run_ids == (orphan.run_id,) and done.records == []
    assert isinstance(done.error, FileNotFoundError)


@pytest.mark.slow
def test_a_worker_killed_mid_unit_is_an_error_not_a_hang_and_close_stops_the_others(tmp_path, write_exp, mnist1d):
    exp = load_experiment(write_exp(tmp_path, **{**GRID, "epochs": 200}))
    pretrain = [r for r in make_plan(exp).runs if r.setting.value == "pretrain"]
    exp.ckpt_dir.mkdir(parents=True)
    ex = WorkerExecutor(2)
    ex.open(Job(exp, "cpu", True, None, "local"))
    ex.submit(Unit(tuple(pretrain[:2])))
    ex.submit(Unit(tuple(pretrain[2:])))
    processes, deadline = [], time.monotonic() + 120
    while len(processes) < 2 and time.monotonic() < deadline:   # both workers started
        processes = list(ex._pool._processes.values())
        time.sleep(0.05)
    assert len(processes) == 2
    os.kill(processes[0].pid, 9)
    done = ex.wait()
    assert done and all(isinstance(d.error, BrokenProcessPool) for d in done)
    ex.close()
    assert not any(p.is_alive() for p in processes)


def test_usable_cores_honours_affinity_and_cgroup_quota(tmp_path, monkeypatch):
    import lth_audit.backend.workers as w

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(w, "cgroup_quota", lambda: None)
    assert usable_cores() == 4
    monkeypatch.setattr(w, "cgroup_quota", lambda: 3)
    assert usable_cores() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})
    assert usable_cores() == 1

    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(v2) == 2
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert cgroup_quota(v1) == 1
    assert cgroup_quota(tmp_path / "none") is None


def test_workers_are_pinned_one_a_core_only_when_they_use_every_core_of_the_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 1})
    assert pinned_cores(2) == [1, 3]
    assert pinned_cores(1) is None and pinned_cores(3) is None      # one process; more workers than cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert pinned_cores(2) is None                                   # free cores to move to: the kernel places
    monkeypatch.delattr(os, "sched_getaffinity")
    assert pinned_cores(2) is None


@pytest.mark.slow
@pytest.mark.skipif(len(getattr(os, "sched_getaffinity", lambda pid: ())(0)) < 2, reason="needs two cores")
def test_two_workers_on_a_two_core_mask_run_on_one_core_each(tmp_path, write_exp):
    mask = os.sched_getaffinity(0)
    two = set(sorted(mask)[:2])
    ex = WorkerExecutor(2)
    os.sched_setaffinity(0, two)                  # the mask the spawned workers start from
    try:
        ex.open(Job(load_experiment(write_exp(tmp_path, **GRID)), "cpu", True, None, "local"))
        futures = [ex._pool.submit(time.sleep, 1.0) for _ in range(2)]   # both workers start
        for f in futures:
            f.result()
        pids = list(ex._pool._processes)
        assert len(pids) == 2
        assert sorted(tuple(os.sched_getaffinity(pid)) for pid in pids) == [(c,) for c in sorted(two)]
    finally:
        os.sched_setaffinity(0, mask)
        ex.close()


def test_the_executor_for_this_machine(monkeypatch):
    import lth_audit.backend.workers as w

    monkeypatch.setattr(w, "usable_cores", lambda: 2)
    assert isinstance(for_this_machine("cpu", None), WorkerExecutor) and for_this_machine("cpu", None).workers == 2
    assert isinstance(for_this_machine("cpu", 1), LocalExecutor)
    assert for_this_machine("cpu", 3).workers == 3
    assert isinstance(for_this_machine("cuda", None), LocalExecutor)
    with pytest.raises(WorkersOnCuda, match="one process drives a device"):
        for_this_machine("cuda", 2)
    monkeypatch.setattr(w, "usable_cores", lambda: 1)
    assert isinstance(for_this_machine("cpu", None), LocalExecutor)


@pytest.mark.parametrize("args,message", [
    (["--workers", "0"], "--workers 0: must be at least 1"),
    (["--max-group", "0"], "--max-group 0: must be at least 1"),
    (["--executor", "ray", "--workers", "2"], "--workers is for --executor local"),
])
def test_run_refuses_bad_worker_options(tmp_path, write_exp, capsys, args, message):
    from lth_audit.cli import main

    assert main(["run", str(write_exp(tmp_path)), "--device", "cpu", *args]) == 2
    assert message in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the workers in /proc")
def test_ctrl_c_stops_the_workers_and_exits_130(tmp_path, write_exp, mnist1d):
    import signal
    import subprocess
    import sys

    path = write_exp(tmp_path, **{**GRID, "epochs": 200})
    proc = subprocess.Popen([sys.executable, "-m", "lth_audit.cli", "run", str(path), "--batched", "--quiet",
                             "--device", "cpu", "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline:
        workers = [p for p in _children(proc.pid) if "spawn_main" in open(f"/proc/{p}/cmdline").read()]
        if len(workers) == 2:
            break
        time.sleep(0.2)
    assert len(workers) == 2, proc.stderr.read() if proc.poll() is not None else "no workers started"
    time.sleep(1.0)   # a unit in flight
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    time.sleep(0.5)
    assert not [p for p in workers if os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read()
                .rsplit(")", 1)[1].split()[0]]


def test_run_help_states_the_cpu_group_size(capsys):
    from lth_audit.backend.scheduler import CPU_GROUP
    from lth_audit.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(default {CPU_GROUP} on the CPU" in help_text and "--workers" in help_text
