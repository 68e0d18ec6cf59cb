"""The four guideline rules of Section 3.2: each passes on records built to satisfy it, fails on records
built to break it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lth_audit.claims import GuidelineClaim
from lth_audit.conditions import Status
from lth_audit.guideline import check

from .factories import JACKPOT, cifar10, grid

S = 0.832


def g(rule, **kw):
    return GuidelineClaim(id="g", rule=rule, arch=kw.pop("arch", "netA"), dataset="cifar10", **kw)


@pytest.mark.parametrize("imp,omp,residual,status", [
    (91.0, 90.0, True, Status.PASS),        # IMP +1.0 over OMP, beyond the gap 0.5 + band 0.1
    (91.0, 90.9, True, Status.FAIL),        # +0.1: not a clear advantage
    (91.0, 90.45, True, Status.BOUNDARY),   # +0.55: margin 0.05 inside the band
    (91.0, 90.9, False, Status.PASS),       # no residual: no advantage, as the rule says
    (91.0, 90.0, False, Status.FAIL),       # no residual but IMP clearly better: the rule breaks
])
def test_rule1_imp_over_omp(imp, omp, residual, status):
    records = grid({("lt-imp", 0.1): imp, ("lt-omp", 0.1): omp})
    r = check(g("imp-over-omp", sparsity=S, residual=residual), records, cifar10())
    assert r.status is status and r.number == 1


def test_rule1_without_omp_records_is_missing_and_fails():
    r = check(g("imp-over-omp", sparsity=S, residual=True), grid({("lt-imp", 0.1): 91.0}), cifar10())
    assert (r.status, r.outcome) == (Status.MISSING, "failed") and "lt-omp" in r.note


SMALL = {("pretrain", 0.01): 90.0, ("pretrain", 0.1): 92.0, ("lt-imp", 0.01): 91.0, ("lt-imp", 0.1): 89.0}
LARGE = {("pretrain", 0.01): 90.0, ("pretrain", 0.1): 92.0, ("lt-imp", 0.01): 88.0, ("lt-imp", 0.1): 91.5}


@pytest.mark.parametrize("values,residual,status", [(SMALL, True, Status.PASS), (LARGE, True, Status.FAIL),
                                                     (SMALL, False, Status.FAIL), (LARGE, False, Status.PASS)])
def test_rule2_small_learning_rate(values, residual, status):
    r = check(g("small-lr", sparsity=S, residual=residual), grid(values), cifar10())
    assert r.status is status and r.number == 2


def test_rule3_redundant_network_reaches_higher_sparsity():
    big = grid(JACKPOT, arch="big", sparsity=0.914) + grid(JACKPOT, arch="big", sparsity=0.832)
    small_ok = grid(JACKPOT, arch="small", sparsity=0.832)
    small_bad = grid({**JACKPOT, ("rr-imp", 0.2): 95.0}, arch="small", sparsity=0.832)
    small_high = grid(JACKPOT, arch="small", sparsity=0.956)
    rule = g("capacity-sparsity", arch="big", smaller="small")
    assert check(rule, big + small_ok, cifar10()).status is Status.PASS
    assert check(rule, big + small_bad, cifar10()).status is Status.PASS
    r = check(rule, big + small_ok + small_high, cifar10())
    assert r.status is Status.FAIL and r.margin == pytest.approx(0.914 - 0.956)


@pytest.mark.parametrize("rr,status", [(91.2, Status.PASS), (89.0, Status.FAIL)])
def test_rule4_large_learning_rate_makes_init_irrelevant(rr, status):
    values = {**LARGE, ("rr-imp", 0.1): rr}
    r = check(g("large-lr-init", sparsity=S), grid(values), cifar10())
    assert r.status is status and r.number == 4


def test_rule4_premise_not_met_says_so():
    r = check(g("large-lr-init", sparsity=S), grid({**SMALL, ("rr-imp", 0.01): 80.0}), cifar10())
    assert r.status is Status.PASS and r.note.startswith("premise not met")


def test_a_rule_names_what_it_needs():
    with pytest.raises(ValidationError, match="needs `residual`"):
        g("imp-over-omp", sparsity=S)
    with pytest.raises(ValidationError, match="needs `smaller`"):
        g("capacity-sparsity")
