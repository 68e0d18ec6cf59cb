"""examples/own-code end to end: a plain PyTorch script logs through the API, the claim file audits it."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml

from lth_audit.records import load_records
from lth_audit.session import audit_paths

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own-code"


def _example():
    spec = importlib.util.spec_from_file_location("own_code_train", EXAMPLE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_example_trains_logs_and_audits(tmp_path, tmp_path_factory):
    data = tmp_path_factory.getbasetemp() / "mnist1d-own.npz"   # generated once a session
    store = tmp_path / "results" / "mnist1d-own.jsonl"
    args = ["--lrs", "0.05", "0.2", "--seeds", "0", "--epochs", "2", "--out", str(store), "--data", str(data)]
    _example().main(args)
    loaded = load_records([store])
    assert not loaded.problems
    runs = {r.run_id: r for r in loaded.records}
    assert len(runs) == 2 * (1 + 4 + 1 + 1)  # per lr: pretrain, IMP rounds 1-4, rr-imp, sdt
    ticket = runs["lt-imp-r4-lr0.2-seed0"]
    assert ticket.sparsity == pytest.approx(1 - 0.8**4, abs=1e-3) and ticket.r_p is not None
    assert runs["rr-imp-lr0.2-seed0"].sparsity == ticket.sparsity
    assert runs["rr-imp-lr0.2-seed0"].params == ticket.params
    assert abs(runs["sdt-lr0.2-seed0"].params - ticket.params) / ticket.params < 0.02
    assert all(r.top1 > 1.0 for r in runs.values())
    # a second call resumes: every run is recorded already, nothing is written twice
    _example().main(args)
    assert len(load_records([store]).records) == len(runs)

    checks = tmp_path / "checks"
    checks.mkdir()
    shutil.copy(EXAMPLE / "checks" / "mnist1d-own.lth.yaml", checks)
    run = audit_paths([str(checks)])
    assert not run.problems and [r.id for r in run.results] == ["mlp-own-mnist1d-lt-imp-s0.59"]
    assert run.results[0].verdict in ("jackpot", "jackpot-boundary", "secondary", "secondary-boundary", "none")


def test_shipped_records_support_the_shipped_claims():
    run = audit_paths([str(EXAMPLE / "checks")])
    assert not run.problems and run.results
    assert all(r.outcome in ("passed", "boundary") for r in run.results)


def test_ci_workflow_installs_the_light_package_and_keeps_the_report():
    flow = yaml.safe_load((EXAMPLE / ".github" / "workflows" / "lth-audit.yml").read_text())
    steps = flow["jobs"]["audit"]["steps"]
    commands = " ".join(s.get("run", "") for s in steps)
    assert flow["env"]["LTH_AUDIT"] == "lth-audit"   # no [train] extra: no torch in this job
    assert "pip install \"$LTH_AUDIT\"" in commands and "pytest checks/ --lth-html reports/audit.html" in commands
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/"
