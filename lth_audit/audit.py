"""The audit: witness search, prize grades, the verdict, the outcome against `expect`, observations.

A witness is one cell of the ticket (one learning rate, its seed mean). Each prize gets its grade
from its best witness. A condition whose reference has no records is `missing`, and counts as failed:
a prize is awarded only on the evidence that is there (the claimant's burden of proof), and the runs
that could raise it are named. When no prize is proven but one would be if the missing conditions
held, the verdict is `insufficient-evidence` rather than `none`: absent runs never prove a ticket
wrong either. A claim of no ticket is *boundary* when a prize would hold if the conditions that fail
within the noise held (SPEC §4).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .claims import Claim, ClaimFile
from .conditions import PROFILES, ConditionResult, Profile, Status, evaluate
from .evidence import SPARSITY_TOLERANCE, Cell, TicketEvidence, ticket_evidence
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
    epochs_label: str
    ticket_mean: float
    ticket_se: float | None           # None: one run and no seed_sd, no noise estimate
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
    mask_beats_random: bool | None = None   # best ticket beats the best random pruning (rp-*) beyond the gap
    stable: bool | None = None              # the best ticket cell's mean instability is at most `stable`


class CellSummary(BaseModel):
    """A cell for plots: one setting at one lr."""

    setting: str
    lr: float
    epochs: int
    mean: float
    se: float | None
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
    rescued: dict[str, Grade]          # the grades if every condition failing within the noise held
    witness_lr: float | None
    conditions: list[ConditionSummary]
    failing: list[int]
    missing: list[dict[str, object]]
    thresholds: Thresholds
    witnesses: list[Witness]
    observations: Observations
    cells: list[CellSummary]
    r_p: list[dict[str, object]]      # Figure 4's points: lr, p, value, reinit (0/1), pairing (pretrained | own)
    hint: str = ""                     # what the records do have, when the ticket has none
    paths: list[dict[str, object]] = []   # per ticket run: test error along the linear path to its twin (SPEC §6)

    def headline(self) -> str:
        return f"{self.id}: expected {self.expect}, verdict {self.verdict} -> {self.outcome}"


def _grade(conds: Sequence[ConditionResult], needed: frozenset[int], missing_as: Status,
           rescue: bool = False) -> Grade:
    """A prize's grade at one witness; `rescue` counts failures within the noise as boundary."""
    if not needed:
        return Grade.NO
    statuses = []
    for c in conds:
        if c.id in needed:
            s = missing_as if c.status is Status.MISSING else c.status
            statuses.append(Status.BOUNDARY if rescue and s is Status.FAIL and c.within_noise else s)
    if any(s in (Status.FAIL, Status.MISSING) for s in statuses):
        return Grade.NO
    return Grade.CLEAN if all(s is Status.PASS for s in statuses) else Grade.BOUNDARY


def _best_grade(witnesses: Sequence[list[ConditionResult]], needed: frozenset[int], missing_as: Status,
                rescue: bool = False) -> Grade:
    return max((_grade(w, needed, missing_as, rescue) for w in witnesses), key=_RANK.__getitem__, default=Grade.NO)


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


def outcome(expect: str, verdict: Verdict, grades: dict[str, Grade], rescued: dict[str, Grade]) -> Outcome:
    """SPEC §4: how a verdict answers the claim's `expect`.

    A prize claim passes when its grade is clean, is boundary when it is at boundary. A claim of no
    ticket fails when either prize holds, is boundary when one would hold if the conditions failing
    within the noise held (`rescued`), and passes otherwise.
    """
    if verdict == "insufficient-evidence":
        return "failed"
    if expect == "none":
        if any(g is not Grade.NO for g in grades.values()):
            return "failed"
        return "boundary" if any(g is not Grade.NO for g in rescued.values()) else "passed"
    return {Grade.CLEAN: "passed", Grade.BOUNDARY: "boundary", Grade.NO: "failed"}[grades[expect]]


def _witness_key(w: Witness, needed: frozenset[int]) -> tuple:
    """Closest witness to winning: grade, then grade within the noise, fewest fails, the weakest margin
    highest, then the smaller lr."""
    conds = [c for c in w.conditions if c.id in needed]
    grade = _grade(w.conditions, needed, Status.FAIL)
    rescued = _grade(w.conditions, needed, Status.FAIL, rescue=True)
    fails = sum(c.status in (Status.FAIL, Status.MISSING) for c in conds)
    margins = [c.margin for c in conds if c.margin is not None]
    return (_RANK[grade], _RANK[rescued], -fails, min(margins, default=0.0), -w.lr)


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


def _missing(ev: TicketEvidence, witnesses: Sequence[Witness], th: Thresholds) -> list[dict[str, object]]:
    runs: dict[tuple, dict[str, object]] = {}
    if not ev.ticket:
        for lr in ev.sweep or ():
            runs[(ev.ticket_setting.value, lr)] = {"setting": ev.ticket_setting.value, "lr": lr,
                                                  "epochs": th.sufficient_epochs}
    for w in witnesses:
        for c in w.conditions:
            for m in c.missing:
                runs[(m["setting"], m["lr"])] = m
    # An incomplete sweep: a comparison group lacks an lr the ticket was trained at.
    for role, group in ev.groups.items():
        if role != "ticket" and group:
            have = {c.lr for c in group}
            setting = ev.settings[role].value
            for c in ev.ticket:
                if c.lr not in have:
                    runs.setdefault((setting, c.lr), {"setting": setting, "lr": c.lr, "epochs": c.epochs})
    return [runs[k] for k in sorted(runs, key=lambda k: (k[0], k[1]))]


def _best(cells: Iterable[Cell]) -> Cell | None:
    return max(cells, key=lambda c: (c.mean, -c.lr), default=None)


def _observations(records: Sequence[RunRecord], claim: Claim, ev: TicketEvidence, th: Thresholds,
                  metric: str) -> Observations:
    lt = _best(ev.ticket)
    pre = _best(ev.pretrain)
    small = None if lt is None or pre is None else lt.lr < pre.lr
    other = Setting.LT_OMP if claim.setting is Setting.LT_IMP else Setting.LT_IMP
    if claim.setting in (Setting.LT_IMP, Setting.LT_OMP):
        twin = _best(ticket_evidence(records, claim.arch, claim.dataset, other, claim.sparsity, th.sufficient_epochs,
                                     metric, th.seed_sd, roles=("ticket",)).ticket)
        imp, omp = (lt, twin) if claim.setting is Setting.LT_IMP else (twin, lt)
    else:
        imp = omp = None
    prefers = None
    if imp is not None and omp is not None:
        diff = imp.mean - omp.mean
        prefers = "imp" if diff > th.gap else "omp" if -diff > th.gap else "neither"
    rp = _best(ev.groups.get("rp", ()))
    beats = None if lt is None or rp is None else lt.mean - rp.mean > th.gap
    stable = None
    if lt is not None:
        values = ev.quantity(lt, "instability")
        if values and all(v is not None for v in values):
            stable = sum(values) / len(values) <= th.stable
    return Observations(prefers_small_lr=small, ticket_best_lr=lt.lr if lt else None,
                        pretrain_best_lr=pre.lr if pre else None, prefers=prefers,
                        best_lt_imp=imp.mean if imp else None, best_lt_omp=omp.mean if omp else None,
                        mask_beats_random=beats, stable=stable)


def _r_p(records: Sequence[RunRecord], ev: TicketEvidence) -> list[dict[str, object]]:
    """R_p of the ticket's and its RR's runs for Figure 4: against the pretrained θT (the paper's pairing)
    where recorded, else against the run's own θT (records written before both were kept)."""
    ids = {i for role in ("ticket", "rr") for c in ev.groups.get(role, ()) for i in c.run_ids}
    rows: list[dict[str, object]] = []
    for r in sorted((r for r in records if r.run_id in ids and r.r_p is not None), key=lambda r: (r.lr, r.run_id)):
        reinit = r.setting.value.startswith("rr-")
        pretrained = r.r_p.reinit_pretrained if reinit else r.r_p.init_pretrained
        own = r.r_p.reinit if reinit else r.r_p.init
        value, pairing = (pretrained, "pretrained") if pretrained is not None else (own, "own")
        if value is not None:
            rows.append({"lr": r.lr, "p": r.r_p.p, "value": value, "reinit": float(reinit), "pairing": pairing})
    return rows


class InterpolationPath(BaseModel):
    """`meta.interpolation` of a ticket run (SPEC §6): test error (%) at points alpha along the straight line
    from the run's final weights (0) to its twin's (1). Free-form meta, so it is checked before it is drawn."""

    model_config = ConfigDict(extra="ignore")

    alpha: Annotated[list[Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]], Field(min_length=2)]
    error: list[Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]]


def _paths(ev: TicketEvidence) -> list[dict[str, object]]:
    """The interpolation paths of the ticket's runs, where recorded and well-formed (else not drawn)."""
    rows = []
    for c in ev.ticket:
        for rid in c.run_ids:
            try:
                path = InterpolationPath.model_validate(ev.ticket_runs[rid].meta.get("interpolation"))
            except ValidationError:
                continue
            if len(path.alpha) == len(path.error):
                rows.append({"lr": c.lr, "run_id": rid, "alpha": path.alpha, "error": path.error})
    return rows


def _nearest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=3, cutoff=0.5)
    return f"; nearest: {', '.join(close)}" if close else ""


def no_evidence_hint(records: Sequence[RunRecord], claim: Claim) -> str:
    """What the records do have where the claim's ticket has none: the step of (dataset, arch, setting,
    sparsity) that first matches nothing, with what is there instead and the nearest names."""
    dataset = claim.dataset.lower()
    on_data = [r for r in records if r.dataset == dataset]
    if not on_data:
        have = {r.dataset for r in records}
        return (f"no record is on dataset {dataset!r}; datasets in the records: {', '.join(sorted(have)) or 'none'}"
                + _nearest(dataset, have))
    of_arch = [r for r in on_data if r.arch == claim.arch]
    if not of_arch:
        have = {r.arch for r in on_data}
        return (f"no record of arch {claim.arch!r} on {dataset}; archs with records there: {', '.join(sorted(have))}"
                + _nearest(claim.arch, have))
    of_setting = [r for r in of_arch if r.setting is claim.setting]
    if not of_setting:
        have = sorted({r.setting.value for r in of_arch})
        return f"no {claim.setting.value} record of {claim.arch} on {dataset}; settings recorded: {', '.join(have)}"
    have_s = sorted({round(r.sparsity, 4) for r in of_setting})
    nearest = min(have_s, key=lambda s: abs(s - claim.sparsity))
    return (f"no {claim.setting.value} record of {claim.arch} on {dataset} at sparsity {claim.sparsity:g} "
            f"(within {SPARSITY_TOLERANCE}); sparsities recorded: {', '.join(f'{s:g}' for s in have_s)}; "
            f"nearest: {nearest:g}")


def audit_claim(claim: Claim, records: Sequence[RunRecord], thresholds: Thresholds, profile: str = "rigorous",
                metric: str = "top1", file: str = "") -> ClaimResult:
    """Judge one claim over `records` under `profile`."""
    prof = PROFILES[profile]
    th = thresholds
    ev = ticket_evidence(records, claim.arch, claim.dataset, claim.setting, claim.sparsity, th.sufficient_epochs,
                         metric, th.seed_sd, prof.roles)
    witnesses = []
    for cell in ev.ticket:
        conds = [evaluate(c, cell, ev, th) for c in prof.conditions]
        witnesses.append(Witness(lr=cell.lr, epochs=cell.epochs, epochs_label=cell.epochs_label,
                                 ticket_mean=cell.mean, ticket_se=cell.se, seeds=cell.n, conditions=conds,
                                 jackpot=_grade(conds, prof.jackpot, Status.FAIL),
                                 secondary=_grade(conds, prof.secondary, Status.FAIL)))
    evaluated = [w.conditions for w in witnesses]
    prizes = {"jackpot": prof.jackpot, "secondary": prof.secondary}
    grades = {k: _best_grade(evaluated, need, Status.FAIL) for k, need in prizes.items()}
    rescued = {k: _best_grade(evaluated, need, Status.FAIL, rescue=True) for k, need in prizes.items()}
    hopeful = _verdict(*(_best_grade(evaluated, need, Status.PASS) for need in prizes.values()))
    verdict: Verdict = _verdict(grades["jackpot"], grades["secondary"])
    if not witnesses or (verdict == "none" and hopeful != "none"):
        verdict = "insufficient-evidence"
    prize = _prize(verdict, claim.expect, prof)
    witness = max(witnesses, key=lambda w: _witness_key(w, prize), default=None)
    summaries = _summaries(witness, witnesses, prof)
    cells = [CellSummary(setting=c.setting.value, lr=c.lr, epochs=c.epochs, mean=c.mean, se=c.se, values=list(c.values))
             for group in ev.groups.values() for c in group]
    return ClaimResult(
        id=claim.id, file=file, expect=claim.expect, arch=claim.arch, dataset=claim.dataset,
        setting=claim.setting.value, sparsity=claim.sparsity, profile=profile, metric=metric, verdict=verdict,
        outcome=outcome(claim.expect, verdict, grades, rescued), grades=grades, rescued=rescued,
        witness_lr=witness.lr if witness else None, conditions=summaries,
        failing=[c.id for c in summaries if c.status in (Status.FAIL, Status.MISSING)],
        missing=_missing(ev, witnesses, th), thresholds=th, witnesses=witnesses,
        observations=_observations(records, claim, ev, th, metric), cells=cells,
        r_p=_r_p(records, ev), hint="" if ev.ticket else no_evidence_hint(records, claim), paths=_paths(ev))


def audit_file(cf: ClaimFile) -> list[ClaimResult]:
    """Every claim of a loaded claim file."""
    return [audit_claim(c, cf.records, cf.thresholds[c.id], cf.model.profile, cf.model.metric, str(cf.path))
            for c in cf.claims]
