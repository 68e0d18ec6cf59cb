"""The ray executor against a real local Ray instance: same records as the local executor, a worker killed
mid-task is retried, a killed driver resumes; each record is written exactly once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')

from lth_audit.cli import main  # noqa: E402
from lth_audit.backend.experiment import load_experiment  # noqa: E402
from lth_audit.backend.ray_executor import RayExecutor, SharedStorageError, check_shared_dir  # noqa: E402
from lth_audit.backend.scheduler import Scheduler, run_experiment  # noqa: E402
from lth_audit.records import load_records  # noqa: E402
from ..processes import sigkill_after_first_record  # noqa: E402

pytestmark = pytest.mark.ray
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # hooks travel to the workers by value
ROOT = Path(__file__).resolve().parents[2]
N_TINY = 18  # 2 lrs x 1 seed x (pretrain, imp-1, imp-2, lt-omp, rr-omp, rr-imp, wr-omp, wr-imp, sdt)


class RefuseStorage:
    """Fault hook: the worker of `run_id` finds no shared checkpoint folder (marks each call)."""

    def __init__(self, marker_dir: Path, run_id: str):
        self.marker_dir, self.run_id = str(marker_dir), run_id

    def __call__(self, run_id: str, point: str) -> None:
        if run_id == self.run_id and point == "start":
            Path(self.marker_dir, f"call-{time.monotonic_ns()}").touch()
            raise SharedStorageError(f"checkpoint folder /nfs/x does not exist on worker node n1 ({run_id})")


class KillOnce:
    """Fault hook run inside the Ray worker: SIGKILL the worker process the first time `run_id` reaches
    `point` ("start": before training, "trained": checkpoints written, record not yet returned)."""

    def __init__(self, marker_dir: Path, targets: dict[str, str]):
        self.marker_dir, self.targets = str(marker_dir), targets

    def __call__(self, run_id: str, point: str) -> None:
        if self.targets.get(run_id) != point:
            return
        marker = Path(self.marker_dir) / (run_id.replace("/", "__") + f".{point}")
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # the retry: let it through
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def run_ray(exp, hook):
    return Scheduler(exp, RayExecutor(hook=hook), device="cpu", quiet=True).run()


def records(path: Path) -> dict:
    return {r.run_id: r for r in load_records([path]).raise_on_problems()}


def results(recs: dict) -> dict:
    return {k: (r.top1, r.best_top1, r.r_p, r.sparsity, r.params, r.epochs, r.meta["trainer"])
            for k, r in recs.items()}


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory, mnist1d_cache, write_exp):
    """The tiny grid with the local executor (single-run trainer), once for the module."""
    exp = load_experiment(write_exp(tmp_path_factory.mktemp("local")))
    run_experiment(exp, device="cpu", quiet=True, batched=False)
    return records(exp.out_path)


def test_same_records_as_local_executor(ray_cluster, tmp_path, write_exp, local_reference, capsys):
    path = write_exp(tmp_path)
    assert main(["run", str(path), "--executor", "ray", "--device", "cpu", "--quiet"]) == 0
    assert f"trained {N_TINY} runs" in capsys.readouterr().out
    recs = records(tmp_path / "tiny.jsonl")
    assert len(recs) == N_TINY and {r.setting for r in recs.values()} == load_experiment(path).setting_set()
    assert results(recs) == results(local_reference)       # same run_ids, bit-identical accuracies on CPU
    assert all(r.meta["executor"] == "ray" for r in recs.values())
    # a second call finds everything done
    assert main(["run", str(path), "--executor", "ray", "--quiet"]) == 0
    assert "trained 0 runs" in capsys.readouterr().out


def test_worker_killed_mid_task_is_retried(ray_cluster, tmp_path, write_exp, local_reference):
    marks = tmp_path / "marks"
    marks.mkdir()
    hook = KillOnce(marks, {"tiny/mlp-pretrain-s0-lr0.1-seed0": "start",
                            "tiny/mlp-lt-imp-s0.2-lr0.02-seed0": "trained"})
    exp = load_experiment(write_exp(tmp_path / "exp"))
    summary = run_ray(exp, hook)
    assert sorted(p.name for p in marks.iterdir()) == ["tiny__mlp-lt-imp-s0.2-lr0.02-seed0.trained",
                                                       "tiny__mlp-pretrain-s0-lr0.1-seed0.start"]
    ids = [r.run_id for r in load_records([exp.out_path]).raise_on_problems()]
    assert len(ids) == len(set(ids)) == N_TINY == len(summary.trained)   # none lost, none twice
    assert results(records(exp.out_path)) == results(local_reference)    # the retries trained the same


def test_killed_driver_resumes(ray_cluster, tmp_path, write_exp):
    path = write_exp(tmp_path, lrs=[0.02, 0.05, 0.1], seeds=[0, 1], epochs=6,
                     settings=["pretrain", "lt-imp", "lt-omp"])
    total = 6 * 4                                          # pretrain, imp-1, imp-2 (lt-imp 0.36), lt-omp
    out = tmp_path / "tiny.jsonl"
    address = ray_cluster.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "lth_audit.cli", "run", str(path), "--executor", "ray",
           "--address", address, "--device", "cpu", "--quiet"]
    before = sigkill_after_first_record(cmd, out, timeout=90, children_exit=False)   # Ray manages its processes
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    assert 1 <= len(before) < total
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after = out.read_text().splitlines()
    assert after[:len(before)] == before                   # finished runs not redone (same lines, same wall_s)
    ids = [json.loads(line)["run_id"] for line in after]
    assert len(ids) == len(set(ids)) == total
    assert f"trained {total - len(before)} runs, {len(before)} already done" in done.stdout


def test_unshared_checkpoint_folder_is_a_clear_worker_error(ray_cluster, tmp_path):
    missing = tmp_path / "not-mounted" / "tiny.jsonl.ckpt"
    with pytest.raises(SharedStorageError) as info:
        ray.get(ray.remote(check_shared_dir).options(max_retries=0).remote(str(missing)))
    assert str(missing) in str(info.value) and "shared by every node" in str(info.value)
    check_shared_dir(tmp_path)  # an existing, writable folder passes


def test_worker_error_stops_the_grid_cleanly(ray_cluster, tmp_path, write_exp, capsys):
    marks = tmp_path / "marks"
    marks.mkdir()
    exp = load_experiment(write_exp(tmp_path / "exp"))
    bad = "tiny/mlp-lt-omp-s0.36-lr0.1-seed0"
    with pytest.raises(SharedStorageError, match="/nfs/x does not exist"):
        run_ray(exp, RefuseStorage(marks, bad))
    assert len(list(marks.iterdir())) == 1                      # not retried: it would fail again
    ids = [r.run_id for r in load_records([exp.out_path]).raise_on_problems()]
    assert bad not in ids and len(ids) == len(set(ids)) >= 2    # what finished is kept, once
    # the next call trains only what is missing
    assert main(["run", str(exp.source), "--executor", "ray", "--quiet"]) == 0
    assert f"trained {N_TINY - len(ids)} runs, {len(ids)} already done" in capsys.readouterr().out
