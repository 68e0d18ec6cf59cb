"""Fixtures shared by the test folders: a private MNIST-1D cache made once, one CPU thread for training, the
SPEC conformance cases for pytester."""

from __future__ import annotations

import os
import shutil
import sys
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


TEST_THREADS = int(os.environ.get("LTH_TEST_THREADS", "1"))
"""CPU threads for everything the tests train: torch's default (every core) made one test 16x slower on a busy
2-core machine. Subprocesses get it through OMP_NUM_THREADS."""


@pytest.fixture(scope="session", autouse=True)
def _session_environment(tmp_path_factory: pytest.TempPathFactory):
    """One MNIST-1D cache per test run, never the user's (shared by pytest-xdist workers), and one CPU thread;
    subprocesses inherit both through the environment."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    cache = tmp_path_factory.getbasetemp().parent / "lth-cache" if worker else tmp_path_factory.mktemp("lth-cache")
    cache.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTH_AUDIT_CACHE", str(cache))
        mp.setenv("OMP_NUM_THREADS", str(TEST_THREADS))
        yield


@pytest.fixture(autouse=True)
def _pinned_threads():
    """Trainers called in this process run on TEST_THREADS threads (when torch is in use at all: the audit
    side's tests never import it)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(TEST_THREADS)
    yield


@pytest.fixture(scope="session")
def mnist1d() -> Path:
    """The test run's MNIST-1D cache file, generated once (under a lock: xdist workers and the subprocesses
    of concurrent tests then all read it instead of generating it again)."""
    import fcntl

    from lth_audit.backend.data import cache_dir, load_mnist1d

    folder = cache_dir()
    with open(folder / "mnist1d.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        load_mnist1d()
    return folder / "mnist1d.pt"
