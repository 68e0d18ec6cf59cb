"""Fixtures for the plugin tests (pytester is enabled in the root conftest): the SPEC conformance cases copied into its folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

# In-process pytester runs restore sys.modules afterwards; numpy (under matplotlib) cannot be loaded
# twice in one process, so everything the report needs is imported here, outside those runs.
import lth_audit.cli  # noqa: E402,F401
import lth_audit.report.html  # noqa: E402,F401
import lth_audit.report.plots  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = next(p for p in (ROOT / "tests" / "data" / "conformance", ROOT.parent / "shared" / "conformance")
                   if (p / "expected.json").exists())
EXPECTED = json.loads((CONFORMANCE / "expected.json").read_text())


@pytest.fixture
def cases(pytester: pytest.Pytester):
    """`cases("c04-boundary", ...)` copies those claim files and their stores into the pytester folder."""

    def copy(*names: str) -> Path:
        for name in names or tuple(EXPECTED):
            for suffix in (".lth.yaml", ".jsonl"):
                shutil.copy(CONFORMANCE / f"{name}{suffix}", pytester.path / f"{name}{suffix}")
        return pytester.path

    return copy


@pytest.fixture(autouse=True)
def _no_rewrite_warning_in_inner_runs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-in-pytest artefact: the inner session finds lth_audit already imported by the outer one and
    may warn that it cannot assert-rewrite it (seen on fresh clones). That warning would add a
    `warnings` count to every outcome these tests compare, so the inner runs ignore it."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS when set up: set ours after
        monkeypatch.setenv("PYTEST_ADDOPTS", "-W ignore::pytest.PytestAssertRewriteWarning")
