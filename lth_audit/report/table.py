"""The terminal view of audit results: one line per claim, then the failing conditions."""

from __future__ import annotations

from collections.abc import Sequence

from ..audit import ClaimResult
from ..conditions import Status

CIRCLED = {1: "①", 2: "②", 3: "③", 4: "④", 5: "⑤", 6: "⑥", 7: "⑦"}


def fmt_lr(lr: float | None) -> str:
    return "—" if lr is None else f"{lr:g}"


def fmt_margin(m: float | None) -> str:
    return "—" if m is None else f"{m:+.2f}"


def fmt_pp(v: float | None) -> str:
    """An accuracy or a threshold in pp: two decimals everywhere in the terminal and the reports."""
    return "—" if v is None else f"{v:.2f}"


def fmt_value(key: str, v: float | None) -> str:
    """One observed quantity: sparsity with four digits, epochs as counts, accuracies in pp."""
    if v is None:
        return "—"
    if key == "sparsity" or key.startswith("max ticket sparsity"):
        return f"{v:.4g}"
    if "epochs" in key or key.endswith(" lr") or key.startswith("best ticket lr"):
        return f"{v:g}"
    return fmt_pp(v)


def status_words(c) -> str:
    """`pass`, `boundary`, `fail`, `fail (within noise)`, `missing`."""
    return c.status.value + (" (within noise)" if getattr(c, "within_noise", False) else "")


def band_words(c) -> str:
    """How the margin was graded: its band, or why there is none."""
    if c.band is not None:
        return f" (band ±{c.band:.2f})"
    return f" (no band: {c.noise})" if c.noise else ""


def condition_line(c) -> str:
    """One condition in words: status, observed sides, threshold, margin, band, and what to do about it."""
    obs = ", ".join(f"{k} {fmt_value(k, v)}" for k, v in c.observed.items() if v is not None) or "no evidence"
    thr = ", ".join(f"{k} {fmt_value(k, v)}" for k, v in c.threshold.items())
    ref = f" (reference lr {fmt_lr(c.reference_lr)})" if c.reference_lr is not None else ""
    text = (f"{CIRCLED[c.id]} {status_words(c):<8} {c.name}: {obs}{ref}; threshold {thr}; "
            f"margin {fmt_margin(c.margin)}{band_words(c)}")
    for extra in (c.advice, c.note):
        if extra:
            text += f"; {extra}"
    if c.ignored:
        text += "; ignored (trained shorter than the witness): " + ", ".join(
            f"{i['setting']} lr {fmt_lr(i['lr'])} ({i['epochs']} epochs)" for i in c.ignored)
    return text


def missing_words(missing) -> str:
    return ", ".join(f"{m['setting']}@lr={fmt_lr(m['lr'])} (" + (f"its {m['quantity']}" if "quantity" in m else
                                                                   f"≥{m['epochs']} epochs") + ")" for m in missing)


def explain(r: ClaimResult) -> str:
    """What a researcher needs to act on a result: witness, every condition, missing runs."""
    lines = [f"{r.id} ({r.arch}/{r.dataset} {r.setting} s={r.sparsity:g}, profile {r.profile}, metric {r.metric}): "
             f"expected {r.expect}, verdict {r.verdict} -> {r.outcome}",
             f"  witness lr {fmt_lr(r.witness_lr)}"]
    if r.hint:
        lines.append(f"  no evidence for the ticket: {r.hint}")
    lines += [f"  {condition_line(c)}" for c in r.conditions]
    if r.missing:
        lines.append(f"  missing runs: {missing_words(r.missing)}")
    return "\n".join(lines)


def boundary_reasons(r: ClaimResult) -> list[str]:
    """Why a claim is boundary, one line a condition: the ones at boundary or failing within the noise."""
    return [condition_line(c) for c in r.conditions if c.status.value == "boundary" or c.within_noise]


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
    obs = ", ".join(f"{k} {fmt_value(k, v)}" for k, v in g.observed.items() if v is not None) or "no evidence"
    status = " (within noise)" if g.within_noise else " (missing evidence)" if g.status is Status.MISSING else ""
    tail = "".join(f"; {x}" for x in (g.note, g.advice) if x)
    return (f"{g.id} ({g.arch}/{g.dataset}): rule {g.number} [{g.rule}] -> {g.outcome}{status}\n"
            f"  {g.text}\n  observed: {obs}\n  margin {fmt_margin(g.margin)}{band_words(g)}{tail}")
