"""The `extended` profile (SPEC §6): ⑥ the mask beats random pruning with its layerwise sparsity, ⑦ the
ticket is stable to SGD noise; each at, above and below its threshold, and in the verdict."""

from __future__ import annotations

import pytest

from lth_audit.audit import audit_claim
from lth_audit.conditions import C6, C7, PROFILES, Status, evaluate
from lth_audit.evidence import ticket_evidence
from lth_audit.records import Setting

from .factories import JACKPOT, SPARSITY, cifar10, claim, extended_records

LT = JACKPOT[("lt-imp", 0.02)]   # 91.9 at the witness lr 0.02


def _eval(cond, records, th=None):
    th = th or cifar10()
    ev = ticket_evidence(records, "netA", "cifar10", Setting.LT_IMP, SPARSITY, th.sufficient_epochs)
    return evaluate(cond, next(c for c in ev.ticket if c.lr == 0.02), ev, th)


@pytest.mark.parametrize("margin,want", [(0.0, (Status.FAIL, True)), (0.1, (Status.BOUNDARY, False)),
                                         (0.11, (Status.PASS, False)), (-0.11, (Status.FAIL, False)),
                                         (0.6, (Status.PASS, False))])
def test_condition6_gap_over_the_best_random_pruning(margin, want):
    r = _eval(C6, extended_records(round(LT - 0.5 - margin, 6)))
    assert r.margin == pytest.approx(margin, abs=1e-9) and (r.status, r.within_noise) == want
    assert r.reference_lr == 0.02 and r.threshold == {"gap": 0.5}


def test_condition6_is_missing_without_random_pruning_runs():
    records = [r for r in extended_records(80.0) if r.setting is not Setting.RP_IMP]
    r = _eval(C6, records)
    assert r.status is Status.MISSING and {m["setting"] for m in r.missing} == {"rp-imp"}


@pytest.mark.parametrize("instability,want", [
    ([0.5, 0.5], (Status.PASS, False)),      # margin +1.5, beyond the 0.1 band floor
    ([1.9, 1.9], (Status.BOUNDARY, False)),  # +0.1: holds, not beyond the floor
    ([2.0, 2.0], (Status.BOUNDARY, False)),  # exactly at `stable`: holds (≤), margin 0
    ([2.05, 2.05], (Status.FAIL, True)),     # 0.05 above: fails within the floor band
    ([2.5, 2.5], (Status.FAIL, False)),
])
def test_condition7_instability_at_most_stable(instability, want):
    r = _eval(C7, extended_records(80.0, instability))
    assert (r.status, r.within_noise) == want
    assert r.margin == pytest.approx(2.0 - instability[0], abs=1e-9) and r.threshold == {"stable": 2.0}


def test_condition7_grades_with_the_seeds_spread_of_instability():
    # Mean 1.0 (margin +1.0), SD 1.414 over 2 seeds: SE 1.0, band 1.0: boundary.
    r = _eval(C7, extended_records(80.0, [0.0, 2.0]))
    assert (r.status, r.band, r.margin) == (Status.BOUNDARY, pytest.approx(1.0), pytest.approx(1.0))
    assert "seeds per cell" in r.advice


def test_condition7_is_missing_when_a_witness_run_has_no_instability():
    r = _eval(C7, extended_records(80.0, [0.5, None]))
    assert r.status is Status.MISSING and "instability: true" in r.note and r.missing[0]["quantity"] == "instability"


def test_a_stable_threshold_can_be_set():
    r = _eval(C7, extended_records(80.0, [2.5, 2.5]), cifar10(stable=3.0))
    assert r.status is Status.PASS and r.threshold == {"stable": 3.0}


def test_extended_jackpot_needs_conditions_6_and_7_and_secondary_does_not():
    prof = PROFILES["extended"]
    assert [c.id for c in prof.conditions] == [1, 2, 3, 4, 5, 6, 7]
    assert prof.secondary == frozenset({1, 2, 3, 4}) and prof.ticket_settings == {Setting.LT_OMP, Setting.LT_IMP}
    good = audit_claim(claim(), extended_records(80.0), cifar10(), profile="extended")
    assert (good.verdict, good.outcome) == ("jackpot", "passed")
    assert good.observations.mask_beats_random is True and good.observations.stable is True
    unstable = audit_claim(claim(), extended_records(80.0, [3.0, 3.0]), cifar10(), profile="extended")
    assert (unstable.verdict, unstable.failing) == ("secondary", [7])
    assert unstable.observations.stable is False
    random_as_good = audit_claim(claim(), extended_records(LT), cifar10(), profile="extended")
    assert (random_as_good.verdict, random_as_good.failing) == ("secondary", [6])
    # Under rigorous the same runs are a clean jackpot: ⑥ and ⑦ are not asked.
    assert audit_claim(claim(), extended_records(LT, [3.0, 3.0]), cifar10()).verdict == "jackpot"


def test_missing_instability_leaves_the_proven_secondary_prize_and_names_what_is_missing():
    r = audit_claim(claim(), extended_records(80.0, None), cifar10(), profile="extended")
    assert (r.verdict, r.outcome) == ("secondary", "failed")           # a jackpot is not proven without ⑦
    assert {"setting": "lt-imp", "lr": 0.02, "epochs": 160, "quantity": "instability"} in r.missing


def test_interpolation_paths_reach_the_result_only_when_well_formed():
    path = {"alpha": [i / 10 for i in range(11)], "error": [8.0 + (i * (10 - i)) / 10 for i in range(11)]}
    records = extended_records(80.0)
    records = [r.model_copy(update={"meta": {"interpolation": path}}) if r.setting is Setting.LT_IMP and r.seed == 0
               else r.model_copy(update={"meta": {"interpolation": {"alpha": "nonsense"}}}) for r in records]
    result = audit_claim(claim(), records, cifar10(), profile="extended")
    assert [(p["lr"], p["error"][5]) for p in result.paths] == [(0.02, 10.5), (0.2, 10.5)]
