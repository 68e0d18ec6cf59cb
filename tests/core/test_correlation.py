"""R_p of Appendix E."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lth_audit.correlation import correlation_indicator


def test_identical_weights_give_one_and_reversed_give_zero():
    w = {"a": np.arange(1, 101, dtype=float), "b": np.arange(1, 51, dtype=float)}
    assert correlation_indicator(w, w, p=0.1) == 1.0
    rev = {k: v[::-1].copy() for k, v in w.items()}
    assert correlation_indicator(w, rev, p=0.1) == 0.0


def test_independent_weights_give_about_p():
    g = np.random.default_rng(0)
    a, b = {"w": g.normal(size=200_000)}, {"w": g.normal(size=200_000)}
    assert correlation_indicator(a, b, p=0.1) == pytest.approx(0.1, abs=0.01)


def test_masked_weights_are_not_counted_and_p_is_of_the_remaining():
    a = {"w": torch.tensor([10.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])}
    b = {"w": torch.tensor([0.0, 0.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])}
    mask = {"w": torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])}
    # Remaining: 8 weights, p = 0.25 -> top 2. In a: 8, 7 (idx 9, 8); in b: 9, 7 (idx 2, 9). Overlap 1.
    assert correlation_indicator(a, b, p=0.25, masks=mask) == pytest.approx(1 / (0.25 * 8))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="p must be"):
        correlation_indicator({"w": [1.0]}, {"w": [1.0]}, p=0)
    with pytest.raises(KeyError, match="only one"):
        correlation_indicator({"w": [1.0]}, {"v": [1.0]})
    with pytest.raises(ValueError, match="shapes differ"):
        correlation_indicator({"w": [1.0, 2.0]}, {"w": [1.0]})


def test_rounding_never_pushes_r_p_above_one():
    # 5 weights a layer at p = 0.3: k = round(1.5) = 2 > p * 5; identical weights must give exactly 1.
    w = {f"l{i}": np.arange(1.0, 6.0) for i in range(3)}
    assert correlation_indicator(w, w, p=0.3) == 1.0


def test_figure4_uses_the_papers_pairing_where_recorded_and_says_which():
    from lth_audit.audit import audit_claim
    from lth_audit.records import CorrelationIndicator

    from .factories import JACKPOT, cifar10, claim, grid, two_seeds

    records = []
    for r in grid(two_seeds(JACKPOT)):
        if r.setting.value == "lt-imp":
            r = r.model_copy(update={"r_p": CorrelationIndicator(p=0.1, init=0.5, init_pretrained=0.3)})
        elif r.setting.value == "rr-imp":   # an older record: only the own pairing
            r = r.model_copy(update={"r_p": CorrelationIndicator(p=0.1, reinit=0.12)})
        records.append(r)
    rows = audit_claim(claim(), records, cifar10()).r_p
    lt = {(row["value"], row["pairing"]) for row in rows if row["reinit"] == 0.0}
    rr = {(row["value"], row["pairing"]) for row in rows if row["reinit"] == 1.0}
    assert lt == {(0.3, "pretrained")} and rr == {(0.12, "own")}
