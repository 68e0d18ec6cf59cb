"""Every worked case of the shared conformance suite gets the verdict and outcome SPEC requires."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lth_audit.audit import audit_file
from lth_audit.claims import find_claim_files, load_claim_file

CASES = Path(__file__).parent.parent / "data" / "conformance"
EXPECTED = json.loads((CASES / "expected.json").read_text())


@pytest.mark.parametrize("path", find_claim_files([CASES]), ids=lambda p: p.name.split(".")[0])
def test_conformance_case(path):
    (result,) = audit_file(load_claim_file(path))
    want = EXPECTED[result.id]
    assert (result.verdict, result.outcome) == (want["verdict"], want["outcome"]), want["why"]


def test_every_expected_case_is_present():
    ids = {r.id for p in find_claim_files([CASES]) for r in audit_file(load_claim_file(p))}
    assert ids == set(EXPECTED)


def test_missing_rr_names_the_runs():
    (result,) = audit_file(load_claim_file(CASES / "c05-missing-rr.lth.yaml"))
    assert result.missing == [{"setting": "rr-imp", "lr": 0.2, "epochs": 160}]
