"""The demo end to end on real MNIST-1D (tiny grid): train, write claims, audit, report."""

from __future__ import annotations

import json

import pytest
import yaml

from lth_audit.cli import main
from lth_audit.session import audit_paths
from lth_audit.demo import QUICK, run_demo
from lth_audit.records import load_records


@pytest.mark.slow
def test_quick_demo_trains_audits_and_its_claims_reaudit(tmp_path, capsys):
    work, checks, reports = tmp_path / "work", tmp_path / "checks", tmp_path / "reports"
    assert run_demo(QUICK, work, checks, reports, device="cpu", quiet=True) == 0
    out = capsys.readouterr().out
    assert "prefers small lr" in out and str((reports / "demo.html").resolve()) in out

    records = load_records(checks.glob("*.jsonl")).raise_on_problems()
    settings = {r.setting.value for r in records}
    assert settings == {"pretrain", "lt-imp", "rr-imp", "lt-omp", "rr-omp", "sdt"}
    # Per (lr, seed): pretrain, IMP rounds 1-4 (s = 0.2 ... 0.59), rr-imp, lt-omp, rr-omp, sdt.
    assert len(records) == len(QUICK.lrs) * len(QUICK.seeds) * 9
    assert all(r.dataset == "mnist1d" and 5.0 < r.top1 <= 100.0 for r in records)

    claims = yaml.safe_load((checks / f"{QUICK.name}.lth.yaml").read_text())
    run = audit_paths([str(checks)])
    results, problems = run.results, run.problems
    assert not problems and len(results) == len(claims["claims"]) == 2
    assert all(r.outcome in ("passed", "boundary") for r in results)
    report = json.loads((reports / "demo.json").read_text())
    assert [c["verdict"] for c in report["claims"]] == [r.verdict for r in results]
    html = (reports / "demo.html").read_text()
    assert "<svg" in html and "mnist1d-quick-lt-imp-s0.59" in html

    # A second run resumes: nothing is trained again, the claims come out the same.
    before = (checks / f"{QUICK.name}.lth.yaml").read_text()
    assert main(["demo", "--quick", "--quiet", "--device", "cpu", "--work", str(work), "--checks", str(checks),
                 "--reports", str(reports)]) == 0
    assert "trained 0 networks" in capsys.readouterr().out
    assert (checks / f"{QUICK.name}.lth.yaml").read_text() == before
