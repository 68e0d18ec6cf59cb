"""Without Ray installed, `--executor ray` says how to install it and exits 2 (needs no Ray itself)."""

import sys

import pytest

from lth_audit.cli import main

pytestmark = pytest.mark.ray


def test_missing_ray_says_how_to_install(tmp_path, monkeypatch, capsys, write_exp):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["run", str(write_exp(tmp_path)), "--executor", "ray", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert 'pip install -e ".[ray]"' in err
    assert not (tmp_path / "tiny.jsonl").exists()


def test_address_needs_the_ray_executor(tmp_path, capsys, write_exp):
    assert main(["run", str(write_exp(tmp_path)), "--address", "auto", "--quiet"]) == 2
    assert "--address is for --executor ray" in capsys.readouterr().err
