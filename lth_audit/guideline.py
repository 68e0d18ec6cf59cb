"""The four rules of the paper's Section 3.2 guideline as declarative observation checks over records.

Each rule is data: which quantity it measures on the records (a `measure`) and, per `residual`
flag, in which direction that quantity must point. The margin is in pp (or, for rule 3, in sparsity)
and is graded with the same band as conditions ②–⑤: pass, boundary or fail; missing evidence fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .audit import Grade, audit_claim
from .claims import Claim, ClaimFile, GuidelineClaim
from .conditions import MARGIN_DIGITS, Status
from .evidence import Cell, ticket_evidence
from .records import RunRecord, Setting
from .thresholds import Thresholds

class GuidelineResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    file: str
    rule: str
    number: int
    text: str
    arch: str
    dataset: str
    status: Status
    outcome: Literal["passed", "failed", "boundary"]
    margin: float | None
    band: float | None
    observed: dict[str, float | None]
    note: str
    evidence: list[str]


@dataclass(frozen=True)
class Measurement:
    margin: float | None          # positive: the rule's direction holds (before the `residual` flip)
    band: float | None            # None: graded without a band (margin >= 0 passes)
    observed: dict[str, float | None]
    note: str
    evidence: tuple[str, ...] = ()


def _best(cells: Sequence[Cell]) -> Cell | None:
    return max(cells, key=lambda c: (c.mean, -c.lr), default=None)


def _band(th: Thresholds, a: Cell, b: Cell) -> float:
    return max(th.band_floor, th.band_se * math.hypot(a.se, b.se))


def _missing(what: str) -> Measurement:
    return Measurement(None, None, {}, f"no records for {what}")


def _imp_over_omp(records: Sequence[RunRecord], g: GuidelineClaim, th: Thresholds) -> Measurement:
    imp = _best(ticket_evidence(records, g.arch, g.dataset, Setting.LT_IMP, g.sparsity).ticket)
    omp = _best(ticket_evidence(records, g.arch, g.dataset, Setting.LT_OMP, g.sparsity).ticket)
    if imp is None or omp is None:
        return _missing("lt-imp" if imp is None else "lt-omp")
    diff = imp.mean - omp.mean
    return Measurement(diff - th.gap, _band(th, imp, omp),
                       {"best lt-imp": imp.mean, "best lt-omp": omp.mean, "imp - omp": diff, "gap": th.gap},
                       f"IMP {'beats' if diff > th.gap else 'does not beat'} OMP by more than the gap",
                       imp.run_ids + omp.run_ids)


def _small_lr(records: Sequence[RunRecord], g: GuidelineClaim, th: Thresholds) -> Measurement:
    ev = ticket_evidence(records, g.arch, g.dataset, g.setting, g.sparsity)
    pre = _best(ev.pretrain)
    if pre is None or not ev.ticket:
        return _missing("pretrain" if pre is None else g.setting.value)
    small = _best([c for c in ev.ticket if c.lr < pre.lr])
    large = _best([c for c in ev.ticket if c.lr >= pre.lr])
    if small is None or large is None:
        return _missing(f"{g.setting.value} on both sides of pretraining's best lr {pre.lr:g}")
    return Measurement(small.mean - large.mean, _band(th, small, large),
                       {"pretrain best lr": pre.lr, "best ticket lr below": small.lr, "accuracy below": small.mean,
                        "best ticket lr at or above": large.lr, "accuracy there": large.mean},
                       "the ticket does best below pretraining's best lr" if small.mean > large.mean
                       else "the ticket does best at or above pretraining's best lr",
                       small.run_ids + large.run_ids)


def _large_lr_init(records: Sequence[RunRecord], g: GuidelineClaim, th: Thresholds) -> Measurement:
    ev = ticket_evidence(records, g.arch, g.dataset, g.setting, g.sparsity)
    lt, pre = _best(ev.ticket), _best(ev.pretrain)
    if lt is None or pre is None:
        return _missing(g.setting.value if lt is None else "pretrain")
    if lt.lr < pre.lr:
        return Measurement(None, None, {"ticket best lr": lt.lr, "pretrain best lr": pre.lr},
                           "premise not met: the ticket prefers a small learning rate, so the rule says nothing")
    rr = next((c for c in ev.rr if c.lr == lt.lr), None)
    if rr is None:
        return _missing(f"{ev.rr_setting.value} at lr {lt.lr:g}")
    diff = abs(lt.mean - rr.mean)
    return Measurement(th.similar - diff, _band(th, lt, rr),
                       {"ticket best lr": lt.lr, "lt": lt.mean, "rr": rr.mean, "|lt - rr|": diff, "similar": th.similar},
                       "θ0 and θ'0 give similar accuracy" if diff <= th.similar else "θ0 clearly beats θ'0",
                       lt.run_ids + rr.run_ids)


def _max_ticket_sparsity(records: Sequence[RunRecord], arch: str, g: GuidelineClaim, th: Thresholds
                         ) -> tuple[bool, float]:
    """(any ticket-setting records?, highest sparsity where a secondary prize or better is graded, 0 if none)."""
    found = sorted({round(r.sparsity, 3) for r in records
                    if r.arch == arch and r.dataset == g.dataset and r.setting is g.setting})
    won = [s for s in found if audit_claim(Claim(id=g.id, arch=arch, dataset=g.dataset, setting=g.setting, sparsity=s,
                                                 expect="secondary"), records, th).grades["secondary"] is not Grade.NO]
    return bool(found), max(won, default=0.0)


def _capacity_sparsity(records: Sequence[RunRecord], g: GuidelineClaim, th: Thresholds) -> Measurement:
    (has_big, big), (has_small, small) = (_max_ticket_sparsity(records, a, g, th) for a in (g.arch, g.smaller))
    if not (has_big and has_small):
        return _missing(f"{g.setting.value} of {g.smaller if has_big else g.arch}")
    return Measurement(big - small, None, {f"max ticket sparsity {g.arch}": big,
                                           f"max ticket sparsity {g.smaller}": small},
                       "sparsity margin: the larger network's highest ticket minus the smaller's (0: no ticket)")


@dataclass(frozen=True)
class Rule:
    number: int
    text: str
    measure: Callable[[Sequence[RunRecord], GuidelineClaim, Thresholds], Measurement]
    flips_without_residual: bool    # the rule says the opposite for networks without residual connections


RULES: dict[str, Rule] = {
    "imp-over-omp": Rule(1, "On a small data set with residual connections IMP beats OMP; without them IMP has "
                            "no advantage.", _imp_over_omp, True),
    "small-lr": Rule(2, "On a small data set with residual connections the ticket prefers a small learning rate; "
                        "without them a small learning rate is not preferable.", _small_lr, True),
    "capacity-sparsity": Rule(3, "A more redundant network finds tickets up to a higher sparsity.",
                              _capacity_sparsity, False),
    "large-lr-init": Rule(4, "When the (sub)network prefers large learning rates, θ0 and θ'0 give similar "
                             "accuracy.", _large_lr_init, False),
}


def check(g: GuidelineClaim, records: Sequence[RunRecord], th: Thresholds, file: str = "") -> GuidelineResult:
    """Evaluate one guideline claim: pass / boundary / fail, or missing (which fails)."""
    rule = RULES[g.rule]
    m = rule.measure(records, g, th)
    margin = m.margin
    if margin is not None and rule.flips_without_residual and not g.residual:
        margin = -margin
    if margin is None:
        # A rule whose premise does not hold says nothing about these runs; absent evidence fails.
        status = Status.PASS if m.note.startswith("premise not met") else Status.MISSING
    elif m.band is None:
        margin = round(margin, MARGIN_DIGITS)
        status = Status.PASS if margin >= 0 else Status.FAIL
    else:
        margin = round(margin, MARGIN_DIGITS)
        status = Status.PASS if margin > m.band else Status.FAIL if margin < -m.band else Status.BOUNDARY
    out = {Status.PASS: "passed", Status.BOUNDARY: "boundary"}.get(status, "failed")
    return GuidelineResult(id=g.id, file=file, rule=g.rule, number=rule.number, text=rule.text, arch=g.arch,
                           dataset=g.dataset, status=status, outcome=out, margin=margin, band=m.band,
                           observed=m.observed, note=m.note, evidence=list(m.evidence))


def check_file(cf: ClaimFile) -> list[GuidelineResult]:
    """Every guideline entry of a loaded claim file."""
    return [check(g, cf.records, cf.thresholds[g.id], str(cf.path)) for g in cf.guideline]
