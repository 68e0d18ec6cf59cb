"""Each condition at, just above and just below its threshold; band edges; each verdict and outcome.

The cells here have two seeds of equal accuracy (a noise estimate of 0, so the band is its 0.1 pp floor)
unless a test says otherwise: one run per cell has no noise estimate at all (SPEC §2 revision 2).
"""

from __future__ import annotations

import pytest

from lth_audit.audit import Grade, audit_claim, outcome
from lth_audit.conditions import C1, C2, C3, C4, C5, PROFILES, Status, evaluate, seeds_needed
from lth_audit.evidence import ticket_evidence
from lth_audit.records import Setting

from .factories import JACKPOT, SPARSITY, cifar10, claim, grid, rec, two_seeds

LT = JACKPOT[("lt-imp", 0.02)]  # 91.9, the witness
GAP = SIMILAR = 0.5
FAIL, WITHIN = (Status.FAIL, False), (Status.FAIL, True)
PASS, BOUNDARY = (Status.PASS, False), (Status.BOUNDARY, False)


def _evidence(records, setting=Setting.LT_IMP, sparsity=SPARSITY, th=None):
    th = th or cifar10()
    return ticket_evidence(records, "netA", "cifar10", setting, sparsity, th.sufficient_epochs, "top1", th.seed_sd)


def _eval(cond, values, th=None, witness_lr=0.02, **kw):
    records = grid(two_seeds(values), **kw)
    ev = _evidence(records, th=th)
    witness = next(c for c in ev.ticket if c.lr == witness_lr)
    return evaluate(cond, witness, ev, th or cifar10())


def _with(**changes):
    values = dict(JACKPOT)
    for key, v in changes.items():
        setting, lr = key.rsplit("_", 1)
        values[(setting.replace("_", "-"), float(lr.replace("p", ".")))] = v
    return values


# margin -> (status, within noise) with the band at its 0.1 floor. ② ③ hold on `>`, ④ ⑤ on `>=`.
STRICT_EDGES = [(0.0, WITHIN), (0.1, BOUNDARY), (0.11, PASS), (-0.1, WITHIN), (-0.11, FAIL), (0.5, PASS),
                (-0.5, FAIL), (1e-6, BOUNDARY)]
EDGES = [(0.0, BOUNDARY), (0.1, BOUNDARY), (0.11, PASS), (-0.1, WITHIN), (-0.11, FAIL), (0.5, PASS),
         (-0.5, FAIL), (-1e-6, WITHIN)]


def _check(r, margin, want):
    assert r.margin == pytest.approx(margin, abs=1e-9)
    assert (r.status, r.within_noise) == want
    assert r.band == pytest.approx(0.1)


@pytest.mark.parametrize("margin,want", STRICT_EDGES)
def test_condition2_gap_over_best_sdt(margin, want):
    sdt = round(LT - GAP - margin, 6)
    r = _eval(C2, _with(sdt_0p02=sdt - 1.0, sdt_0p2=sdt))
    _check(r, margin, want)
    assert r.reference_lr == 0.2


@pytest.mark.parametrize("margin,want", STRICT_EDGES)
def test_condition3_gap_over_best_rr(margin, want):
    rr = round(LT - GAP - margin, 6)
    r = _eval(C3, _with(rr_imp_0p02=rr, rr_imp_0p2=rr - 2.0))
    _check(r, margin, want)
    assert r.reference_lr == 0.02


@pytest.mark.parametrize("margin,want", EDGES)
def test_condition4_similar_to_pretrain_at_same_lr(margin, want):
    pre = round(LT + SIMILAR - margin, 6)
    r = _eval(C4, _with(pretrain_0p02=pre))
    _check(r, margin, want)
    assert r.reference_lr == 0.02


@pytest.mark.parametrize("margin,want", EDGES)
def test_condition5_similar_to_best_well_trained_pretrain(margin, want):
    pre = round(LT + SIMILAR - margin, 6)
    r = _eval(C5, _with(pretrain_0p2=pre))
    _check(r, margin, want)


def test_condition5_ignores_pretraining_without_sufficient_epochs():
    records = grid(two_seeds(JACKPOT)) + [rec("pretrain", 0.5, 99.0, epochs=100)]
    ev = _evidence(records)
    r = evaluate(C5, next(c for c in ev.ticket if c.lr == 0.02), ev, cifar10())
    assert r.observed["reference"] == 92.0 and r.status is Status.PASS


def test_condition5_missing_when_no_pretraining_is_well_trained():
    values = {k: v for k, v in JACKPOT.items() if k[0] != "pretrain"}
    records = grid(two_seeds(values)) + [rec("pretrain", 0.02, 92.0, epochs=100)]
    ev = _evidence(records)
    r = evaluate(C5, next(c for c in ev.ticket if c.lr == 0.02), ev, cifar10())
    assert r.status is Status.MISSING and "sufficient epochs" in r.note


@pytest.mark.parametrize("sparsity,status", [(0.59, Status.PASS), (0.5899, Status.FAIL), (0.6, Status.PASS)])
def test_condition1_sparsity_at_threshold(sparsity, status):
    records = grid(JACKPOT, sparsity=sparsity)
    ev = _evidence(records, sparsity=sparsity)
    r = evaluate(C1, ev.ticket[0], ev, cifar10())
    assert r.status is status and r.observed["sparsity"] == pytest.approx(sparsity)
    assert r.threshold["min_sparsity"] == 0.59


@pytest.mark.parametrize("epochs,status", [(160, Status.PASS), (159, Status.FAIL), (200, Status.PASS)])
def test_condition1_epochs_at_threshold(epochs, status):
    r = _eval(C1, JACKPOT, epochs=epochs)
    assert r.status is status and r.observed["epochs"] == epochs


def test_condition1_counts_the_rewind_epoch_for_weight_rewinding():
    records = [rec("wr-imp", 0.02, 91.9, epochs=152, rewind_epoch=8), rec("wr-imp", 0.05, 91.9, epochs=151,
                                                                        rewind_epoch=8)]
    ev = _evidence(records, setting=Setting.WR_IMP)
    statuses = {c.lr: evaluate(C1, c, ev, cifar10()).status for c in ev.ticket}
    assert statuses == {0.02: Status.PASS, 0.05: Status.FAIL}


def test_band_grows_with_the_standard_error_of_the_difference():
    # LT seeds 91.9 ± 1 and pretrain 92.0 ± 1: SE of the difference = sqrt(2/3) ≈ 0.816.
    values = _with(lt_imp_0p02=[90.9, 91.9, 92.9], pretrain_0p02=[91.0, 92.0, 93.0])
    r = _eval(C4, values)
    assert r.band == pytest.approx((2 / 3) ** 0.5, abs=1e-6)
    assert r.margin == pytest.approx(0.4) and r.status is Status.BOUNDARY
    r = _eval(C4, values, th=cifar10(band_se=0.0))
    assert r.band == 0.1 and r.status is Status.PASS


def test_noise_never_rescues_a_failing_mean():
    # ③ LT − RR = 0.3 < gap 0.5 on the means: a fail, however noisy the seeds (conformance c14).
    values = _with(lt_imp_0p02=[90.9, 91.9, 92.9], rr_imp_0p02=[89.6, 91.6, 93.6], rr_imp_0p2=80.0)
    r = _eval(C3, values)
    assert (r.status, r.within_noise) == (Status.FAIL, True) and r.margin == pytest.approx(-0.2)
    assert r.band > 0.2 and "seeds per cell" in r.advice


def test_one_run_has_no_noise_estimate_so_it_holds_at_best_as_boundary():
    records = grid(JACKPOT)   # one run per cell
    ev = _evidence(records)
    witness = next(c for c in ev.ticket if c.lr == 0.02)
    for cond in (C2, C3, C4, C5):
        r = evaluate(cond, witness, ev, cifar10())
        assert (r.status, r.band, r.noise) == (Status.BOUNDARY, None, "one run: no noise estimate")
        assert r.margin > 0.1 and "at least 2 seeds" in r.advice
    # A failing one-run comparison cannot be called beyond the noise either.
    failing = grid(_with(pretrain_0p02=95.0))
    ev = _evidence(failing)
    r = evaluate(C4, next(c for c in ev.ticket if c.lr == 0.02), ev, cifar10())
    assert (r.status, r.within_noise, r.margin) == (Status.FAIL, True, pytest.approx(-2.6))


def test_a_stated_seed_sd_gives_single_runs_a_band():
    # Conformance c12: σ = seed_sd = 0.2 for every one-run cell, band = sqrt(0.2² + 0.2²) ≈ 0.283.
    th = cifar10(seed_sd=0.2)
    ev = _evidence(grid(JACKPOT), th=th)
    r = evaluate(C4, next(c for c in ev.ticket if c.lr == 0.02), ev, th)
    assert r.band == pytest.approx(0.2 * 2 ** 0.5, abs=1e-9) and r.status is Status.PASS
    # seed_sd is a floor on the noise: a cell whose seeds spread more keeps its own SD.
    ev = _evidence(grid(_with(lt_imp_0p02=[90.9, 91.9, 92.9])), th=th)
    assert next(c for c in ev.ticket if c.lr == 0.02).sigma == pytest.approx(1.0)


def test_runs_past_the_sufficient_epochs_form_one_cell():
    # Conformance c13: early stopping at 160 / 163 / 170 is one cell of three seeds, not three cells of one.
    records = [rec("lt-imp", 0.2, v, seed, epochs=e) for seed, (v, e) in enumerate([(90.9, 160), (91.5, 163),
                                                                                   (92.1, 170)])]
    (cell,) = _evidence(records).ticket
    assert (cell.n, cell.epochs, cell.max_epochs, cell.epochs_label) == (3, 160, 170, "160–170")
    assert cell.mean == pytest.approx(91.5) and cell.se == pytest.approx(0.6 / 3 ** 0.5)
    # Below the sufficient epochs, exact epochs still make separate cells (the 78-epoch recipe).
    short = [rec("lt-imp", 0.2, 90.0, 0, epochs=78), rec("lt-imp", 0.2, 91.0, 1, epochs=100)]
    assert sorted(c.epochs for c in _evidence(short).ticket) == [78, 100]


@pytest.mark.parametrize("cond", [C2, C3, C4])
def test_references_trained_shorter_than_the_witness_are_ignored(cond):
    # Conformance c15: a 160-epoch ticket cannot be compared with 60-epoch RR, SDT or pretraining.
    role = {2: "sdt", 3: "rr-imp", 4: "pretrain"}[cond.id]
    values = {k: v for k, v in JACKPOT.items() if k[0] != role}
    records = grid(two_seeds(values)) + [rec(role, lr, 70.0, seed, epochs=60) for lr in (0.02, 0.2) for seed in (0, 1)]
    ev = _evidence(records)
    r = evaluate(cond, next(c for c in ev.ticket if c.lr == 0.02), ev, cifar10())
    assert r.status is Status.MISSING and "shorter" in r.note
    assert {(i["setting"], i["epochs"]) for i in r.ignored} == {(role, "60")}
    assert all(m["epochs"] == 160 for m in r.missing)


def test_a_short_witness_may_compare_with_longer_references():
    # A 78-epoch ticket against 160-epoch RR: the reference trained at least as long counts.
    values = {k: v for k, v in JACKPOT.items() if k[0] != "lt-imp"}
    records = grid(two_seeds(values)) + [rec("lt-imp", 0.02, 91.9, seed, epochs=78) for seed in (0, 1)]
    ev = _evidence(records)
    r = evaluate(C3, ev.ticket[0], ev, cifar10())
    assert r.status is Status.PASS and r.ignored == []


@pytest.mark.parametrize("margin,sigmas,want", [
    (0.2, (1.2, 1.2), 73),       # band 0.98 at 3 seeds; at 72 seeds per cell it is exactly 0.2: 73 needed
    (0.5, (0.5, 0.5), 3),        # sqrt(0.5/n) < 0.5 from n = 3
    (0.05, (1.0, 1.0), None),    # inside the 0.1 floor: no number of seeds makes it clear
    (0.5, (None, 1.0), None),    # a one-run cell has no noise estimate to scale
])
def test_seeds_needed_at_the_observed_spread(margin, sigmas, want):
    assert seeds_needed(margin, sigmas, cifar10()) == want


def test_a_noisier_near_best_reference_decides_over_a_certain_best_one():
    # RR at 0.02 averages 90.4 over seeds 88.4 / 92.4 (SE 2); RR at 0.2 is 91.0 with no spread.
    # Against 91.0 the ticket (91.9) holds by 0.4 > 0.1: pass. Against the noisy 90.4 it holds by 1.0
    # inside a band of 2: boundary. The ticket beats "the max over lr" only if it beats every lr, so
    # the weaker comparison decides; an extra, better RR run never makes ③ easier (Hypothesis found it).
    r = _eval(C3, _with(rr_imp_0p02=[88.4, 92.4], rr_imp_0p2=91.0))
    assert (r.status, r.reference_lr, r.band) == (Status.BOUNDARY, 0.02, pytest.approx(2.0))
    assert r.margin == pytest.approx(1.0)
    # A clear fail against the certain cell still decides: fail is weaker than boundary.
    r = _eval(C3, _with(rr_imp_0p02=[88.4, 92.4], rr_imp_0p2=91.6))
    assert (r.status, r.reference_lr, r.margin) == (Status.FAIL, 0.2, pytest.approx(-0.2))


def _verdict(values, expect="jackpot", **th):
    return audit_claim(claim(expect), grid(two_seeds(values)), cifar10(**th))


def test_verdict_jackpot():
    r = _verdict(JACKPOT)
    assert (r.verdict, r.outcome, r.witness_lr, r.failing) == ("jackpot", "passed", 0.02, [])


def test_verdict_jackpot_boundary():
    r = _verdict(_with(pretrain_0p2=LT + SIMILAR - 0.05))
    assert r.verdict == "jackpot-boundary" and r.outcome == "boundary"


def test_verdict_secondary_and_secondary_boundary():
    r = _verdict(_with(pretrain_0p2=94.0))
    assert (r.verdict, r.outcome, r.failing) == ("secondary", "failed", [5])
    assert _verdict(_with(pretrain_0p2=94.0), "secondary").outcome == "passed"
    r = _verdict(_with(pretrain_0p2=94.0, rr_imp_0p2=LT - GAP - 0.05), "secondary")
    assert (r.verdict, r.outcome) == ("secondary-boundary", "boundary")


def test_verdict_none_and_insufficient_evidence():
    r = _verdict(_with(rr_imp_0p2=LT), "none")
    assert (r.verdict, r.outcome) == ("none", "passed")
    values = {k: v for k, v in JACKPOT.items() if k[0] != "sdt"}
    r = _verdict(values)
    assert (r.verdict, r.outcome) == ("insufficient-evidence", "failed")
    assert {"setting": "sdt", "lr": 0.02, "epochs": 160} in r.missing
    assert {"setting": "sdt", "lr": 0.2, "epochs": 160} in r.missing


def test_a_claim_of_no_ticket_is_boundary_when_only_noise_separates_it_from_a_prize():
    # Conformance c09: ④ ⑤ fail by 0.05, inside the 0.1 band; were they to hold, a jackpot would.
    r = _verdict(_with(pretrain_0p02=LT + SIMILAR + 0.05, pretrain_0p2=LT + SIMILAR + 0.05), "none")
    assert (r.verdict, r.outcome) == ("none", "boundary")
    assert r.rescued["jackpot"] is Grade.BOUNDARY and r.grades["jackpot"] is Grade.NO
    # Beyond the noise, the claim of no ticket passes.
    r = _verdict(_with(pretrain_0p02=LT + SIMILAR + 0.5, pretrain_0p2=LT + SIMILAR + 0.5), "none")
    assert (r.verdict, r.outcome) == ("none", "passed")


def test_missing_evidence_that_cannot_change_the_verdict_is_named_but_decides():
    # ④ fails at every lr, so whatever the small-dense runs would show, no prize is possible.
    values = {("pretrain", 0.02): 95.0, ("pretrain", 0.2): 95.0, ("lt-imp", 0.02): 90.0, ("lt-imp", 0.2): 90.0,
              ("rr-imp", 0.02): 80.0, ("rr-imp", 0.2): 80.0}
    r = _verdict(values, "none")
    assert (r.verdict, r.outcome) == ("none", "passed")
    assert {"setting": "sdt", "lr": 0.02, "epochs": 160} in r.missing


def test_no_ticket_records_is_insufficient_evidence_naming_the_ticket_runs_and_what_is_there():
    values = {k: v for k, v in JACKPOT.items() if k[0] != "lt-imp"}
    r = _verdict(values)
    assert r.verdict == "insufficient-evidence" and r.witness_lr is None
    assert {"setting": "lt-imp", "lr": 0.02, "epochs": 160} in r.missing
    assert "settings recorded: pretrain, rr-imp, sdt" in r.hint


@pytest.mark.parametrize("arch,dataset,sparsity,hint", [
    ("netB", "cifar10", SPARSITY, "archs with records there: netA; nearest: netA"),
    ("netA", "cifar-10", SPARSITY, "datasets in the records: cifar10; nearest: cifar10"),
    ("netA", "cifar10", 0.914, "sparsities recorded: 0.832; nearest: 0.832"),
])
def test_a_claim_with_no_evidence_names_what_the_records_have(arch, dataset, sparsity, hint):
    r = audit_claim(claim(arch=arch, dataset=dataset, sparsity=sparsity), grid(JACKPOT), cifar10())
    assert r.verdict == "insufficient-evidence" and hint in r.hint


@pytest.mark.parametrize("expect,verdict,grades,rescued,want", [
    ("jackpot", "jackpot", ("clean", "clean"), ("clean", "clean"), "passed"),
    ("jackpot", "jackpot-boundary", ("boundary", "clean"), ("boundary", "clean"), "boundary"),
    ("jackpot", "secondary", ("no", "clean"), ("boundary", "clean"), "failed"),
    ("secondary", "jackpot", ("clean", "clean"), ("clean", "clean"), "passed"),
    ("secondary", "jackpot-boundary", ("boundary", "clean"), ("boundary", "clean"), "passed"),
    ("secondary", "secondary-boundary", ("no", "boundary"), ("no", "boundary"), "boundary"),
    ("secondary", "none", ("no", "no"), ("no", "boundary"), "failed"),
    ("none", "none", ("no", "no"), ("no", "no"), "passed"),
    ("none", "none", ("no", "no"), ("no", "boundary"), "boundary"),
    ("none", "none", ("no", "no"), ("boundary", "boundary"), "boundary"),
    ("none", "secondary-boundary", ("no", "boundary"), ("no", "boundary"), "failed"),
    ("none", "secondary", ("no", "clean"), ("no", "clean"), "failed"),
    ("none", "insufficient-evidence", ("no", "no"), ("no", "no"), "failed"),
])
def test_outcome_table(expect, verdict, grades, rescued, want):
    g = {"jackpot": Grade(grades[0]), "secondary": Grade(grades[1])}
    w = {"jackpot": Grade(rescued[0]), "secondary": Grade(rescued[1])}
    assert outcome(expect, verdict, g, w) == want


def test_original_profile_judges_the_old_way_and_never_awards_a_jackpot():
    # Figure 1's situation: a good ticket at a small lr where pretraining is also weak, and short training.
    values = {("pretrain", 0.005): 88.0, ("pretrain", 0.1): 92.3, ("lt-imp", 0.005): 87.8, ("rr-imp", 0.005): 84.0}
    records = grid(two_seeds(values), epochs=78)
    rigorous = audit_claim(claim("secondary"), records, cifar10())
    original = audit_claim(claim("secondary"), records, cifar10(), profile="original")
    assert rigorous.verdict in ("none", "insufficient-evidence") and rigorous.outcome == "failed"
    assert (original.verdict, original.outcome) == ("secondary", "passed")
    assert [c.id for c in original.conditions] == [1, 3, 4]
    assert PROFILES["original"].jackpot == frozenset()


def test_rigorous_judges_lt_tickets_only_and_rewinding_judges_wr():
    assert PROFILES["rigorous"].ticket_settings == {Setting.LT_OMP, Setting.LT_IMP}
    assert PROFILES["rewinding"].ticket_settings == {Setting.WR_OMP, Setting.WR_IMP}


def test_a_proven_prize_stands_when_other_evidence_is_missing():
    # lr 0.02 proves a boundary jackpot; lr 0.05 might be a clean one, but pretraining at 0.05 is missing.
    values = _with(pretrain_0p2=LT + SIMILAR - 0.05)
    values[("lt-imp", 0.05)] = 95.0
    r = _verdict(values)
    assert (r.verdict, r.outcome) == ("jackpot-boundary", "boundary")
    assert {"setting": "pretrain", "lr": 0.05, "epochs": 160} in r.missing
