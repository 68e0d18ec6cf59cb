"""The scheduler's contract with executors: picklable units, stages as batched units, an error in a unit."""

from __future__ import annotations

import pickle

import pytest

from lth_audit.backend.executors import LocalExecutor
from lth_audit.backend.experiment import load_experiment
from lth_audit.backend.plan import make_plan
from lth_audit.backend.scheduler import Scheduler
from lth_audit.backend.units import Job, Unit
from lth_audit.records import load_records

SETTINGS = ["pretrain", "lt-imp", "lt-omp", "sdt"]


class Recording(LocalExecutor):
    """The local executor, keeping every unit it was given."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.units: list[Unit] = []

    def submit(self, unit: Unit) -> None:
        self.units.append(unit)
        super().submit(unit)


def test_jobs_and_units_pickle(tmp_path, write_exp):
    """What a worker process or a Ray task receives is a description: it survives pickling as it was."""
    exp = load_experiment(write_exp(tmp_path))
    runs = tuple(make_plan(exp).runs[:3])
    job, unit = Job(exp, "cpu", True, 1, "local"), Unit(runs)
    job2, unit2 = pickle.loads(pickle.dumps((job, unit)))
    assert unit2 == unit and job2.device == "cpu" and job2.batched
    assert job2.experiment.training_config() == exp.training_config() and job2.experiment.out_path == exp.out_path


@pytest.mark.parametrize("batched,max_group", [(True, None), (True, 1), (False, None)])
def test_units_are_stages_when_batched_and_single_runs_otherwise(tmp_path, write_exp, batched, max_group):
    exp = load_experiment(write_exp(tmp_path, lrs=[0.05, 0.1], settings=SETTINGS))
    ex = Recording()
    summary = Scheduler(exp, ex, device="cpu", batched=batched, max_group=max_group, quiet=True).run()
    sizes = [len(u.runs) for u in ex.units]
    stages = [u.stage for u in ex.units]
    assert all(len({r.stage for r in u.runs}) == 1 for u in ex.units)      # a unit never mixes stages
    if batched and max_group is None:
        assert stages == ["pretrain", "imp-1", "imp-2", "lt-omp", "sdt-s0.36"] and sizes == [2] * 5
    else:
        assert sizes == [1] * 10
    assert len(summary.trained) == 10
    trainers = {r.meta["trainer"] for r in load_records([exp.out_path]).raise_on_problems()}
    assert trainers == ({"batched"} if batched and max_group is None else {"single"})


def test_an_error_in_a_unit_keeps_what_finished_and_the_next_call_trains_the_rest(tmp_path, write_exp):
    exp = load_experiment(write_exp(tmp_path, lrs=[0.05, 0.1], settings=SETTINGS))
    bad = "tiny/mlp-lt-omp-s0.36-lr0.1-seed0"

    def hook(run_id: str, point: str) -> None:
        if run_id == bad and point == "start":
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        Scheduler(exp, LocalExecutor(hook=hook), device="cpu", quiet=True).run()
    done = {r.run_id for r in load_records([exp.out_path]).raise_on_problems()}
    assert bad not in done and len(done) >= 6          # pretrain and the IMP chain came first
    summary = Scheduler(exp, LocalExecutor(), device="cpu", quiet=True).run()
    assert summary.skipped == len(done) and len(summary.trained) == 10 - len(done)
