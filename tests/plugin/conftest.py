"""The plugin tests run pytest inside pytest (pytester); this keeps those inner runs comparable."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_rewrite_warning_in_inner_runs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-in-pytest artefact: the inner session finds lth_audit already imported by the outer one and
    may warn that it cannot assert-rewrite it (seen on fresh clones). That warning would add a
    `warnings` count to every outcome these tests compare, so the inner runs ignore it."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS when set up: set ours after
        monkeypatch.setenv("PYTEST_ADDOPTS", "-W ignore::pytest.PytestAssertRewriteWarning")
