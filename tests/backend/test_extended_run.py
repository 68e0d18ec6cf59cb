"""SPEC §6 end to end on MNIST-1D: rp-imp runs and ticket twins are planned, trained (batched and one at a
time alike), resumed after SIGKILL, and a claim under `profile: extended` reports ⑥ and ⑦."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lth_audit.backend.experiment import load_experiment
from lth_audit.backend.plan import make_plan
from lth_audit.backend.scheduler import run_experiment
from lth_audit.cli import main
from lth_audit.records import Setting, load_records

from ..processes import ROOT, sigkill_after_first_record

SETTINGS = ["pretrain", "lt-imp", "rr-imp", "rp-imp", "sdt"]


def _exp(write_exp, folder, **over):
    return write_exp(folder, epochs=2, lrs=[0.05, 0.2], seeds=[0, 1], settings=SETTINGS, sparsities=[0.36],
                     instability=True, **over)


def test_the_plan_has_random_pruning_and_twins_of_ticket_runs_only(tmp_path, write_exp):
    plan = make_plan(load_experiment(_exp(write_exp, tmp_path)))
    by_setting = {}
    for r in plan.runs:
        by_setting.setdefault(r.setting, []).append(r)
    assert all(r.twin for r in by_setting[Setting.LT_IMP])
    assert not any(r.twin for s in (Setting.PRETRAIN, Setting.RR_IMP, Setting.RP_IMP, Setting.SDT)
                   for r in by_setting[s])
    rp = by_setting[Setting.RP_IMP][0]
    lt = next(r for r in by_setting[Setting.LT_IMP] if (r.sparsity, r.lr, r.seed) == (rp.sparsity, rp.lr, rp.seed))
    assert rp.source_mask_key == lt.mask_key and rp.mask_key == "rp-" + lt.mask_key and rp.deps == tuple(
        d for d in lt.deps)


def test_instability_without_a_ticket_setting_is_refused(tmp_path, write_exp):
    path = write_exp(tmp_path, settings=["pretrain", "sdt"], instability=True)
    assert main(["plan", str(path)]) == 2


@pytest.mark.slow
def test_rp_imp_and_instability_are_trained_recorded_and_audited(tmp_path, write_exp):
    path = _exp(write_exp, tmp_path)
    summary = run_experiment(load_experiment(path), device="cpu", quiet=True, batched=True)
    assert len(summary.trained) == 4 * (1 + 2 + 1 + 1 + 1)    # per (lr, seed): pretrain, 2 IMP rounds, rr, rp, sdt
    records = load_records([tmp_path / "tiny.jsonl"]).raise_on_problems()
    tickets = [r for r in records if r.setting is Setting.LT_IMP]
    assert all(r.instability is not None and r.instability >= 0 for r in tickets)
    for r in tickets:
        path_ = r.meta["interpolation"]
        assert len(path_["alpha"]) == len(path_["error"]) == 11 and path_["alpha"][5] == 0.5
        assert r.instability == pytest.approx(max(path_["error"]) - (path_["error"][0] + path_["error"][-1]) / 2,
                                              abs=1e-6) or r.instability == 0.0
        assert path_["error"][0] == pytest.approx(100 - r.top1, abs=1e-6)   # no BatchNorm: the run itself
    rp = [r for r in records if r.setting is Setting.RP_IMP]
    assert len(rp) == 4 and all(r.instability is None for r in rp)
    lt_sparsity = {(r.lr, r.seed): r.sparsity for r in tickets if r.sparsity > 0.3}
    assert all(r.sparsity == lt_sparsity[(r.lr, r.seed)] for r in rp)       # the same layerwise counts

    # One at a time gives the same records as batched (the twin is one more row, not another code path).
    single = tmp_path / "single"
    single.mkdir()
    run_experiment(load_experiment(_exp(write_exp, single)), device="cpu", quiet=True, batched=False)
    one = {r.run_id: r for r in load_records([single / "tiny.jsonl"]).raise_on_problems()}
    for r in records:
        assert one[r.run_id].top1 == pytest.approx(r.top1, abs=0.2) and (
            one[r.run_id].instability is None) == (r.instability is None)

    # The claim under `extended`: conditions 6 and 7 in the JSON report and the HTML.
    (tmp_path / "c.lth.yaml").write_text(
        "records: [tiny.jsonl]\nprofile: extended\n"
        "thresholds: {similar: 1.0, gap: 0.5, sufficient_epochs: 2}\n"
        "claims:\n  - {id: ext, arch: mlp, dataset: mnist1d, setting: lt-imp, sparsity: 0.36, expect: none}\n")
    main(["audit", str(tmp_path / "c.lth.yaml"), "--json", str(tmp_path / "r.json"),
          "--html", str(tmp_path / "r.html")])
    (entry,) = json.loads((tmp_path / "r.json").read_text())["claims"]
    conds = {c["id"]: c for c in entry["conditions"]}
    assert set(conds) == {1, 2, 3, 4, 5, 6, 7}
    assert conds[6]["status"] != "missing" and conds[6]["threshold"] == {"gap": 0.5}
    assert conds[7]["status"] != "missing" and conds[7]["threshold"] == {"stable": 2.0}
    html = (tmp_path / "r.html").read_text()
    assert "⑥" in html and "⑦" in html and "<polyline" in html and "mask beats random" in html


@pytest.mark.slow
def test_a_run_with_twins_resumes_after_sigkill(tmp_path, write_exp):
    path = write_exp(tmp_path, epochs=2, lrs=[0.05, 0.2], seeds=[0, 1], settings=["pretrain", "lt-omp", "rp-omp"],
                     sparsities=[0.36], instability=True)
    out = tmp_path / "tiny.jsonl"
    cmd = [sys.executable, "-m", "lth_audit.cli", "run", str(path), "--quiet", "--device", "cpu"]
    before = sigkill_after_first_record(cmd, out, timeout=120)
    assert 1 <= len(before) < 12
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines()[:len(before)] == before
    records = load_records([out]).raise_on_problems()
    assert len({r.run_id for r in records}) == len(records) == 12
    assert all(r.instability is not None for r in records if r.setting is Setting.LT_OMP)


@pytest.mark.slow
def test_turning_instability_on_later_changes_only_the_ticket_runs(tmp_path, write_exp):
    path = write_exp(tmp_path, epochs=1, lrs=[0.05], seeds=[0], settings=["pretrain", "lt-omp", "rp-omp"],
                     sparsities=[0.36])
    run_experiment(load_experiment(path), device="cpu", quiet=True)
    path = write_exp(tmp_path, epochs=1, lrs=[0.05], seeds=[0], settings=["pretrain", "lt-omp", "rp-omp"],
                     sparsities=[0.36], instability=True)
    assert main(["run", str(path), "--quiet", "--device", "cpu"]) == 2
    summary = run_experiment(load_experiment(path), device="cpu", quiet=True, rerun_changed=True)
    assert summary.moved == 1 and [r.split("/")[1].split("-s")[0] for r in summary.trained] == ["mlp-lt-omp"]
    (lt,) = [r for r in load_records([tmp_path / "tiny.jsonl"]).raise_on_problems() if r.setting is Setting.LT_OMP]
    assert lt.instability is not None
