"""The pytest plugin end to end, through pytester (SPEC §4)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ..conformance_cases import EXPECTED, ROOT

NO_CACHE = ("-p", "no:cacheprovider")
COUNTS = dict(Counter(e["outcome"] for e in EXPECTED.values()))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*NO_CACHE, *args)


def test_each_claim_is_one_item(pytester, cases):
    cases("c01-jackpot")
    (pytester.path / "two.lth.yml").write_text(
        "records: [c01-jackpot.jsonl]\nclaims:\n"
        "  - {id: a, arch: netA, dataset: cifar10, setting: lt-imp, sparsity: 0.832, expect: jackpot}\n"
        "  - {id: b, arch: netA, dataset: cifar10, setting: lt-imp, sparsity: 0.832, expect: secondary}\n")
    result = run(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["c01-jackpot.lth.yaml::c01-jackpot", "two.lth.yml::a", "two.lth.yml::b",
                                 "3 tests collected*"])


def test_conformance_outcomes_and_json(pytester, cases):
    cases()
    result = run(pytester, "--lth-json", "out/audit.json", "-v")
    assert result.parseoutcomes() == COUNTS
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for cid, exp in EXPECTED.items():
        word = {"passed": "PASSED", "failed": "FAILED", "boundary": "BOUNDARY"}[exp["outcome"]]
        result.stdout.fnmatch_lines([f"{cid}.lth.yaml::{cid} {word}*"])
    doc = json.loads((pytester.path / "out" / "audit.json").read_text())
    assert doc["schema"] == "lth-audit.report/1" and doc["errors"] == []
    got = {c["id"]: (c["verdict"], c["outcome"]) for c in doc["claims"]}
    assert got == {cid: (e["verdict"], e["outcome"]) for cid, e in EXPECTED.items()}
    c02 = next(c for c in doc["claims"] if c["id"] == "c02-secondary")
    assert c02["witness_lr"] == 0.02 and {"id", "status", "margin", "observed", "threshold", "best_lr"} <= set(
        c02["conditions"][4])
    assert c02["conditions"][4]["status"] == "fail"


def test_boundary_passes_with_its_own_letter_and_count(pytester, cases):
    cases("c01-jackpot", "c04-boundary")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*.lth.yaml B*", "*1 passed, 1 boundary*"])
    strict = run(pytester, "--lth-strict")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    assert strict.parseoutcomes() == {"passed": 1, "failed": 1}
    strict.stdout.fnmatch_lines(["*boundary claim failed under --lth-strict*",
                                 "*verdict jackpot-boundary -> boundary*"])


def test_strict_from_ini(pytester, cases):
    cases("c04-boundary")
    pytester.makeini("[pytest]\nlth_strict = true\n")
    assert run(pytester).ret == pytest.ExitCode.TESTS_FAILED


def test_failure_message_is_actionable_without_traceback(pytester, cases):
    cases("c02-secondary", "c05-missing-rr")
    result = run(pytester)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*c02-secondary*expected jackpot, verdict secondary -> failed*",
        "*witness lr 0.02*",
        "*⑤ fail*ticket 89.90, reference 92.00*similar 0.50; margin -1.60*",
        "*missing runs: rr-imp@lr=*",
    ])
    assert "Traceback" not in out and "def runtest" not in out and "ClaimFailed" not in out.split("short test")[0]


def test_threshold_override_option(pytester, cases):
    cases("c02-secondary")
    assert run(pytester).ret == pytest.ExitCode.TESTS_FAILED
    loose = run(pytester, "--lth-similar", "2.5", "--lth-json", "o.json")
    assert loose.ret == pytest.ExitCode.OK
    claim = json.loads((pytester.path / "o.json").read_text())["claims"][0]
    assert claim["verdict"] == "jackpot"


def test_junit_properties(pytester, cases):
    cases("c04-boundary", "c06-short-training")
    run(pytester, "--junitxml", "junit.xml")
    root = ET.parse(pytester.path / "junit.xml").getroot()
    cases_ = {tc.get("name"): tc for tc in root.iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases_["c04-boundary"].iter("property")}
    assert props["lth_outcome"] == "boundary" and props["lth_verdict"] == "jackpot-boundary"
    assert props["lth_witness_lr"] == "0.2" and float(props["lth_margin_4"]) == pytest.approx(0.05)
    short = {p.get("name"): p.get("value") for p in cases_["c06-short-training"].iter("property")}
    assert short["lth_outcome"] == "failed" and short["lth_failing"] == "1"
    assert cases_["c06-short-training"].find("failure") is not None


def test_xdist_results_reach_the_controller(pytester, cases):
    pytest.importorskip("xdist")
    cases()
    result = pytester.runpytest_subprocess(*NO_CACHE, "-n", "2", "--lth-json", "x.json", "--lth-html", "x.html")
    result.stdout.fnmatch_lines([f"*{COUNTS['failed']} failed, {COUNTS['passed']} passed, {COUNTS['boundary']} boundary*"])
    doc = json.loads((pytester.path / "x.json").read_text())
    got = {c["id"]: (c["verdict"], c["outcome"]) for c in doc["claims"]}
    assert got == {cid: (e["verdict"], e["outcome"]) for cid, e in EXPECTED.items()}
    assert [c["id"] for c in doc["claims"]] == sorted(EXPECTED)  # collection order, not arrival order
    assert "c07-seed-spread" in (pytester.path / "x.html").read_text()


def test_no_claim_audited_exits_non_zero(pytester):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    plain = run(pytester)
    assert plain.ret == pytest.ExitCode.OK  # a normal session is left alone
    asked = run(pytester, "--lth-json", "a.json")
    assert asked.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    asked.stdout.fnmatch_lines(["*lth-audit: no claim was audited*"])
    assert json.loads((pytester.path / "a.json").read_text())["claims"] == []
    empty = pytester.mkdir("empty")
    assert run(pytester, str(empty)).ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_all_claims_deselected_exits_non_zero(pytester, cases):
    cases("c01-jackpot")
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = run(pytester, "-k", "test_ok")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_malformed_claim_file_is_a_collection_error(pytester, cases):
    cases("c01-jackpot")
    (pytester.path / "bad.lth.yaml").write_text(
        "records: [c01-jackpot.jsonl]\nclaims:\n"
        "  - id: x\n    arch: netA\n    dataset: cifar10\n    setting: lt-imp\n    sparsity: 1.5\n"
        "    expect: jackpot\n")
    result = run(pytester, "--lth-json", "o.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting bad.lth.yaml*", "*bad.lth.yaml:7: [[]claims.0.sparsity[]]*"])
    assert "Traceback" not in result.stdout.str()
    doc = json.loads((pytester.path / "o.json").read_text())
    assert any("claims.0.sparsity" in e for e in doc["errors"])


def test_store_with_a_bad_line_is_a_collection_error(pytester, cases):
    cases("c01-jackpot")
    store = pytester.path / "c01-jackpot.jsonl"
    lines = store.read_text().splitlines()
    lines[2] = lines[2].replace('"top1": ', '"top1": 1') .replace('"lr": 0.02', '"lr": -1')
    store.write_text("\n".join(lines) + "\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*c01-jackpot.jsonl:3: [[]lr[]]*greater than 0*"])
    assert "passed" not in result.stdout.lines[-1]


def test_ini_output_paths(pytester, cases):
    cases("c01-jackpot")
    pytester.makeini("[pytest]\nlth_json = reports/a.json\nlth_html = reports/a.html\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / "reports" / "a.json").exists() and (pytester.path / "reports" / "a.html").exists()
    result.stdout.fnmatch_lines(["lth-audit JSON report: *a.json", "lth-audit HTML report: *a.html"])


def test_pytest_html_gets_our_evidence(pytester, cases):
    pytest.importorskip("pytest_html")
    cases("c02-secondary", "c04-boundary")
    run(pytester, "--html", "ph.html", "--self-contained-html")
    page = (pytester.path / "ph.html").read_text()
    assert "lth outcome" in page and "jackpot-boundary" in page and "witness lr 0.02" in page


def test_plugin_import_is_cheap():
    code = ("import sys, lth_audit.plugin; bad = [m for m in ('torch', 'matplotlib', 'jinja2', 'pydantic') "
            "if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_shipped_checks_rule_on_the_paper_figure1():
    from lth_audit.session import audit_paths

    run = audit_paths([str(ROOT / "checks")])
    results, problems = run.results, run.problems
    assert problems == []
    by_id = {r.id: r for r in results}
    r160 = by_id["paper-fig1-rn20-c10-imp-160ep"]
    assert (r160.verdict, r160.outcome) == ("none", "passed")
    assert {4, 5} <= set(r160.failing) and 1 not in r160.failing
    r78 = by_id["paper-fig1-rn20-c10-imp-78ep"]
    assert (r78.verdict, r78.outcome) == ("none", "passed")
    one = r78.conditions[0]
    assert one.id == 1 and one.status.value == "fail" and one.observed["epochs"] == 78
    assert all(r.outcome == "passed" for r in results if r.id.startswith("paper-"))
    assert all(r.outcome != "failed" for r in results)  # the demo's claims (checks/demo) may be boundary


def test_cli_html(tmp_path):
    from lth_audit.cli import main

    from ..conformance_cases import CONFORMANCE

    assert main(["audit", str(CONFORMANCE), "--html", str(tmp_path / "x.html")]) == 1
    assert Path(tmp_path / "x.html").read_text().count('class="claim"') == len(EXPECTED)


def test_boundary_items_say_why_in_the_terminal(pytester, cases):
    cases("c04-boundary", "c11-single-seed")
    result = run(pytester)
    result.stdout.fnmatch_lines([
        "*lth-audit: boundary (supported, but not beyond the noise)*",
        "BOUNDARY c04-boundary: expected jackpot, verdict jackpot-boundary -> boundary (witness lr 0.2)",
        "*④ boundary*margin +0.05 (band ±0.10)*inside the band floor*",
        "BOUNDARY c11-single-seed*",
        "*② boundary*(no band: one run: no noise estimate)*at least 2 seeds per cell*",
    ])
