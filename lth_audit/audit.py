"""The audit: witness search, prize grades, the verdict, the outcome against `expect`, observations.

A witness is one cell of the ticket (one learning rate, its seed mean). Each prize gets its grade
from its best witness. A condition whose reference has no records is `missing`, and counts as failed:
a prize is awarded only on the evidence that is there (the claimant's burden of proof), and the runs
that could raise it are named. When no prize is proven but one would be if the missing conditions
held, the verdict is `insufficient-evidence` rather than `none`: absent runs never prove a ticket
wrong either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .claims import Claim, ClaimFile
from .conditions import PROFILES, ConditionResult, Profile, Status, evaluate
from .evidence import Cell, TicketEvidence, ticket_evidence
from .records import RunRecord, Setting
from .thresholds import Thresholds


class Grade(str, Enum):
    CLEAN = "clean"
    BOUNDARY = "boundary"
    NO = "no"


Verdict = Literal["jackpot", "jackpot-boundary", "secondary", "secondary-boundary", "none", "insufficient-evidence"]
Outcome = Literal["passed", "failed", "boundary"]
_RANK = {Grade.CLEAN: 2, Grade.BOUNDARY: 1, Grade.NO: 0}


class Witness(BaseModel):
    """Every condition evaluated at one learning rate of the ticket."""

    model_config = ConfigDict(frozen=True)

    lr: float
    epochs: int
    ticket_mean: float
    ticket_se: float
    seeds: int
    conditions: list[ConditionResult]
    jackpot: Grade
    secondary: Grade


class ConditionSummary(ConditionResult):
    """One condition as the report shows it: at the witness, plus where it does best on its own."""

    best_lr: float | None


class Observations(BaseModel):
    """Table 3's observation columns for the claim's (arch, dataset, sparsity)."""

    prefers_small_lr: bool | None     # argmax-lr of the ticket below argmax-lr of pretraining
    ticket_best_lr: float | None
    pretrain_best_lr: float | None
    prefers: Literal["imp", "omp", "neither"] | None  # best LT-IMP vs best LT-OMP beyond the gap
    best_lt_imp: float | None
    best_lt_omp: float | None


class CellSummary(BaseModel):
    """A cell for plots: one setting at one lr."""

    setting: str
    lr: float
    epochs: int
    mean: float
    se: float
    values: list[float]


class ClaimResult(BaseModel):
    """Everything decided about one claim. JSON-safe, so it can travel between pytest-xdist workers."""

    model_config = ConfigDict(frozen=True)

    id: str
    file: str
    expect: str
    arch: str
    dataset: str
    setting: str
    sparsity: float
    profile: str
    metric: str
    verdict: Verdict
    outcome: Outcome
    grades: dict[str, Grade]
    witness_lr: float | None
    conditions: list[ConditionSummary]
    failing: list[int]
    missing: list[dict[str, object]]
    thresholds: Thresholds
    witnesses: list[Witness]
    observations: Observations
    cells: list[CellSummary]
    r_p: list[dict[str, float]]

    def headline(self) -> str:
        return f"{self.id}: expected {self.expect}, verdict {self.verdict} -> {self.outcome}"


def _grade(conds: Sequence[ConditionResult], needed: frozenset[int], missing_as: Status) -> Grade:
    if not needed:
        return Grade.NO
    statuses = [missing_as if c.status is Status.MISSING else c.status for c in conds if c.id in needed]
    if any(s is Status.FAIL for s in statuses):
        return Grade.NO
    return Grade.CLEAN if all(s is Status.PASS for s in statuses) else Grade.BOUNDARY


def _best_grade(witnesses: Sequence[list[ConditionResult]], needed: frozenset[int], missing_as: Status) -> Grade:
    return max((_grade(w, needed, missing_as) for w in witnesses), key=_RANK.__getitem__, default=Grade.NO)


def _verdict(jackpot: Grade, secondary: Grade) -> Verdict:
    if jackpot is Grade.CLEAN:
        return "jackpot"
    if jackpot is Grade.BOUNDARY:
        return "jackpot-boundary"
    if secondary is Grade.CLEAN:
        return "secondary"
    if secondary is Grade.BOUNDARY:
        return "secondary-boundary"
    return "none"


def outcome(expect: str, verdict: Verdict, grades: dict[str, Grade]) -> Outcome:
    """SPEC §4: how a verdict answers the claim's `expect`."""
    if verdict == "insufficient-evidence":
        return "failed"
    if expect == "none":
        best = max(grades.values(), key=_RANK.__getitem__)
        return {Grade.NO: "passed", Grade.BOUNDARY: "boundary", Grade.CLEAN: "failed"}[best]
    return {Grade.CLEAN: "passed", Grade.BOUNDARY: "boundary", Grade.NO: "failed"}[grades[expect]]


def _witness_key(w: Witness, needed: frozenset[int]) -> tuple:
    """Closest witness to winning: grade, then fewest fails, then the weakest margin, then the smaller lr."""
    conds = [c for c in w.conditions if c.id in needed]
    grade = _grade(w.conditions, needed, Status.FAIL)
    fails = sum(c.status in (Status.FAIL, Status.MISSING) for c in conds)
    margins = [c.margin for c in conds if c.margin is not None]
    return (_RANK[grade], -fails, min(margins, default=0.0), -w.lr)


def _prize(verdict: Verdict, expect: str, prof: Profile) -> frozenset[int]:
    """The conditions whose witness the report shows: the prize won, else the prize the claim expected."""
    if verdict.startswith("jackpot") or (verdict in ("none", "insufficient-evidence") and expect != "secondary"):
        return prof.jackpot or prof.secondary
    return prof.secondary


def _summaries(witness: Witness | None, witnesses: Sequence[Witness], profile: Profile) -> list[ConditionSummary]:
    out = []
    for cond in profile.conditions:
        per_lr = [(w.lr, next(c for c in w.conditions if c.id == cond.id)) for w in witnesses]
        scored = [(lr, c) for lr, c in per_lr if c.status is not Status.MISSING]
        best_lr = max(scored, key=lambda t: (t[1].status is Status.PASS, t[1].margin or 0.0, -t[0]))[0] \
            if scored else None
        if witness is None:
            out.append(ConditionSummary(id=cond.id, name=cond.name, status=Status.MISSING, margin=None, band=None,
                                        observed={}, threshold={}, best_lr=None))
        else:
            at = next(c for c in witness.conditions if c.id == cond.id)
            out.append(ConditionSummary(**at.model_dump(), best_lr=best_lr))
    return out


def _missing(ev: TicketEvidence, witnesses: Sequence[Witness]) -> list[dict[str, object]]:
    runs: dict[tuple, dict[str, object]] = {}
    if not ev.ticket:
        for lr in ev.sweep or ():
            runs[(ev.ticket_setting.value, lr)] = {"setting": ev.ticket_setting.value, "lr": lr}
    for w in witnesses:
        for c in w.conditions:
            for m in c.missing:
                runs[(m["setting"], m["lr"])] = m
    # An incomplete sweep: a comparison group lacks an lr the ticket was trained at.
    for group, setting in ((ev.rr, ev.rr_setting), (ev.sdt, Setting.SDT), (ev.pretrain, Setting.PRETRAIN)):
        if group:
            have = {c.lr for c in group}
            for c in ev.ticket:
                if c.lr not in have:
                    runs[(setting.value, c.lr)] = {"setting": setting.value, "lr": c.lr}
    return [runs[k] for k in sorted(runs, key=lambda k: (k[0], k[1]))]


def _observations(records: Sequence[RunRecord], claim: Claim, ev: TicketEvidence, th: Thresholds,
                  metric: str) -> Observations:
    def best(cells: Iterable[Cell]) -> Cell | None:
        return max(cells, key=lambda c: (c.mean, -c.lr), default=None)

    lt = best(ev.ticket)
    pre = best(ev.pretrain)
    small = None if lt is None or pre is None else lt.lr < pre.lr
    other = Setting.LT_OMP if claim.setting is Setting.LT_IMP else Setting.LT_IMP
    if claim.setting in (Setting.LT_IMP, Setting.LT_OMP):
        twin = best(ticket_evidence(records, claim.arch, claim.dataset, other, claim.sparsity, metric).ticket)
        imp, omp = (lt, twin) if claim.setting is Setting.LT_IMP else (twin, lt)
    else:
        imp = omp = None
    prefers = None
    if imp is not None and omp is not None:
        diff = imp.mean - omp.mean
        prefers = "imp" if diff > th.gap else "omp" if -diff > th.gap else "neither"
    return Observations(prefers_small_lr=small, ticket_best_lr=lt.lr if lt else None,
                        pretrain_best_lr=pre.lr if pre else None, prefers=prefers,
                        best_lt_imp=imp.mean if imp else None, best_lt_omp=omp.mean if omp else None)


def _r_p(records: Sequence[RunRecord], claim: Claim, ev: TicketEvidence) -> list[dict[str, float]]:
    ids = {i for group in (ev.ticket, ev.rr) for c in group for i in c.run_ids}
    rows = []
    for r in sorted((r for r in records if r.run_id in ids and r.r_p is not None), key=lambda r: (r.lr, r.run_id)):
        value = r.r_p.init if r.r_p.init is not None else r.r_p.reinit
        if value is not None:
            rows.append({"lr": r.lr, "p": r.r_p.p, "value": value, "reinit": float(r.setting.value.startswith("rr-"))})
    return rows


def audit_claim(claim: Claim, records: Sequence[RunRecord], thresholds: Thresholds, profile: str = "rigorous",
                metric: str = "top1", file: str = "") -> ClaimResult:
    """Judge one claim over `records` under `profile`."""
    prof = PROFILES[profile]
    ev = ticket_evidence(records, claim.arch, claim.dataset, claim.setting, claim.sparsity, metric)
    witnesses = []
    for cell in ev.ticket:
        conds = [evaluate(c, cell, ev, thresholds) for c in prof.conditions]
        witnesses.append(Witness(lr=cell.lr, epochs=cell.epochs, ticket_mean=cell.mean, ticket_se=cell.se,
                                 seeds=len(cell.values), conditions=conds,
                                 jackpot=_grade(conds, prof.jackpot, Status.FAIL),
                                 secondary=_grade(conds, prof.secondary, Status.FAIL)))
    evaluated = [w.conditions for w in witnesses]
    grades = {"jackpot": _best_grade(evaluated, prof.jackpot, Status.FAIL),
              "secondary": _best_grade(evaluated, prof.secondary, Status.FAIL)}
    hopeful = _verdict(_best_grade(evaluated, prof.jackpot, Status.PASS),
                       _best_grade(evaluated, prof.secondary, Status.PASS))
    verdict: Verdict = _verdict(grades["jackpot"], grades["secondary"])
    if not witnesses or (verdict == "none" and hopeful != "none"):
        verdict = "insufficient-evidence"
    prize = _prize(verdict, claim.expect, prof)
    witness = max(witnesses, key=lambda w: _witness_key(w, prize), default=None)
    summaries = _summaries(witness, witnesses, prof)
    cells = [CellSummary(setting=c.setting.value, lr=c.lr, epochs=c.epochs, mean=c.mean, se=c.se, values=list(c.values))
             for group in (ev.pretrain, ev.ticket, ev.rr, ev.sdt) for c in group]
    return ClaimResult(
        id=claim.id, file=file, expect=claim.expect, arch=claim.arch, dataset=claim.dataset,
        setting=claim.setting.value, sparsity=claim.sparsity, profile=profile, metric=metric, verdict=verdict,
        outcome=outcome(claim.expect, verdict, grades), grades=grades,
        witness_lr=witness.lr if witness else None, conditions=summaries,
        failing=[c.id for c in summaries if c.status in (Status.FAIL, Status.MISSING)],
        missing=_missing(ev, witnesses), thresholds=thresholds, witnesses=witnesses,
        observations=_observations(records, claim, ev, thresholds, metric), cells=cells,
        r_p=_r_p(records, claim, ev))


def audit_file(cf: ClaimFile) -> list[ClaimResult]:
    """Every claim of a loaded claim file."""
    return [audit_claim(c, cf.records, cf.thresholds[c.id], cf.model.profile, cf.model.metric, str(cf.path))
            for c in cf.claims]
