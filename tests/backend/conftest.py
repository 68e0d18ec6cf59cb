import pickle
from pathlib import Path

import numpy as np
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


def write_cifar(root: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> Path:
    """A `cifar-10-batches-py/` tree in the real format (five train batches, a test batch, batches.meta)
    of random images and labels; n_train is split over the five batches."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)

    def batch(n, tag):
        # the real files are Python 2 pickles whose str keys load as str with encoding="latin1"
        return {"batch_label": tag, "labels": rng.integers(0, 10, n).tolist(),
                "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                "filenames": [f"{tag}-{i}.png" for i in range(n)]}

    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(n_train // 5, f"train{i}"), f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(n_test, "test"), f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": n_train // 5,
                     "num_vis": 3072}, f)
    return root


@pytest.fixture(name="write_cifar")
def write_cifar_fixture():
    """The `write_cifar` helper, as a fixture."""
    return write_cifar
