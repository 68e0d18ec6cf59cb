import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _mnist1d_cache(tmp_path_factory):
    """One MNIST-1D cache per test session (as tests/backend does): never the user's cache."""
    old = os.environ.get("LTH_AUDIT_CACHE")
    os.environ["LTH_AUDIT_CACHE"] = str(tmp_path_factory.mktemp("lth-cache"))
    yield
    if old is None:
        os.environ.pop("LTH_AUDIT_CACHE", None)
    else:
        os.environ["LTH_AUDIT_CACHE"] = old
