"""The demo end to end on real MNIST-1D (tiny grid): train, write claims, audit, report; it writes only under
its work folder and reports/, never into the shipped checks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from lth_audit.cli import main
from lth_audit.demo import QUICK, DemoGrid, compare_with_shipped, run_demo
from lth_audit.records import load_records
from lth_audit.session import audit_paths

ROOT = Path(__file__).resolve().parents[2]


def _tracked_state() -> str:
    """`git status` of the shipped claim folders (empty output: as committed)."""
    return subprocess.run(["git", "status", "--porcelain", "--", "checks"], cwd=ROOT, capture_output=True,
                          text=True).stdout


@pytest.mark.slow
def test_quick_demo_trains_audits_and_its_claims_reaudit(tmp_path, capsys):
    work, reports = tmp_path / "work", tmp_path / "reports"
    shipped = tmp_path / "shipped"
    assert run_demo(QUICK, work, shipped, reports, device="cpu", quiet=True, smoke=True) == 0
    out = capsys.readouterr().out
    assert "prefers small lr" in out and str((reports / "demo.html").resolve()) in out
    assert "smoke test" in out and "It is not an audit" in out and "3 epochs" in out
    assert not shipped.exists()                      # read only, and a smoke test compares with nothing

    records = load_records(work.glob("*.jsonl")).raise_on_problems()
    settings = {r.setting.value for r in records}
    assert settings == {"pretrain", "lt-imp", "rr-imp", "lt-omp", "rr-omp", "sdt"}
    # Per (lr, seed): pretrain, IMP rounds 1-4 (s = 0.2 ... 0.59), rr-imp, lt-omp, rr-omp, sdt.
    assert len(records) == len(QUICK.lrs) * len(QUICK.seeds) * 9
    assert all(r.dataset == "mnist1d" and 5.0 < r.top1 <= 100.0 for r in records)

    claims = yaml.safe_load((work / f"{QUICK.name}.lth.yaml").read_text())
    assert claims["records"] == [f"{QUICK.name}.jsonl"]   # beside the run's own records
    run = audit_paths([str(work)])
    results, problems = run.results, run.problems
    assert not problems and len(results) == len(claims["claims"]) == 2
    assert all(r.outcome in ("passed", "boundary") for r in results)
    report = json.loads((reports / "demo.json").read_text())
    assert [c["verdict"] for c in report["claims"]] == [r.verdict for r in results]
    html = (reports / "demo.html").read_text()
    assert "<svg" in html and "mnist1d-quick-lt-imp-s0.59" in html

    # A second run resumes: nothing is trained again, the claims come out the same; checks/ is untouched.
    before, tracked = (work / f"{QUICK.name}.lth.yaml").read_text(), _tracked_state()
    assert main(["demo", "--quick", "--quiet", "--device", "cpu", "--work", str(work),
                 "--reports", str(reports)]) == 0
    assert "trained 0 networks" in capsys.readouterr().out
    assert (work / f"{QUICK.name}.lth.yaml").read_text() == before
    assert _tracked_state() == tracked


def test_the_comparison_with_the_shipped_copy_says_what_differs(tmp_path):
    grid = DemoGrid()
    shipped = ROOT / "checks" / "demo"
    records = load_records([shipped / f"{grid.name}.jsonl"]).raise_on_problems()
    stated = yaml.safe_load((shipped / f"{grid.name}.lth.yaml").read_text())["claims"]
    found = {(c["setting"], c["sparsity"]): c["expect"] for c in stated}
    verdicts = {k: v for k, v in found.items()}
    same = compare_with_shipped(grid, records, verdicts, shipped, tmp_path / "x.lth.yaml")
    assert "identical records" in same and f"the same {len(found)} verdicts" in same
    key = sorted(found)[0]
    flipped = {**verdicts, key: "none" if found[key] != "none" else "secondary"}
    other = compare_with_shipped(grid, records[1:], flipped, shipped, tmp_path / "x.lth.yaml")
    assert f"the records differ (1 of {len(records)} runs not the same)" in other
    assert f"1 of {len(found)} verdicts differ" in other
    assert f"{key[0]} s={key[1]:g}: shipped expects {found[key]}, this run found {flipped[key]}" in other
    assert "nothing in" in other and "was changed" in other
    extra = compare_with_shipped(grid, records, {**verdicts, ("lt-imp", 0.5): "none"}, shipped, tmp_path / "x")
    assert "lt-imp s=0.5: the shipped copy has no claim on it, this run found none" in extra
    assert "no shipped copy" in compare_with_shipped(grid, records, verdicts, tmp_path / "none", tmp_path / "x")


def test_demo_workers_on_cuda_is_refused_but_another_value_error_stays_a_bug(monkeypatch, capsys):
    from lth_audit.backend.workers import WorkersOnCuda

    def refuse(*args, **kwargs):
        raise WorkersOnCuda("--workers 2 on CUDA: one process drives a device")

    monkeypatch.setattr("lth_audit.demo.run_demo", refuse)
    assert main(["demo", "--workers", "2"]) == 2
    assert "--workers 2 on CUDA" in capsys.readouterr().err

    def bug(*args, **kwargs):
        raise ValueError("a bug inside the demo")

    monkeypatch.setattr("lth_audit.demo.run_demo", bug)
    assert main(["demo"]) == 3                                 # not reported as the user's input
    assert "internal error" in capsys.readouterr().err
