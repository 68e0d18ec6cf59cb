"""The four rules of the paper's Section 3.2 guideline as declarative observation checks over records.

Each rule is data: which quantity it measures on the records (a `measure`) and, for rules 1 and 2,
which way that quantity must point for networks with residual connections (the rule says the opposite
without them). A measured margin is graded like conditions ②–⑤ (`conditions.grade`): the point
estimates decide, the band grades confidence, a one-run cell makes it boundary at best. Evidence that
is absent fails (`missing`); a rule whose premise does not hold on the runs says nothing about them and
is *not applicable* (a skipped item), never passed. Rules read the claim file's `metric:` and
`profile:`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .audit import Grade, audit_claim
from .claims import Claim, ClaimFile, GuidelineClaim
from .conditions import MARGIN_DIGITS, NO_NOISE, Status, advice, grade
from .evidence import Cell, TicketEvidence, ticket_evidence
from .records import RunRecord, Setting
from .thresholds import Thresholds

GuidelineOutcome = Literal["passed", "failed", "boundary", "not-applicable"]


class GuidelineResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    file: str
    rule: str
    number: int
    text: str
    arch: str
    dataset: str
    status: Status | None                 # None: not applicable (the rule's premise does not hold)
    outcome: GuidelineOutcome
    margin: float | None
    band: float | None
    within_noise: bool = False
    noise: str = ""
    advice: str = ""
    observed: dict[str, float | None]
    note: str
    evidence: list[str]


@dataclass(frozen=True)
class Context:
    """What every rule reads: the records and how the claim file judges them."""

    records: Sequence[RunRecord]
    th: Thresholds
    metric: str
    profile: str

    def evidence(self, arch: str, dataset: str, setting: Setting, sparsity: float | None,
                 roles: tuple[str, ...] = ("ticket", "pretrain", "rr")) -> TicketEvidence:
        return ticket_evidence(self.records, arch, dataset, setting, sparsity or 0.0, self.th.sufficient_epochs,
                               self.metric, self.th.seed_sd, roles)


@dataclass(frozen=True)
class Measurement:
    """A rule's quantity: `margin` > 0 (or >= 0 unless `strict`) means the residual-network direction holds."""

    margin: float | None          # None: missing evidence, or (with `applicable` False) a premise not met
    strict: bool
    cells: tuple[Cell, ...]       # whose noise bands it; empty: graded without a band (pass or fail)
    observed: dict[str, float | None]
    note: str
    applicable: bool = True


def _best(cells: Sequence[Cell]) -> Cell | None:
    return max(cells, key=lambda c: (c.mean, -c.lr), default=None)


def _missing(what: str) -> Measurement:
    return Measurement(None, False, (), {}, f"no records for {what}")


def _imp_over_omp(ctx: Context, g: GuidelineClaim) -> Measurement:
    imp = _best(ctx.evidence(g.arch, g.dataset, Setting.LT_IMP, g.sparsity, ("ticket",)).ticket)
    omp = _best(ctx.evidence(g.arch, g.dataset, Setting.LT_OMP, g.sparsity, ("ticket",)).ticket)
    if imp is None or omp is None:
        return _missing("lt-imp" if imp is None else "lt-omp")
    diff = imp.mean - omp.mean
    return Measurement(diff - ctx.th.gap, True, (imp, omp),
                       {"best lt-imp": imp.mean, "best lt-omp": omp.mean, "imp - omp": diff, "gap": ctx.th.gap},
                       f"IMP {'beats' if diff > ctx.th.gap else 'does not beat'} OMP by more than the gap")


def _small_lr(ctx: Context, g: GuidelineClaim) -> Measurement:
    ev = ctx.evidence(g.arch, g.dataset, g.setting, g.sparsity)
    pre = _best(ev.pretrain)
    if pre is None or not ev.ticket:
        return _missing("pretrain" if pre is None else g.setting.value)
    small = _best([c for c in ev.ticket if c.lr < pre.lr])
    large = _best([c for c in ev.ticket if c.lr >= pre.lr])
    if small is None or large is None:
        return _missing(f"{g.setting.value} on both sides of pretraining's best lr {pre.lr:g}")
    return Measurement(small.mean - large.mean, True, (small, large),
                       {"pretrain best lr": pre.lr, "best ticket lr below": small.lr, "accuracy below": small.mean,
                        "best ticket lr at or above": large.lr, "accuracy there": large.mean},
                       "the ticket does best below pretraining's best lr" if small.mean > large.mean
                       else "the ticket does best at or above pretraining's best lr")


def _large_lr_init(ctx: Context, g: GuidelineClaim) -> Measurement:
    ev = ctx.evidence(g.arch, g.dataset, g.setting, g.sparsity)
    lt, pre = _best(ev.ticket), _best(ev.pretrain)
    if lt is None or pre is None:
        return _missing(g.setting.value if lt is None else "pretrain")
    if lt.lr < pre.lr:
        return Measurement(None, False, (), {"ticket best lr": lt.lr, "pretrain best lr": pre.lr},
                           "premise not met: the ticket prefers a small learning rate, so the rule says nothing",
                           applicable=False)
    rr = next((c for c in ev.role("rr") if c.lr == lt.lr and c.at_least_as_long_as(lt)), None)
    if rr is None:
        return _missing(f"{ev.settings['rr'].value} at lr {lt.lr:g}")
    diff = abs(lt.mean - rr.mean)
    # "No difference" is the absence of the clear gap of ③ (the paper's 0.5 pp).
    return Measurement(ctx.th.gap - diff, False, (lt, rr),
                       {"ticket best lr": lt.lr, "lt": lt.mean, "rr": rr.mean, "|lt - rr|": diff, "gap": ctx.th.gap},
                       "θ0 and θ'0 give no clearly different accuracy" if diff <= ctx.th.gap
                       else "θ0 and θ'0 differ by a clear gap")


def _max_ticket_sparsity(ctx: Context, arch: str, g: GuidelineClaim) -> tuple[bool, float]:
    """(any ticket-setting records?, highest sparsity where a secondary prize or better is graded, 0 if none)."""
    found = sorted({round(r.sparsity, 3) for r in ctx.records
                    if r.arch == arch and r.dataset == g.dataset and r.setting is g.setting})
    won = [s for s in found
           if audit_claim(Claim(id=g.id, arch=arch, dataset=g.dataset, setting=g.setting, sparsity=s,
                                expect="secondary"), ctx.records, ctx.th, ctx.profile,
                          ctx.metric).grades["secondary"] is not Grade.NO]
    return bool(found), max(won, default=0.0)


def _capacity_sparsity(ctx: Context, g: GuidelineClaim) -> Measurement:
    (has_big, big), (has_small, small) = (_max_ticket_sparsity(ctx, a, g) for a in (g.arch, g.smaller))
    if not (has_big and has_small):
        return _missing(f"{g.setting.value} of {g.smaller if has_big else g.arch}")
    observed = {f"max ticket sparsity {g.arch}": big, f"max ticket sparsity {g.smaller}": small}
    if big == small == 0.0:
        return Measurement(None, False, (), observed,
                           "premise not met: neither network has a ticket at any recorded sparsity, so the rule "
                           "says nothing", applicable=False)
    return Measurement(big - small, True, (), observed,
                       "sparsity margin: the larger network's highest ticket minus the smaller's (0: no ticket); "
                       "a tie does not show the rule")


@dataclass(frozen=True)
class Rule:
    number: int
    text: str
    measure: Callable[[Context, GuidelineClaim], Measurement]
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
_OUTCOME: dict[Status, GuidelineOutcome] = {Status.PASS: "passed", Status.BOUNDARY: "boundary",
                                            Status.FAIL: "failed", Status.MISSING: "failed"}


def check(g: GuidelineClaim, records: Sequence[RunRecord], th: Thresholds, file: str = "", metric: str = "top1",
          profile: str = "rigorous") -> GuidelineResult:
    """Evaluate one guideline entry: pass / boundary / fail, missing (which fails), or not applicable."""
    rule = RULES[g.rule]
    m = rule.measure(Context(records, th, metric, profile), g)
    margin, strict = m.margin, m.strict
    if margin is not None and rule.flips_without_residual and not g.residual:
        margin, strict = -margin, not strict    # "a > b" flips to "a <= b"
    fields = dict(id=g.id, file=file, rule=g.rule, number=rule.number, text=rule.text, arch=g.arch,
                  dataset=g.dataset, observed=m.observed, note=m.note,
                  evidence=[i for c in m.cells for i in c.run_ids])
    if not m.applicable:
        return GuidelineResult(**fields, status=None, outcome="not-applicable", margin=None, band=None)
    if margin is None:
        return GuidelineResult(**fields, status=Status.MISSING, outcome="failed", margin=None, band=None)
    if not m.cells:   # a count, not an accuracy: no noise to band it
        margin = round(margin, MARGIN_DIGITS)
        status = Status.PASS if (margin > 0 if strict else margin >= 0) else Status.FAIL
        return GuidelineResult(**fields, status=status, outcome=_OUTCOME[status], margin=margin, band=None)
    graded = grade(margin, strict, [c.se for c in m.cells], th)
    _, words = advice(graded, [c.sigma for c in m.cells], th)
    return GuidelineResult(**fields, status=graded.status, outcome=_OUTCOME[graded.status], margin=graded.margin,
                           band=graded.band, within_noise=graded.within_noise,
                           noise=NO_NOISE if graded.band is None else "", advice=words)


def check_file(cf: ClaimFile) -> list[GuidelineResult]:
    """Every guideline entry of a loaded claim file."""
    return [check(g, cf.records, cf.thresholds[g.id], str(cf.path), cf.model.metric, cf.model.profile)
            for g in cf.guideline]

