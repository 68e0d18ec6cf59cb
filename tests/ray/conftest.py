"""A real local Ray instance (2 CPUs, no dashboard) shared by the module's tests, and tiny experiments."""

import os
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def mnist1d_cache(tmp_path_factory):
    """One MNIST-1D cache, set in the environment before Ray starts so that its workers inherit it."""
    old = os.environ.get("LTH_AUDIT_CACHE")
    os.environ["LTH_AUDIT_CACHE"] = str(tmp_path_factory.mktemp("lth-cache"))
    from lth_audit.backend.data import load_mnist1d
    load_mnist1d()  # generate it once here, not in two workers at once
    yield
    if old is None:
        os.environ.pop("LTH_AUDIT_CACHE", None)
    else:
        os.environ["LTH_AUDIT_CACHE"] = old


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
