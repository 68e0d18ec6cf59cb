from pathlib import Path

import pytest
import yaml


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
