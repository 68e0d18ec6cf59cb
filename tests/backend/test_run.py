import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lth_audit.cli import main
from lth_audit.correlation import correlation_indicator
from lth_audit.backend.experiment import load_experiment
from lth_audit.backend.models import count_params, search_width
from lth_audit.backend.scheduler import run_experiment
from lth_audit.records import load_records
from lth_audit.store import RecordStore
from ..processes import sigkill_after_first_record

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_experiment_end_to_end(tmp_path, capsys, write_exp):
    path = write_exp(tmp_path)
    assert main(["run", str(path), "--quiet", "--device", "cpu"]) == 0
    res = load_records([tmp_path / "tiny.jsonl"])
    assert not res.problems
    recs = {r.run_id: r for r in res.records}
    assert {r.setting for r in recs.values()} == set(load_experiment(path).settings)   # every setting asked
    lt = recs["tiny/mlp-lt-imp-s0.36-lr0.05-seed0"]
    assert lt.sparsity == 0.36 and lt.mask_lr == 0.05 and lt.r_p.p == 0.1 and lt.r_p.init is not None
    assert lt.r_p.init_pretrained is not None and lt.r_p.reinit is None and lt.r_p.dense is None
    rr = recs["tiny/mlp-rr-imp-s0.36-lr0.05-seed0"]
    assert rr.r_p.reinit is not None and rr.r_p.reinit_pretrained is not None and rr.r_p.init is None
    assert recs["tiny/mlp-pretrain-s0-lr0.05-seed0"].r_p.dense is not None
    assert all(r.r_p is None for r in recs.values() if r.setting.value[:3] in ("sdt", "wr-"))
    assert all(r.meta["dense_layers"] == ["fc.weight"] and r.meta["init"] == "pytorch" for r in recs.values())
    wr = recs["tiny/mlp-wr-omp-s0.36-lr0.05-seed0"]
    assert wr.rewind_epoch == 1 and wr.epochs == 1
    sdt = recs["tiny/mlp-sdt-s0.36-lr0.05-seed0"]
    assert abs(sdt.params / lt.params - 1) < 0.02
    assert all(r.meta["device"] == "cpu" and "config_hash" in r.meta and "torch" in r.meta for r in recs.values())
    training = load_experiment(path).training_config()
    assert all(r.meta["config"] == training and r.meta["executor"] == "local" for r in recs.values())
    # checkpoints load with weights_only=True
    ck = load_experiment(path).ckpt_dir
    files = sorted(ck.rglob("*.pt"))
    assert any("masks" in str(f) for f in files) and any(f.name == "rewind.pt" for f in files)
    for f in files:
        obj = torch.load(f, weights_only=True)
        assert isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values())
    mask = torch.load(ck / "masks" / "imp-k2-lr0.05-seed0.pt", weights_only=True)
    final = torch.load(ck / "runs" / "tiny__mlp-lt-imp-s0.36-lr0.05-seed0" / "final.pt", weights_only=True)
    assert torch.all(final["fc1.weight"][mask["fc1.weight"] == 0] == 0)
    # R_p's pairings, recomputed from the checkpoints: own θT and the pretrain run's θT, under the mask
    theta0 = torch.load(ck / "init" / "seed0.pt", weights_only=True)
    pre = torch.load(ck / "runs" / "tiny__mlp-pretrain-s0-lr0.05-seed0" / "final.pt", weights_only=True)
    names = list(mask)
    pick = lambda sd: {n: sd[n] for n in names}  # noqa: E731
    assert lt.r_p.init == round(correlation_indicator(pick(theta0), pick(final), 0.1, mask), 6)
    assert lt.r_p.init_pretrained == round(correlation_indicator(pick(theta0), pick(pre), 0.1, mask), 6)
    assert recs["tiny/mlp-pretrain-s0-lr0.05-seed0"].r_p.dense == \
        round(correlation_indicator(pick(theta0), pick(pre), 0.1), 6)
    # a second call trains nothing
    capsys.readouterr()
    assert main(["run", str(path), "--quiet", "--device", "cpu"]) == 0
    assert "trained 0 runs" in capsys.readouterr().out


def test_records_written_before_the_new_r_p_fields_load_and_keep_their_meaning():
    from lth_audit.records import RunRecord

    old = {"schema": "lth-audit.run/1", "run_id": "a", "arch": "resnet20", "dataset": "cifar10",
           "setting": "lt-imp", "sparsity": 0.59, "lr": 0.1, "epochs": 160, "seed": 0, "top1": 90.0,
           "r_p": {"p": 0.1, "init": 0.3, "reinit": None}}
    r = RunRecord.model_validate(old).r_p
    assert (r.init, r.reinit, r.init_pretrained, r.reinit_pretrained, r.dense) == (0.3, None, None, None, None)


def test_cpu_records_are_identical_across_runs(tmp_path, write_exp):
    tops = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        exp = load_experiment(write_exp(tmp_path / sub, settings=["pretrain", "lt-omp", "rr-omp"]))
        run_experiment(exp, device="cpu", quiet=True)
        tops.append({r.run_id: (r.top1, r.best_top1, r.r_p) for r in RecordStore(exp.out_path).load()})
    assert tops[0] == tops[1]


def test_diverged_run_is_recorded_and_grid_goes_on(tmp_path, write_exp):
    exp = load_experiment(write_exp(tmp_path, lrs=[0.05, 1e9], settings=["pretrain", "lt-omp"]))
    summary = run_experiment(exp, device="cpu", quiet=True)
    recs = {r.run_id: r for r in RecordStore(exp.out_path).load()}
    assert len(recs) == 4
    assert recs["tiny/mlp-pretrain-s0-lr1e+09-seed0"].diverged
    assert not recs["tiny/mlp-pretrain-s0-lr0.05-seed0"].diverged
    assert len(summary.diverged) >= 1
    assert all(0 <= r.top1 <= 100 for r in recs.values())


@pytest.mark.parametrize("arch,s", [("mlp", 0.59), ("mlp", 0.914), ("resnet20", 0.832), ("resnet1d", 0.59)])
def test_sdt_width_matches_within_2_percent(arch, s):
    from lth_audit.backend.models import build_model, entry
    from lth_audit.backend.pruning import prunable_names
    ds = "mnist1d" if arch != "resnet20" else "cifar10"
    m = build_model(arch, ds, device="meta")
    n_prunable = sum(dict(m.named_parameters())[n].numel() for n in prunable_names(m, entry(arch).dense))
    target = count_params(arch, ds) - round(s * n_prunable)
    w, params = search_width(arch, ds, target)
    assert w < 1 and abs(params / target - 1) < 0.02 and params == count_params(arch, ds, w)


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path, write_exp):
    path = write_exp(tmp_path, arch="resnet1d", lrs=[0.05, 0.1], seeds=[0, 1], epochs=3,
                            settings=["pretrain", "lt-imp", "lt-omp"])
    out = tmp_path / "tiny.jsonl"
    cmd = [sys.executable, "-m", "lth_audit.cli", "run", str(path), "--quiet", "--device", "cpu"]
    before = sigkill_after_first_record(cmd, out, timeout=60)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert 1 <= len(before) < 16
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after = out.read_text().splitlines()
    assert after[:len(before)] == before            # finished runs were not redone (same lines, same wall_s)
    ids = [r.run_id for r in load_records([out]).raise_on_problems()]
    assert len(ids) == len(set(ids)) == 16          # 4 pretrain + 2 IMP rounds x 4 + 4 lt-omp
    assert f"trained {16 - len(before)} runs" in done.stdout
