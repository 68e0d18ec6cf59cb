import os
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session", autouse=True)
def _mnist1d_cache(tmp_path_factory):
    """One MNIST-1D cache per test session, inherited by subprocesses through the environment."""
    old = os.environ.get("LTH_AUDIT_CACHE")
    os.environ["LTH_AUDIT_CACHE"] = str(tmp_path_factory.mktemp("lth-cache"))
    yield
    if old is None:
        os.environ.pop("LTH_AUDIT_CACHE", None)
    else:
        os.environ["LTH_AUDIT_CACHE"] = old


def write_experiment(folder: Path, name: str = "tiny", **over) -> Path:
    body = {"name": name, "arch": "mlp", "dataset": "mnist1d", "recipe": "mnist1d", "epochs": 2,
            "rewind_epoch": 1, "lrs": [0.05], "seeds": [0],
            "settings": ["pretrain", "lt-imp", "rr-imp", "lt-omp", "rr-omp", "sdt", "wr-imp", "wr-omp"],
            "sparsities": [0.36], "out": f"{name}.jsonl"}
    body.update(over)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


@pytest.fixture
def write_exp():
    """The `write_experiment` helper, as a fixture (test files here are not a package)."""
    return write_experiment
