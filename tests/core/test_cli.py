"""`lth-audit audit` and `lth-audit validate`: tables, JSON, exit codes, every problem listed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lth_audit.cli import main

CASES = Path(__file__).parent.parent / "data" / "conformance"


def _case(tmp_path: Path, name: str) -> Path:
    for f in CASES.glob(f"{name}*"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / f"{name}.lth.yaml"


def test_audit_prints_table_writes_json_and_exits_1_on_a_failure(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["audit", str(CASES), "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "c02-secondary" in text and "⑤ fail" in text and "missing runs: rr-imp@lr=0.2" in text
    report = json.loads(out.read_text())
    assert report["schema"] == "lth-audit.report/1"
    entry = next(c for c in report["claims"] if c["id"] == "c01-jackpot")
    assert {"id", "expect", "verdict", "outcome", "witness_lr", "conditions", "missing"} <= set(entry)
    assert [c["id"] for c in entry["conditions"]] == [1, 2, 3, 4, 5]
    assert {"id", "status", "margin", "observed", "threshold", "best_lr"} <= set(entry["conditions"][1])
    assert entry["witness_lr"] == 0.02 and entry["conditions"][4]["margin"] == pytest.approx(0.4)
    # A failure within the noise says so, with the seeds per cell that would settle it (c14).
    c14 = next(c for c in report["claims"] if c["id"] == "c14-noise-no-rescue")
    three = c14["conditions"][2]
    assert (three["status"], three["within_noise"], three["seeds_needed"]) == ("fail", True, 73)
    assert c14["grades_within_noise"]["jackpot"] == "boundary" and c14["outcome"] == "failed"
    single = next(c for c in report["claims"] if c["id"] == "c11-single-seed")["conditions"][3]
    assert (single["status"], single["band"], single["noise"]) == ("boundary", None, "one run: no noise estimate")


def test_audit_exits_0_when_every_claim_passed_or_was_boundary(tmp_path):
    _case(tmp_path, "c01-jackpot")
    _case(tmp_path, "c04-boundary")
    assert main(["audit", str(tmp_path)]) == 0


def test_audit_exits_2_on_bad_input_naming_file_line_and_field(tmp_path, capsys):
    claim = _case(tmp_path, "c01-jackpot")
    claim.write_text(claim.read_text().replace("expect: jackpot", "expect: jackpott"))
    assert main(["audit", str(claim)]) == 2
    err = capsys.readouterr().err
    assert f"{claim}:10: [claims.0.expect]" in err and "'jackpot', 'secondary' or 'none'" in err


def test_audit_of_a_store_with_a_bad_line_is_an_error_not_a_smaller_audit(tmp_path, capsys):
    claim = _case(tmp_path, "c01-jackpot")
    store = tmp_path / "c01-jackpot.jsonl"
    lines = store.read_text().splitlines()
    lines[3] = lines[3].replace('"top1": 91.95', '"top1": 191.95')
    store.write_text("\n".join(lines) + "\n")
    assert main(["audit", str(claim)]) == 2
    assert f"{store}:4: [top1]" in capsys.readouterr().err


def test_threshold_override_from_the_command_line(tmp_path):
    claim = _case(tmp_path, "c04-boundary")
    assert main(["audit", str(claim), "--similar", "1.0", "--json", str(tmp_path / "r.json")]) == 0
    (entry,) = json.loads((tmp_path / "r.json").read_text())["claims"]
    assert entry["verdict"] == "jackpot"


def test_missing_thresholds_for_an_unknown_dataset_is_an_error(tmp_path, capsys):
    claim = _case(tmp_path, "c08-own-thresholds")
    claim.write_text(claim.read_text().replace('thresholds: {"similar": 1.0, "gap": 0.5, "sufficient_epochs": 160}',
                                               ""))
    assert main(["audit", str(claim)]) == 2
    err = capsys.readouterr().err
    assert "[claims.0.dataset]" in err and "'mnist1d' has no thresholds" in err


def test_no_claim_file_is_bad_input(tmp_path):
    assert main(["audit", str(tmp_path)]) == 2


def test_validate_lists_every_problem(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text('{"schema": "lth-audit.run/1"}\nnot json\n')
    (tmp_path / "c.lth.yaml").write_text("records: [a.jsonl]\nclaims:\n  - id: x\n    arch: a\n")
    assert main(["validate", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert f"{tmp_path / 'a.jsonl'}:2:" in out and "[run_id]" in out
    assert "[claims.0.dataset]" in out and "[claims.0.setting]" in out
    assert out.splitlines()[-1].endswith("problems") and "0 problems" not in out


def test_validate_passes_good_inputs(capsys):
    assert main(["validate", str(CASES)]) == 0
    out = capsys.readouterr().out
    assert "0 problems" in out
    # Claims are cross-checked against their records: each claim's missing runs are named.
    assert "claim 'c05-missing-rr' misses runs: rr-imp@lr=0.2 (≥160 epochs)" in out


def _one_claim(folder, setting: str, sparsity: float) -> None:
    """c01's records and a claim file with one claim on them (id `x`)."""
    shutil.copy(CASES / "c01-jackpot.jsonl", folder / "r.jsonl")
    (folder / "c.lth.yaml").write_text("records: [r.jsonl]\nclaims:\n  - {id: x, arch: netA, dataset: cifar10, "
                                       f"setting: {setting}, sparsity: {sparsity}, expect: jackpot}}\n")


def test_validate_names_what_the_records_have_for_a_claim_without_evidence(tmp_path, capsys):
    _one_claim(tmp_path, "lt-imp", 0.914)
    assert main(["validate", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "c.lth.yaml:3: [claims.0] claim 'x' has no evidence" in out and "nearest: 0.832" in out
    # The store is named by the claim file and walked itself: its problems are listed once.
    (tmp_path / "r.jsonl").write_text((tmp_path / "r.jsonl").read_text() + "not json\n")
    assert main(["validate", str(tmp_path)]) == 2
    assert capsys.readouterr().out.count("not valid JSON") == 1


def test_the_audit_path_does_not_import_torch():
    code = ("import sys, lth_audit.cli, lth_audit.audit, lth_audit.correlation;"
            "lth_audit.cli.main(['validate', sys.argv[1]]);"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code, str(CASES)], check=True, capture_output=True)


def test_a_rewound_ticket_under_rigorous_is_refused_with_the_profile_to_use(tmp_path, capsys):
    _one_claim(tmp_path, "wr-imp", 0.832)
    assert main(["audit", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "c.lth.yaml:3: [claims.0.setting]" in err and "profile 'rigorous' judges tickets of setting lt-imp, " \
        "lt-omp, not 'wr-imp'; a wr-imp ticket is judged under `profile: rewinding`" in err


@pytest.mark.parametrize("field,bad,where", [
    ("sparsity: 0.832", 'sparsity: "0.832"', "[claims.0.sparsity]"),
    ("records:", "thresholds: {similar: \"0.5\"}\nrecords:", "[thresholds.similar]"),
    ("records:", "thresholds: {sufficient_epochs: true}\nrecords:", "[thresholds.sufficient_epochs]"),
])
def test_claim_files_are_strict_about_numbers(tmp_path, capsys, field, bad, where):
    claim = _case(tmp_path, "c01-jackpot")
    text = claim.read_text()
    assert field in text
    claim.write_text(text.replace(field, bad, 1))
    assert main(["audit", str(claim)]) == 2
    err = capsys.readouterr().err
    assert where in err and "expected a number" in err
