"""Guideline entries of a claim file are items too: passed / failed / boundary like claims."""

from __future__ import annotations

import json

import pytest

from lth_audit.cli import main

RECORDS = [("lt-imp", 0.1, 91.0), ("lt-omp", 0.1, 90.0), ("pretrain", 0.1, 92.0)]


def _write(path):
    lines = [json.dumps({"schema": "lth-audit.run/1", "run_id": f"{s}-{lr}-{seed}", "arch": "rn", "dataset": "cifar10",
                         "setting": s, "sparsity": 0.0 if s == "pretrain" else 0.832, "lr": lr, "epochs": 160,
                         "seed": seed, "top1": top1}) for s, lr, top1 in RECORDS for seed in (0, 1)]
    (path / "runs.jsonl").write_text("\n".join(lines) + "\n")
    (path / "rules.lth.yaml").write_text(
        "records: [runs.jsonl]\nguideline:\n"
        "  - {id: with-skips, rule: imp-over-omp, arch: rn, dataset: cifar10, sparsity: 0.832, residual: true}\n"
        "  - {id: without-skips, rule: imp-over-omp, arch: rn, dataset: cifar10, sparsity: 0.832, residual: false}\n")


def test_guideline_items_pass_and_fail_with_an_explanation(pytester):
    _write(pytester.path)
    result = pytester.runpytest("-p", "no:cacheprovider", "--lth-json", "out.json", "--lth-html", "out.html")
    assert result.parseoutcomes() == {"passed": 1, "failed": 1}
    result.stdout.fnmatch_lines(["*without-skips (rn/cifar10): rule 1 ?imp-over-omp? -> failed*",
                                 "*observed: best lt-imp 91.00, best lt-omp 90.00*"])
    assert "Traceback" not in result.stdout.str()
    doc = json.loads((pytester.path / "out.json").read_text())
    assert [(g["id"], g["outcome"]) for g in doc["guideline"]] == [("with-skips", "passed"),
                                                                  ("without-skips", "failed")]
    html = (pytester.path / "out.html").read_text()
    assert "Guideline (paper Section 3.2)" in html and "1. imp-over-omp" in html


def test_cli_prints_guideline_results_and_fails_on_a_broken_rule(tmp_path, capsys):
    _write(tmp_path)
    assert main(["audit", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "guideline (paper Section 3.2):" in out and "with-skips (rn/cifar10): rule 1" in out
    assert "2 claims: 1 passed, 0 boundary, 1 failed" in out


@pytest.mark.parametrize("bad,field", [("rule: imp-over-omp, arch: rn, dataset: cifar10, sparsity: 0.832",
                                        "needs `residual`"),
                                       ("rule: fastest-lr, arch: rn, dataset: cifar10", "guideline.0.rule")])
def test_a_malformed_guideline_entry_is_a_collection_error(pytester, bad, field):
    _write(pytester.path)
    (pytester.path / "rules.lth.yaml").write_text(f"records: [runs.jsonl]\nguideline:\n  - {{id: x, {bad}}}\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*{field}*"])


def test_a_rule_whose_premise_does_not_hold_is_skipped_with_the_reason(pytester):
    _write(pytester.path)
    (pytester.path / "rules.lth.yaml").write_text(
        "records: [runs.jsonl]\nguideline:\n"
        "  - {id: premise, rule: large-lr-init, arch: rn, dataset: cifar10, sparsity: 0.832}\n")
    # lt-imp's best lr (0.1) is not below pretraining's (0.1): the premise holds, but rr-imp is missing.
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    assert result.parseoutcomes() == {"failed": 1}
    lines = [json.dumps({"schema": "lth-audit.run/1", "run_id": f"{s}-{lr}-{seed}", "arch": "rn",
                         "dataset": "cifar10", "setting": s, "sparsity": 0.0 if s == "pretrain" else 0.832,
                         "lr": lr, "epochs": 160, "seed": seed, "top1": top1})
             for s, lr, top1 in [("lt-imp", 0.01, 91.0), ("lt-imp", 0.1, 89.0), ("pretrain", 0.1, 92.0)]
             for seed in (0, 1)]
    (pytester.path / "runs.jsonl").write_text("\n".join(lines) + "\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "--lth-json", "out.json")
    assert result.parseoutcomes() == {"skipped": 1}
    result.stdout.fnmatch_lines(["*rule 4 not applicable: premise not met*"])
    (entry,) = json.loads((pytester.path / "out.json").read_text())["guideline"]
    assert (entry["outcome"], entry["status"]) == ("not-applicable", None)
