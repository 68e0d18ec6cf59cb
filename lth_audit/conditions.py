"""Conditions ①–⑤ of SPEC §2 as data, the profiles that pick them, and the engine that evaluates one.

A condition says what the ticket at its witness learning rate is compared with (a reference group of
cells, at the same lr or the best over every lr), and which threshold applies. `evaluate` turns it,
a witness cell and the evidence into a `ConditionResult`. Adding a condition or a profile touches
only this file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .evidence import Cell, TicketEvidence
from .records import Setting
from .thresholds import Thresholds

MARGIN_DIGITS = 9
"""Margins are rounded to 1e-9 pp before they are compared, so that an exact threshold stays exact."""


class Status(str, Enum):
    PASS = "pass"
    BOUNDARY = "boundary"
    FAIL = "fail"
    MISSING = "missing"


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

    `lr` "same" compares with the reference at the witness's lr (same epochs if recorded, else the
    longest); "best" with every reference cell over every lr (the max over lr, with each cell's own
    noise), restricted to cells with sufficient epochs when `well_trained`.
    """

    id: int
    name: str
    role: Literal["pretrain", "rr", "sdt"]
    lr: Literal["same", "best"]
    kind: Literal["gap", "similar"]
    well_trained: bool = False


Condition = Requirement | Comparison


class ConditionResult(BaseModel):
    """One condition evaluated at one witness learning rate."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    status: Status
    margin: float | None              # pp past the threshold; positive holds. None for ① and when missing
    band: float | None                # the boundary half-width used
    observed: dict[str, float | None]
    threshold: dict[str, float]
    reference_lr: float | None = None  # the lr of the reference cell compared with
    evidence: list[str] = []          # run ids
    missing: list[dict[str, object]] = []
    note: str = ""


def _status(margin: float, band: float) -> Status:
    if margin > band:
        return Status.PASS
    if margin < -band:
        return Status.FAIL
    return Status.BOUNDARY


def _references(cond: Comparison, witness: Cell, ev: TicketEvidence, th: Thresholds) -> tuple[Cell, ...]:
    """The reference cells the witness must hold against: one for "same", every eligible lr for "best"."""
    cells = ev.role(cond.role)
    if cond.lr == "same":
        # The same recipe when there is one; otherwise the longest training at that lr.
        same = [c for c in cells if c.lr == witness.lr]
        best = max(same, key=lambda c: (c.epochs == witness.epochs, c.epochs), default=None)
        return () if best is None else (best,)
    if cond.well_trained:
        cells = tuple(c for c in cells if c.epochs >= th.sufficient_epochs)
    return cells


def _missing_runs(cond: Comparison, witness: Cell, ev: TicketEvidence) -> list[dict[str, object]]:
    setting = {"pretrain": Setting.PRETRAIN, "rr": ev.rr_setting, "sdt": Setting.SDT}[cond.role]
    lrs = [witness.lr] if cond.lr == "same" else list(ev.sweep)
    return [{"setting": setting.value, "lr": lr} for lr in lrs]


def evaluate(cond: Condition, witness: Cell, ev: TicketEvidence, th: Thresholds) -> ConditionResult:
    """Evaluate one condition for the ticket cell `witness`."""
    if isinstance(cond, Requirement):
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
            ok &= witness.epochs >= th.sufficient_epochs
        return ConditionResult(id=cond.id, name=cond.name, status=Status.PASS if ok else Status.FAIL,
                               margin=None, band=None, observed=observed, threshold=threshold,
                               evidence=list(witness.run_ids))
    limit = th.gap if cond.kind == "gap" else th.similar
    threshold = {cond.kind: limit}
    refs = _references(cond, witness, ev, th)
    if not refs:
        note = "no pretraining run with sufficient epochs" if cond.well_trained and ev.pretrain else ""
        return ConditionResult(id=cond.id, name=cond.name, status=Status.MISSING, margin=None, band=None,
                               observed={"ticket": witness.mean, "reference": None}, threshold=threshold,
                               evidence=list(witness.run_ids), missing=_missing_runs(cond, witness, ev), note=note)
    # "Beats the max over lr" is "beats every lr": each reference cell is one comparison with its own band,
    # and the weakest decides. Without seed noise that is the highest mean; with it, a nearly-as-good but
    # noisier cell can make the comparison uncertain. Adding a reference run thus never helps the ticket.
    ref, margin, band, status = min((_compare(cond, limit, witness, c, th) for c in refs),
                                    key=lambda t: (_ORDER[t[3]], t[1], t[0].lr, -t[0].epochs))
    return ConditionResult(id=cond.id, name=cond.name, status=status, margin=margin, band=band,
                           observed={"ticket": round(witness.mean, MARGIN_DIGITS),
                                     "reference": round(ref.mean, MARGIN_DIGITS)},
                           threshold=threshold, reference_lr=ref.lr,
                           evidence=[*witness.run_ids, *ref.run_ids])


_ORDER = {Status.FAIL: 0, Status.BOUNDARY: 1, Status.PASS: 2}


def _compare(cond: Comparison, limit: float, witness: Cell, ref: Cell,
             th: Thresholds) -> tuple[Cell, float, float, Status]:
    """Margin, band and status of the witness against one reference cell."""
    diff = witness.mean - ref.mean
    margin = round(diff - limit if cond.kind == "gap" else diff + limit, MARGIN_DIGITS)
    band = round(max(th.band_floor, th.band_se * math.hypot(witness.se, ref.se)), MARGIN_DIGITS)
    return ref, margin, band, _status(margin, band)


C1 = Requirement(1, "non-trivial sparsity and sufficient epochs")
C2 = Comparison(2, "clear gap over the best small-dense network", role="sdt", lr="best", kind="gap")
C3 = Comparison(3, "clear gap over the best random reinitialisation", role="rr", lr="best", kind="gap")
C4 = Comparison(4, "similar to pretraining at the same learning rate", role="pretrain", lr="same", kind="similar")
C5 = Comparison(5, "similar to the well-trained (best, sufficient-epoch) pretraining", role="pretrain",
                lr="best", kind="similar", well_trained=True)


@dataclass(frozen=True)
class Profile:
    """Which conditions a ruleset evaluates, and which of them each prize needs."""

    name: str
    conditions: tuple[Condition, ...]
    jackpot: frozenset[int]      # empty: the profile cannot award a jackpot
    secondary: frozenset[int]
    ticket_settings: frozenset[Setting]
    description: str


PROFILES: dict[str, Profile] = {
    "rigorous": Profile(
        "rigorous", (C1, C2, C3, C4, C5), frozenset({1, 2, 3, 4, 5}), frozenset({1, 2, 3, 4}),
        frozenset({Setting.LT_OMP, Setting.LT_IMP, Setting.WR_OMP, Setting.WR_IMP}),
        "Ma et al. 2021, SPEC §2: jackpot needs ①–⑤, secondary prize ①–④"),
    "original": Profile(
        "original",
        (Requirement(1, "non-trivial sparsity", epochs=False),
         Comparison(3, "clear gap over random reinitialisation at the same learning rate", role="rr",
                    lr="same", kind="gap"),
         C4),
        frozenset(), frozenset({1, 3, 4}),
        frozenset({Setting.LT_OMP, Setting.LT_IMP}),
        "Frankle & Carbin 2019: ④ and ③ at the same lr only, no epoch, SDT or well-trained requirement; "
        "its winning ticket is at most a secondary prize, so it never awards a jackpot"),
    "rewinding": Profile(
        "rewinding", (C1, C2, C3, C4, C5), frozenset({1, 2, 3, 4, 5}), frozenset({1, 2, 3, 4}),
        frozenset({Setting.WR_OMP, Setting.WR_IMP}),
        "Appendix A: the ticket is a weight-rewinding (wr-*) setting, judged by ①–⑤"),
}

ProfileName = Literal["rigorous", "original", "rewinding"]
