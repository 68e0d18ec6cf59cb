"""Fixtures shared by the test folders: a private MNIST-1D cache, the SPEC conformance cases for pytester."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# In-process pytester runs restore sys.modules afterwards; numpy (under matplotlib) cannot be loaded
# twice in one process, so everything the report needs is imported here, outside those runs.
import lth_audit.cli  # noqa: F401
import lth_audit.report.html  # noqa: F401
import lth_audit.report.plots  # noqa: F401
from .conformance_cases import CONFORMANCE, EXPECTED


@pytest.fixture
def cases(pytester: pytest.Pytester):
    """`cases("c04-boundary", ...)` copies those claim files and their stores into the pytester folder."""

    def copy(*names: str) -> Path:
        for name in names or tuple(EXPECTED):
            for suffix in (".lth.yaml", ".jsonl"):
                shutil.copy(CONFORMANCE / f"{name}{suffix}", pytester.path / f"{name}{suffix}")
        return pytester.path

    return copy


@pytest.fixture(scope="session", autouse=True)
def _mnist1d_cache(tmp_path_factory: pytest.TempPathFactory):
    """One MNIST-1D cache per test session, never the user's; subprocesses inherit it via the environment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTH_AUDIT_CACHE", str(tmp_path_factory.mktemp("lth-cache")))
        yield
