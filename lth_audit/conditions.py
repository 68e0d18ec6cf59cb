"""Conditions ①–⑤ of SPEC §2 as data, the profiles that pick them, and the engine that evaluates one.

A condition says what the ticket at its witness learning rate is compared with (a reference group of
cells, at the same lr or every lr), and which threshold applies. `evaluate` turns it, a witness cell and
the evidence into a `ConditionResult`. Adding a condition or a profile touches only this file.

Grading (SPEC §2, revision 2): the point estimates decide, the noise band only grades confidence. A
comparison *holds* when the paper's inequality holds on the cell means; it then *passes* when its
margin is beyond the band and is *boundary* otherwise; it *fails* when it does not hold, "within noise"
when the band covers the shortfall. A comparison involving a cell without a noise estimate (one run, no
`seed_sd`) has no band: it is at best boundary, and a failure of it is never called beyond the noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .evidence import Cell, TicketEvidence, noise
from .records import Setting
from .thresholds import Thresholds

MARGIN_DIGITS = 9
"""Margins are rounded to 1e-9 pp before they are compared, so that an exact threshold stays exact."""
NO_NOISE = "one run: no noise estimate"


class Status(str, Enum):
    PASS = "pass"
    BOUNDARY = "boundary"
    FAIL = "fail"
    MISSING = "missing"


@dataclass(frozen=True)
class Graded:
    """A margin graded against its band: the one rule every comparison of the audit follows."""

    margin: float
    band: float | None          # None: some side has no noise estimate
    status: Status              # PASS, BOUNDARY or FAIL
    within_noise: bool          # a failure whose shortfall the band covers (or that has no band)

    @property
    def rank(self) -> int:
        """Weakest first: fail beyond the noise, fail within it, boundary, pass."""
        if self.status is Status.FAIL:
            return 1 if self.within_noise else 0
        return 2 if self.status is Status.BOUNDARY else 3


def grade(margin: float, strict: bool, ses: Sequence[float | None], th: Thresholds) -> Graded:
    """Grade `margin` (pp past the threshold) of a comparison whose sides have standard errors `ses`.

    It holds when margin > 0 (`strict`, the paper's `>`) or margin >= 0 (`≥`); the band only grades it.
    """
    margin = round(margin, MARGIN_DIGITS)
    holds = margin > 0 if strict else margin >= 0
    band = None
    if all(se is not None for se in ses):
        band = round(max(th.band_floor, th.band_se * math.hypot(*ses)), MARGIN_DIGITS)
    if holds:
        return Graded(margin, band, Status.PASS if band is not None and margin > band else Status.BOUNDARY, False)
    return Graded(margin, band, Status.FAIL, band is None or -margin <= band)


def seeds_needed(margin: float, sigmas: Sequence[float | None], th: Thresholds) -> int | None:
    """Seeds per cell that would make the band smaller than |margin| at the observed spread `sigmas`.

    None when no number would: a side has no noise estimate, or |margin| is inside the band floor.
    """
    m = abs(margin)
    if any(s is None for s in sigmas) or m <= th.band_floor:
        return None
    spread = th.band_se * math.sqrt(math.fsum(s * s for s in sigmas))   # the band at one seed per cell
    n = max(2, math.ceil((spread / m) ** 2))
    while round(spread / math.sqrt(n), MARGIN_DIGITS) >= m:   # the smallest n whose band is below |margin|
        n += 1
    return n


def advice(g: Graded, sigmas: Sequence[float | None], th: Thresholds) -> tuple[int | None, str]:
    """(seeds per cell, words) for a boundary or within-noise comparison; (None, "") otherwise."""
    if not (g.status is Status.BOUNDARY or g.within_noise):
        return None, ""
    if any(s is None for s in sigmas):
        return None, "replicate: at least 2 seeds per cell (or a stated seed_sd) are needed for a noise estimate"
    n = seeds_needed(g.margin, sigmas, th)
    if n is None:
        return None, (f"|margin| {abs(g.margin):.2f} pp is inside the band floor ({th.band_floor:g} pp): "
                      "no number of seeds makes it clear")
    return n, f"about {n} seeds per cell would make the band smaller than the margin at the observed spread"


@dataclass(frozen=True)
class Requirement:
    """① A non-trivial sparsity and sufficient training epochs for the ticket run itself."""

    id: int
    name: str
    sparsity: bool = True
    epochs: bool = True


@dataclass(frozen=True)
class Comparison:
    """LT(w) against a reference group. `kind` "gap": LT − ref > gap. "similar": LT ≥ ref − similar.

    `lr` "same" compares with the reference at the witness's lr; "best" with every reference cell over
    every lr (the max over lr, each cell with its own noise), restricted to sufficient-epoch cells when
    `well_trained`. Only reference cells trained at least as long as the witness count (SPEC §2 "Cells");
    shorter ones are listed as ignored.
    """

    id: int
    name: str
    role: str                   # a role of `evidence.ROLES`
    lr: Literal["same", "best"]
    kind: Literal["gap", "similar"]
    well_trained: bool = False

    @property
    def strict(self) -> bool:
        return self.kind == "gap"


@dataclass(frozen=True)
class Bound:
    """A per-run quantity of the ticket's witness runs against a threshold: mean ≤ threshold (⑦).

    The margin is threshold − mean, graded with the witness runs' own noise (their SD of the quantity);
    a run without the quantity recorded makes the condition missing.
    """

    id: int
    name: str
    quantity: str               # a RunRecord field, e.g. `instability`
    limit: str                  # a Thresholds field, e.g. `stable`
    hint: str                   # how to get the quantity recorded


Condition = Requirement | Comparison | Bound


class ConditionResult(BaseModel):
    """One condition evaluated at one witness learning rate."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    status: Status
    margin: float | None              # pp past the threshold; positive holds. None for ① and when missing
    band: float | None                # the band it was graded with; None for ①, when missing, or without noise
    within_noise: bool = False        # a failure the band covers
    noise: str = ""                   # why there is no band ("one run: no noise estimate")
    seeds_needed: int | None = None   # seeds per cell that would make the band smaller than the margin
    advice: str = ""
    observed: dict[str, float | None]
    threshold: dict[str, float]
    reference_lr: float | None = None  # the lr of the reference cell compared with
    evidence: list[str] = []          # run ids
    missing: list[dict[str, object]] = []
    ignored: list[dict[str, object]] = []   # reference cells trained shorter than the witness
    note: str = ""

    @property
    def holds(self) -> bool:
        return self.status in (Status.PASS, Status.BOUNDARY)


def _references(cond: Comparison, witness: Cell, ev: TicketEvidence) -> tuple[list[Cell], list[Cell]]:
    """(reference cells the witness must hold against, cells ignored as trained shorter than the witness)."""
    cells = [c for c in ev.role(cond.role) if c.lr == witness.lr or cond.lr == "best"]
    if cond.well_trained:
        cells = [c for c in cells if c.sufficient]
    refs = [c for c in cells if c.at_least_as_long_as(witness)]
    ignored = [c for c in cells if c not in refs]
    if cond.lr == "same" and refs:
        # The witness's own recipe when recorded (the sufficient cell, or the same short epochs), else the
        # longest training at that lr.
        def own_recipe(c: Cell) -> bool:
            return c.sufficient if witness.sufficient else (not c.sufficient and c.epochs == witness.epochs)

        refs = [max(refs, key=lambda c: (own_recipe(c), c.sufficient, c.epochs))]
    return refs, ignored


def _missing_runs(cond: Comparison, witness: Cell, ev: TicketEvidence, th: Thresholds) -> list[dict[str, object]]:
    setting = ev.settings[cond.role]
    epochs = th.sufficient_epochs if witness.sufficient or cond.well_trained else witness.epochs
    lrs = [witness.lr] if cond.lr == "same" else list(ev.sweep)
    return [{"setting": setting.value, "lr": lr, "epochs": epochs} for lr in lrs]


def _cell_ref(c: Cell) -> dict[str, object]:
    return {"setting": c.setting.value, "lr": c.lr, "epochs": c.epochs_label, "runs": list(c.run_ids)}


def evaluate(cond: Condition, witness: Cell, ev: TicketEvidence, th: Thresholds) -> ConditionResult:
    """Evaluate one condition for the ticket cell `witness`."""
    if isinstance(cond, Requirement):
        return _requirement(cond, witness, th)
    if isinstance(cond, Bound):
        return _bound(cond, witness, ev, th)
    limit = th.gap if cond.kind == "gap" else th.similar
    threshold = {cond.kind: limit}
    refs, ignored = _references(cond, witness, ev)
    if not refs:
        note = ""
        if ignored:
            note = (f"only references trained shorter than the witness ({witness.epochs_label} epochs) were "
                    "recorded; they are ignored")
        elif cond.well_trained and ev.role(cond.role):
            note = "no pretraining run with sufficient epochs"
        return ConditionResult(id=cond.id, name=cond.name, status=Status.MISSING, margin=None, band=None,
                               observed={"ticket": round(witness.mean, MARGIN_DIGITS), "reference": None},
                               threshold=threshold, evidence=list(witness.run_ids),
                               missing=_missing_runs(cond, witness, ev, th),
                               ignored=[_cell_ref(c) for c in ignored], note=note)
    # "Beats the max over lr" is "beats every lr": each reference cell is one comparison graded with its own
    # band, and the weakest decides. On the means that is the highest reference; with noise, a nearly-as-good
    # but noisier cell can make it uncertain. Adding a reference run thus never helps the ticket.
    graded = [(c, _compare(cond, limit, witness, c, th)) for c in refs]
    ref, g = min(graded, key=lambda t: (t[1].rank, t[1].margin, t[0].lr, -t[0].epochs))
    sigmas = (witness.sigma, ref.sigma)
    n, words = advice(g, sigmas, th)
    return ConditionResult(id=cond.id, name=cond.name, status=g.status, margin=g.margin, band=g.band,
                           within_noise=g.within_noise, noise=NO_NOISE if g.band is None else "",
                           seeds_needed=n, advice=words,
                           observed={"ticket": round(witness.mean, MARGIN_DIGITS),
                                     "reference": round(ref.mean, MARGIN_DIGITS)},
                           threshold=threshold, reference_lr=ref.lr, evidence=[*witness.run_ids, *ref.run_ids],
                           ignored=[_cell_ref(c) for c in ignored])


def _requirement(cond: Requirement, witness: Cell, th: Thresholds) -> ConditionResult:
    observed: dict[str, float | None] = {}
    threshold: dict[str, float] = {}
    ok = True
    if cond.sparsity:
        observed["sparsity"] = round(witness.sparsity, 6)
        threshold["min_sparsity"] = th.min_sparsity
        ok &= witness.sparsity >= th.min_sparsity
    if cond.epochs:
        observed["epochs"] = witness.epochs
        threshold["sufficient_epochs"] = th.sufficient_epochs
        ok &= witness.sufficient
    return ConditionResult(id=cond.id, name=cond.name, status=Status.PASS if ok else Status.FAIL,
                           margin=None, band=None, observed=observed, threshold=threshold,
                           evidence=list(witness.run_ids))


def _bound(cond: Bound, witness: Cell, ev: TicketEvidence, th: Thresholds) -> ConditionResult:
    limit = getattr(th, cond.limit)
    values = ev.quantity(witness, cond.quantity)
    threshold = {cond.limit: limit}
    if any(v is None for v in values):
        lacking = [i for i, v in zip(witness.run_ids, values) if v is None]
        return ConditionResult(id=cond.id, name=cond.name, status=Status.MISSING, margin=None, band=None,
                               observed={cond.quantity: None}, threshold=threshold, evidence=list(witness.run_ids),
                               missing=[{"setting": witness.setting.value, "lr": witness.lr,
                                         "epochs": witness.epochs, "quantity": cond.quantity}],
                               note=f"no {cond.quantity} recorded for {', '.join(lacking)}: {cond.hint}")
    mean = math.fsum(values) / len(values)
    sigma = noise(tuple(values), None)
    se = None if sigma is None else sigma / math.sqrt(len(values))
    g = grade(limit - mean, False, (se,), th)
    n, words = advice(g, (sigma,), th)
    return ConditionResult(id=cond.id, name=cond.name, status=g.status, margin=g.margin, band=g.band,
                           within_noise=g.within_noise, noise=NO_NOISE if g.band is None else "",
                           seeds_needed=n, advice=words, observed={cond.quantity: round(mean, MARGIN_DIGITS)},
                           threshold=threshold, evidence=list(witness.run_ids))


def _compare(cond: Comparison, limit: float, witness: Cell, ref: Cell, th: Thresholds) -> Graded:
    diff = witness.mean - ref.mean
    return grade(diff - limit if cond.kind == "gap" else diff + limit, cond.strict, (witness.se, ref.se), th)


C1 = Requirement(1, "non-trivial sparsity and sufficient epochs")
C2 = Comparison(2, "clear gap over the best small-dense network", role="sdt", lr="best", kind="gap")
C3 = Comparison(3, "clear gap over the best random reinitialisation", role="rr", lr="best", kind="gap")
C4 = Comparison(4, "similar to pretraining at the same learning rate", role="pretrain", lr="same", kind="similar")
C5 = Comparison(5, "similar to the well-trained (best, sufficient-epoch) pretraining", role="pretrain",
                lr="best", kind="similar", well_trained=True)
C6 = Comparison(6, "clear gap over the best random pruning with the same layerwise sparsity", role="rp", lr="best",
                kind="gap")
C7 = Bound(7, "stable to SGD noise (instability at most the stable threshold)", quantity="instability", limit="stable",
           hint="train with `instability: true` in the experiment (or record `instability`, pp)")


@dataclass(frozen=True)
class Profile:
    """Which conditions a ruleset evaluates, and which of them each prize needs."""

    name: str
    conditions: tuple[Condition, ...]
    jackpot: frozenset[int]      # empty: the profile cannot award a jackpot
    secondary: frozenset[int]
    ticket_settings: frozenset[Setting]
    description: str

    @property
    def roles(self) -> tuple[str, ...]:
        """The evidence groups its conditions read: the ticket, pretraining, and every compared role."""
        named = [c.role for c in self.conditions if isinstance(c, Comparison)]
        return tuple(dict.fromkeys(["ticket", "pretrain", *named]))


LT = frozenset({Setting.LT_OMP, Setting.LT_IMP})
WR = frozenset({Setting.WR_OMP, Setting.WR_IMP})

PROFILES: dict[str, Profile] = {
    "rigorous": Profile(
        "rigorous", (C1, C2, C3, C4, C5), frozenset({1, 2, 3, 4, 5}), frozenset({1, 2, 3, 4}), LT,
        "Ma et al. 2021, SPEC §2: jackpot needs ①–⑤, secondary prize ①–④; the ticket is θ0 ⊙ m (lt-*)"),
    "original": Profile(
        "original",
        (Requirement(1, "non-trivial sparsity", epochs=False),
         Comparison(3, "clear gap over random reinitialisation at the same learning rate", role="rr",
                    lr="same", kind="gap"),
         C4),
        frozenset(), frozenset({1, 3, 4}), LT,
        "Frankle & Carbin 2019: ④ and ③ at the same lr only, no epoch, SDT or well-trained requirement; "
        "its winning ticket is at most a secondary prize, so it never awards a jackpot"),
    "rewinding": Profile(
        "rewinding", (C1, C2, C3, C4, C5), frozenset({1, 2, 3, 4, 5}), frozenset({1, 2, 3, 4}), WR,
        "Appendix A: the ticket is a weight-rewinding (wr-*) setting, judged by ①–⑤"),
    "extended": Profile(
        "extended", (C1, C2, C3, C4, C5, C6, C7), frozenset({1, 2, 3, 4, 5, 6, 7}), frozenset({1, 2, 3, 4}), LT,
        "SPEC §6: rigorous plus ⑥ (the mask beats random pruning with its layerwise sparsity) and ⑦ (stable to SGD "
        "noise); jackpot needs ①–⑦, secondary ①–④"),
}

ProfileName = Literal["rigorous", "original", "rewinding", "extended"]
