"""Hypothesis properties of the audit: weaker evidence never gives a stronger verdict (SPEC §2 revision 2),
looser thresholds never hurt a claim, record order is irrelevant, and bad data is never passed.

The number of examples comes from the Hypothesis profile: `ci` (the default, a few hundred per property)
or `thorough` (thousands: `HYPOTHESIS_PROFILE=thorough pytest tests/core/test_properties.py`).
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Sequence

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from lth_audit.audit import _RANK, ClaimResult, audit_claim
from lth_audit.conditions import MARGIN_DIGITS, Status
from lth_audit.records import RunRecord, load_records

from .factories import cifar10, claim, rec

settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

LRS = (0.01, 0.05, 0.2)
SETTINGS = ("pretrain", "lt-imp", "rr-imp", "sdt")
EXPECTS = st.sampled_from(["jackpot", "secondary", "none"])
acc = st.floats(min_value=80.0, max_value=95.0, allow_nan=False).map(lambda x: round(x, 2))
acc_cell = st.floats(min_value=80.0, max_value=90.0, allow_nan=False).map(lambda x: round(x, 2))  # room to spread
OUTCOME = {"failed": 0, "boundary": 1, "passed": 2}
OFFSETS = {1: (0.0,), 2: (-1.0, 1.0), 3: (-1.0, 0.0, 1.0), 4: (-1.5, -0.5, 0.5, 1.5)}
"""Per-seed offsets of mean 0: a cell of n seeds at mean m and spread s is m + s * offset."""


@st.composite
def grids(draw):
    """Records for a few settings × lrs × seeds; some cells may be absent, some trained short."""
    records = []
    for setting in SETTINGS:
        for lr in LRS:
            if setting != "lt-imp" and not draw(st.booleans()) and lr != 0.2:
                continue
            seeds = draw(st.integers(1, 3))
            epochs = draw(st.sampled_from([160, 160, 100]))
            for seed in range(seeds):
                records.append(rec(setting, lr, draw(acc), seed, epochs=epochs))
    return records


@st.composite
def cells(draw):
    """{(setting, lr): (mean, seeds)}: cell means and seed counts, to be spread by a chosen amount."""
    out = {}
    for setting in SETTINGS:
        for lr in LRS:
            if setting == "lt-imp" or lr == 0.2 or draw(st.booleans()):
                out[(setting, lr)] = (draw(acc_cell), draw(st.integers(1, 4)))
    return out


def spread(means: dict, spreads: dict, epochs: int = 160) -> list[RunRecord]:
    """Records whose cell means are `means` exactly, seeds spread by `spreads[(setting, lr)]` pp."""
    return [rec(setting, lr, round(mean + spreads.get((setting, lr), 0.0) * off, 6), seed, epochs=epochs)
            for (setting, lr), (mean, n) in means.items() for seed, off in enumerate(OFFSETS[n])]


def _statuses(result: ClaimResult) -> dict:
    return {(w.lr, c.id): c.status for w in result.witnesses for c in w.conditions}


def _no_better(after: ClaimResult, before: ClaimResult) -> None:
    """`after` (on weaker evidence) is no better than `before` in outcome or in either prize's grade."""
    assert OUTCOME[after.outcome] <= OUTCOME[before.outcome], (before.verdict, after.verdict)
    for prize in ("jackpot", "secondary"):
        assert _RANK[after.grades[prize]] <= _RANK[before.grades[prize]]


STATUS_RANK = {Status.FAIL: 0, Status.BOUNDARY: 1, Status.PASS: 2, Status.MISSING: -1}
looser = st.fixed_dictionaries({"similar": st.floats(0, 2), "gap": st.floats(0, 0.5), "sparsity": st.floats(0, 0.5)})


# --------------------------------------------------------------------------------------------- evidence


@given(cells(), st.floats(0, 3).map(lambda x: round(x, 2)), st.floats(0, 3).map(lambda x: round(x, 2)),
       st.data(), EXPECTS)
def test_a_more_spread_cell_never_gives_a_better_outcome(means, s, more, data, expect):
    """(a) The same cell means with more spread among the seeds of one cell."""
    key = data.draw(st.sampled_from(sorted(means)))
    base = {k: s for k in means}
    before = audit_claim(claim(expect), spread(means, base), cifar10())
    after = audit_claim(claim(expect), spread(means, {**base, key: s + more}), cifar10())
    _no_better(after, before)


@given(cells(), st.floats(0, 3).map(lambda x: round(x, 2)), st.data(), EXPECTS)
def test_collapsing_a_cell_to_one_run_at_its_mean_never_gives_a_better_outcome(means, s, data, expect):
    """(b) One seed at the mean of three is weaker evidence than the three (no seed_sd stated)."""
    key = data.draw(st.sampled_from(sorted(means)))
    before = audit_claim(claim(expect), spread(means, {k: s for k in means}), cifar10())
    mean, n = means[key]
    assume(n >= 2)
    after = audit_claim(claim(expect), spread({**means, key: (mean, 1)}, {k: s for k in means}), cifar10())
    _no_better(after, before)


@given(grids(), st.randoms(use_true_random=False))
def test_relabelling_epochs_at_or_past_the_sufficient_epochs_changes_nothing(records, rnd):
    """(c) Early stopping at 160, 163 or 300 epochs is the same evidence (one cell)."""
    th = cifar10()
    relabelled = [r.model_copy(update={"epochs": rnd.choice([160, 161, 170, 300])})
                  if r.epochs >= th.sufficient_epochs else r for r in records]
    before, after = audit_claim(claim(), records, th), audit_claim(claim(), relabelled, th)
    assert (after.verdict, after.outcome, after.witness_lr) == (before.verdict, before.outcome, before.witness_lr)
    assert _statuses(after) == _statuses(before)
    assert [(c.margin, c.band) for c in after.conditions] == [(c.margin, c.band) for c in before.conditions]


@given(grids(), EXPECTS)
def test_a_condition_failing_on_the_means_is_a_fail_whatever_the_seeds(records, expect):
    """(d) An independent oracle: recompute each comparison's inequality from its cell means."""
    th = cifar10()
    result = audit_claim(claim(expect), records, th)
    for w in result.witnesses:
        for c in w.conditions:
            if c.margin is None:
                continue
            diff = c.observed["ticket"] - c.observed["reference"]
            if "gap" in c.threshold:
                holds = round(diff - th.gap, MARGIN_DIGITS) > 0
            else:
                holds = round(diff + th.similar, MARGIN_DIGITS) >= 0
            assert (c.status is Status.FAIL) == (not holds), (c.id, diff, c.status)
            if c.status is Status.PASS:
                assert c.band is not None and c.margin > c.band


# --------------------------------------------------------------------------------------------- thresholds


@given(grids(), looser, st.sampled_from(["jackpot", "secondary"]))
def test_loosening_a_threshold_never_turns_a_pass_into_a_fail(records, d, expect):
    base = cifar10()
    loose = base.model_copy(update={"similar": base.similar + d["similar"], "gap": base.gap - d["gap"],
                                    "min_sparsity": max(0.0, base.min_sparsity - d["sparsity"])})
    before, after = audit_claim(claim(expect), records, base), audit_claim(claim(expect), records, loose)
    for key, status in _statuses(before).items():
        assert STATUS_RANK[_statuses(after)[key]] >= STATUS_RANK[status]
    for prize in ("jackpot", "secondary"):
        assert _RANK[after.grades[prize]] >= _RANK[before.grades[prize]]
    if before.verdict != "insufficient-evidence":
        assert OUTCOME[after.outcome] >= OUTCOME[before.outcome]


@given(grids(), st.integers(1, 80))
def test_fewer_sufficient_epochs_never_fails_condition1_that_passed(records, fewer):
    # Not a full loosening: ⑤ also reads `sufficient_epochs` to pick the well-trained pretraining, and a
    # lower bar admits more (possibly better) pretraining runs into its maximum (SPEC §2).
    base = cifar10()
    before = audit_claim(claim(), records, base)
    after = audit_claim(claim(), records, base.model_copy(update={"sufficient_epochs": 160 - fewer}))
    passed = {w.lr for w in before.witnesses for c in w.conditions if c.id == 1 and c.status is Status.PASS}
    assert passed <= {w.lr for w in after.witnesses for c in w.conditions if c.id == 1 and c.status is Status.PASS}


@given(grids(), st.floats(0.0, 2.0), EXPECTS)
def test_a_larger_band_never_gives_a_better_outcome(records, wider, expect):
    base = cifar10()
    before = audit_claim(claim(expect), records, base)
    after = audit_claim(claim(expect), records, base.model_copy(update={"band_floor": base.band_floor + wider}))
    _no_better(after, before)


# --------------------------------------------------------------------------------------------- order, competition


@given(grids(), st.randoms(use_true_random=False))
def test_order_of_records_and_of_seeds_never_changes_a_verdict(records, rnd):
    base = audit_claim(claim(), records, cifar10())
    shuffled = list(records)
    rnd.shuffle(shuffled)
    # Relabel seeds within each cell: the same accuracies under other seed numbers.
    relabeled = []
    groups: dict[tuple, list[RunRecord]] = {}
    for r in shuffled:
        groups.setdefault((r.setting, r.lr, r.epochs), []).append(r)
    for group in groups.values():
        seeds = [r.seed for r in group]
        rnd.shuffle(seeds)
        relabeled += [rec(r.setting.value, r.lr, r.top1, s + 10, epochs=r.epochs) for r, s in zip(group, seeds)]
    for other in (shuffled, relabeled):
        result = audit_claim(claim(), other, cifar10())
        assert (result.verdict, result.outcome, result.witness_lr) == (base.verdict, base.outcome, base.witness_lr)
        assert [c.margin for c in result.conditions] == [c.margin for c in base.conditions]


# Found by this property: a better but single-seed RR cell used to replace a noisier best one, shrinking
# the band and turning a boundary ③ into a pass.
_NOISY_RR = [rec("pretrain", lr, 80.0) for lr in (0.01, 0.2)] + [
    rec("lt-imp", 0.01, 84.0), rec("lt-imp", 0.05, 80.0), rec("lt-imp", 0.2, 80.0), rec("rr-imp", 0.01, 80.0),
    rec("rr-imp", 0.01, 84.0, 1), rec("rr-imp", 0.2, 80.0), rec("sdt", 0.2, 80.0)]


@given(grids(), st.sampled_from(["rr-imp", "sdt"]), acc, st.integers(0, 2), st.sampled_from(["jackpot", "secondary"]))
@example(_NOISY_RR, "rr-imp", 83.0, 0, "jackpot")
def test_adding_a_competing_rr_or_sdt_run_never_helps_a_ticket(records, setting, top1, seed, expect):
    # (For a claim of no ticket a better competitor is evidence *for* the claim: not this property.)
    base = audit_claim(claim(expect), records, cifar10())
    # A run that supplies missing evidence (no RR or SDT cell as long as the ticket) may of course let a
    # claim be judged at all: the property is about competing with evidence that is there.
    assume(not any(c.status is Status.MISSING for w in base.witnesses for c in w.conditions if c.id in (2, 3)))
    more = audit_claim(claim(expect), [*records, rec(setting, 0.7, top1, seed)], cifar10())
    _no_better(more, base)


# --------------------------------------------------------------------------------------------- bad data


bad_top1 = st.one_of(st.just(math.nan), st.just(math.inf), st.just(-math.inf),
                     st.floats(max_value=-1e-9, allow_nan=False), st.floats(min_value=100.000001, allow_nan=False))


@given(bad_top1)
def test_nan_or_out_of_range_accuracy_is_rejected_never_passed(tmp_path_factory, value):
    line = json.dumps({"schema": "lth-audit.run/1", "run_id": "x", "arch": "a", "dataset": "cifar10",
                       "setting": "lt-imp", "sparsity": 0.9, "lr": 0.1, "epochs": 160, "seed": 0, "top1": value})
    path = tmp_path_factory.mktemp("bad") / "r.jsonl"
    path.write_text(line + "\n")
    result = load_records([path])
    assert result.records == [] and [(p.line, p.field) for p in result.problems] == [(1, "top1")]


def test_the_strategies_make_what_the_properties_need():
    # Guards: a shuffle is a real shuffle, and spread() keeps the cell means it is given.
    records = [rec("pretrain", lr, 90.0, s) for lr in LRS for s in range(3)]
    shuffled = list(records)
    random.Random(1).shuffle(shuffled)
    assert shuffled != records
    made: Sequence[RunRecord] = spread({("lt-imp", 0.2): (91.25, 3)}, {("lt-imp", 0.2): 1.5})
    assert sorted(r.top1 for r in made) == [89.75, 91.25, 92.75]
