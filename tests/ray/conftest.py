"""A real local Ray instance (2 CPUs, no dashboard) shared by the module's tests, and tiny experiments."""

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def mnist1d_cache(mnist1d):
    """MNIST-1D generated once, before Ray starts: its workers inherit the test run's cache (tests/conftest.py)."""
    return mnist1d


@pytest.fixture(scope="module")
def ray_cluster(mnist1d_cache):
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def write_experiment(folder: Path, name: str = "tiny", **over) -> Path:
    body = {"name": name, "arch": "mlp", "dataset": "mnist1d", "recipe": "mnist1d", "epochs": 2,
            "rewind_epoch": 1, "lrs": [0.02, 0.1], "seeds": [0],
            "settings": ["pretrain", "lt-imp", "rr-imp", "lt-omp", "rr-omp", "sdt", "wr-imp", "wr-omp"],
            "sparsities": [0.36], "out": f"{name}.jsonl"}
    body.update(over)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def write_exp():
    return write_experiment
