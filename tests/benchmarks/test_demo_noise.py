"""benchmarks/demo_noise.py on the shipped demo records."""

from __future__ import annotations

from pathlib import Path

import pytest

STORE = Path(__file__).resolve().parents[2] / "checks" / "demo" / "mnist1d-demo.jsonl"


def test_binomial_se(script):
    d = script("demo_noise")
    assert d.binomial_se(95.0, 1000) == pytest.approx(0.689, abs=1e-3)
    assert d.binomial_se(95.0, 10000) == pytest.approx(0.218, abs=1e-3)


def test_same_store_twice_agrees(script, capsys):
    d = script("demo_noise")
    assert d.main([str(STORE), str(STORE), "--seeds", "0,1", "--cells"]) == 0
    out = capsys.readouterr().out
    assert "seed SD of the deciding cells" in out and "binomial SE of the test set (10000 examples)" in out
    assert out.count("== ") == 2 and "seeds [0, 1]" in out and "agree: 6 of 6" in out


def test_empty_sub_grid_is_an_error(script, capsys):
    d = script("demo_noise")
    assert d.main([str(STORE), "--lrs", "123"]) == 2
    assert "no runs" in capsys.readouterr().err
