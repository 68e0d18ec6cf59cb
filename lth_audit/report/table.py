"""The terminal view of audit results: one line per claim, then the failing conditions."""

from __future__ import annotations

from collections.abc import Sequence

from ..audit import ClaimResult
from ..conditions import Status

CIRCLED = {1: "①", 2: "②", 3: "③", 4: "④", 5: "⑤"}


def fmt_lr(lr: float | None) -> str:
    return "—" if lr is None else f"{lr:g}"


def fmt_margin(m: float | None) -> str:
    return "—" if m is None else f"{m:+.2f}"


def condition_line(c) -> str:
    """One condition in words: status, observed sides, threshold, margin, band."""
    obs = ", ".join(f"{k} {v:g}" for k, v in c.observed.items() if v is not None) or "no evidence"
    thr = ", ".join(f"{k} {v:g}" for k, v in c.threshold.items())
    ref = f" (reference lr {fmt_lr(c.reference_lr)})" if c.reference_lr is not None else ""
    band = f" ± band {c.band:.2f}" if c.band is not None else ""
    note = f" — {c.note}" if c.note else ""
    return (f"{CIRCLED[c.id]} {c.status.value:<8} {c.name}: {obs}{ref}; threshold {thr}; "
            f"margin {fmt_margin(c.margin)}{band}{note}")


def explain(r: ClaimResult) -> str:
    """What a researcher needs to act on a result: witness, every condition, missing runs."""
    lines = [f"{r.id} ({r.arch}/{r.dataset} {r.setting} s={r.sparsity:g}, profile {r.profile}, metric {r.metric}): "
             f"expected {r.expect}, verdict {r.verdict} -> {r.outcome}",
             f"  witness lr {fmt_lr(r.witness_lr)}"]
    lines += [f"  {condition_line(c)}" for c in r.conditions]
    if r.missing:
        runs = ", ".join(f"{m['setting']}@lr={fmt_lr(m['lr'])}" for m in r.missing)
        lines.append(f"  missing runs: {runs}")
    return "\n".join(lines)


def table(results: Sequence[ClaimResult]) -> str:
    """A fixed-width summary table, one claim a row."""
    head = ("claim", "expect", "verdict", "outcome", "witness lr", "failing", "margins (pp) at the witness")
    rows = []
    for r in results:
        margins = " ".join(CIRCLED[c.id] + (fmt_margin(c.margin) if c.status is not Status.MISSING else "miss")
                           for c in r.conditions if c.id != 1)
        failing = "".join(CIRCLED[i] for i in r.failing) or "—"
        rows.append((r.id, r.expect, r.verdict, r.outcome, fmt_lr(r.witness_lr), failing, margins))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*row) for row in rows)])


def explain_guideline(g) -> str:
    """A guideline rule's result in words: what was measured, the margin, what it means."""
    obs = ", ".join(f"{k} {v:g}" for k, v in g.observed.items() if v is not None) or "no evidence"
    band = f" ± band {g.band:.2f}" if g.band is not None else ""
    return (f"{g.id} ({g.arch}/{g.dataset}): rule {g.number} [{g.rule}] -> {g.outcome} ({g.status.value})\n"
            f"  {g.text}\n  observed: {obs}\n  margin {fmt_margin(g.margin)}{band}; {g.note}")
