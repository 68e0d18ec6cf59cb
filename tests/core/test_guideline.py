"""The four guideline rules of Section 3.2: each passes on records built to satisfy it, fails on records
built to break it, and is not applicable (never passed) where its premise does not hold."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lth_audit.claims import GuidelineClaim
from lth_audit.conditions import Status
from lth_audit.guideline import check

from .factories import JACKPOT, cifar10, grid, rec, two_seeds

S = 0.832


def g(rule, **kw):
    return GuidelineClaim(id="g", rule=rule, arch=kw.pop("arch", "netA"), dataset="cifar10", **kw)


def runs(values, **kw):
    return grid(two_seeds(values), **kw)


@pytest.mark.parametrize("imp,omp,residual,status", [
    (91.0, 90.0, True, Status.PASS),        # IMP +1.0 over OMP, beyond the gap 0.5 + band 0.1
    (91.0, 90.9, True, Status.FAIL),        # +0.1: not a clear advantage
    (91.0, 90.45, True, Status.BOUNDARY),   # +0.55: margin 0.05 inside the band
    (91.0, 90.5, True, Status.FAIL),        # +0.5 exactly: the gap is strict (>), so no clear advantage
    (91.0, 90.9, False, Status.PASS),       # no residual: no advantage, as the rule says
    (91.0, 90.5, False, Status.BOUNDARY),   # no residual, +0.5 exactly: "no clear gap" holds, at the band
    (91.0, 90.0, False, Status.FAIL),       # no residual but IMP clearly better: the rule breaks
])
def test_rule1_imp_over_omp(imp, omp, residual, status):
    records = runs({("lt-imp", 0.1): imp, ("lt-omp", 0.1): omp})
    r = check(g("imp-over-omp", sparsity=S, residual=residual), records, cifar10())
    assert r.status is status and r.number == 1


def test_rule1_without_omp_records_is_missing_and_fails():
    r = check(g("imp-over-omp", sparsity=S, residual=True), runs({("lt-imp", 0.1): 91.0}), cifar10())
    assert (r.status, r.outcome) == (Status.MISSING, "failed") and "lt-omp" in r.note


def test_rule1_on_single_runs_is_boundary_at_best():
    r = check(g("imp-over-omp", sparsity=S, residual=True), grid({("lt-imp", 0.1): 91.0, ("lt-omp", 0.1): 90.0}),
              cifar10())
    assert (r.status, r.band, r.noise) == (Status.BOUNDARY, None, "one run: no noise estimate")


SMALL = {("pretrain", 0.01): 90.0, ("pretrain", 0.1): 92.0, ("lt-imp", 0.01): 91.0, ("lt-imp", 0.1): 89.0}
LARGE = {("pretrain", 0.01): 90.0, ("pretrain", 0.1): 92.0, ("lt-imp", 0.01): 88.0, ("lt-imp", 0.1): 91.5}


@pytest.mark.parametrize("values,residual,status", [(SMALL, True, Status.PASS), (LARGE, True, Status.FAIL),
                                                     (SMALL, False, Status.FAIL), (LARGE, False, Status.PASS)])
def test_rule2_small_learning_rate(values, residual, status):
    r = check(g("small-lr", sparsity=S, residual=residual), runs(values), cifar10())
    assert r.status is status and r.number == 2


def test_rule2_reads_the_claim_files_metric():
    # By the last epoch the small lr wins; by the best epoch the large one does.
    records = [rec(s, lr, top1, seed, best_top1=best) for (s, lr), (top1, best) in {
        ("pretrain", 0.01): (90.0, 90.0), ("pretrain", 0.1): (92.0, 92.0),
        ("lt-imp", 0.01): (91.0, 91.0), ("lt-imp", 0.1): (89.0, 93.0)}.items() for seed in (0, 1)]
    rule = g("small-lr", sparsity=S, residual=True)
    assert check(rule, records, cifar10(), metric="top1").status is Status.PASS
    assert check(rule, records, cifar10(), metric="best_top1").status is Status.FAIL


def _tickets(arch, *sparsities, changes=None):
    return [r for s in sparsities for r in runs({**JACKPOT, **(changes or {})}, arch=arch, sparsity=s)]


def test_rule3_redundant_network_reaches_higher_sparsity():
    big = _tickets("big", 0.914, 0.832)
    rule = g("capacity-sparsity", arch="big", smaller="small")
    assert check(rule, big + _tickets("small", 0.832), cifar10()).status is Status.PASS
    # The smaller network has no ticket at all: the larger one still reaches higher.
    assert check(rule, big + _tickets("small", 0.832, changes={("rr-imp", 0.2): 95.0}), cifar10()).status is Status.PASS
    r = check(rule, big + _tickets("small", 0.832, 0.956), cifar10())
    assert r.status is Status.FAIL and r.margin == pytest.approx(0.914 - 0.956)


def test_rule3_a_tie_does_not_show_the_rule():
    rule = g("capacity-sparsity", arch="big", smaller="small")
    r = check(rule, _tickets("big", 0.914) + _tickets("small", 0.914), cifar10())
    assert (r.status, r.outcome, r.margin) == (Status.FAIL, "failed", 0.0)


def test_rule3_without_a_ticket_in_either_network_is_not_applicable():
    rule = g("capacity-sparsity", arch="big", smaller="small")
    no_gap = {("rr-imp", 0.02): 95.0}
    r = check(rule, _tickets("big", 0.914, changes=no_gap) + _tickets("small", 0.914, changes=no_gap), cifar10())
    assert (r.status, r.outcome) == (None, "not-applicable") and r.note.startswith("premise not met")


def test_rule3_judges_tickets_under_the_claim_files_profile():
    # lt-imp at 0.914 wins a secondary prize under `original` (③ and ④ at the same lr only; the RR at
    # another lr is better) but not under `rigorous`.
    changes = {("rr-imp", 0.2): 95.0}
    rule = g("capacity-sparsity", arch="big", smaller="small")
    records = _tickets("big", 0.914, changes=changes) + _tickets("small", 0.832, changes=changes)
    assert check(rule, records, cifar10(), profile="rigorous").outcome == "not-applicable"
    r = check(rule, records, cifar10(), profile="original")
    assert r.status is Status.PASS and r.margin == pytest.approx(0.914 - 0.832)


@pytest.mark.parametrize("rr,status", [(91.2, Status.PASS), (91.0, Status.BOUNDARY), (89.0, Status.FAIL)])
def test_rule4_large_learning_rate_makes_init_irrelevant(rr, status):
    # "No difference" is the clear gap of ③ (0.5 pp): |91.5 - rr| <= 0.5 holds.
    values = {**LARGE, ("rr-imp", 0.1): rr}
    r = check(g("large-lr-init", sparsity=S), runs(values), cifar10())
    assert r.status is status and r.number == 4 and r.observed["gap"] == 0.5


def test_rule4_premise_not_met_is_not_applicable_never_passed():
    r = check(g("large-lr-init", sparsity=S), runs({**SMALL, ("rr-imp", 0.01): 80.0}), cifar10())
    assert (r.status, r.outcome) == (None, "not-applicable") and r.note.startswith("premise not met")


def test_a_rule_names_what_it_needs():
    with pytest.raises(ValidationError, match="needs `residual`"):
        g("imp-over-omp", sparsity=S)
    with pytest.raises(ValidationError, match="needs `smaller`"):
        g("capacity-sparsity")
