"""The HTML report: one self-contained file (inline CSS, JS and SVG) that opens offline.

Built with jinja2, autoescape on: every claim id, arch or record id goes through HTML escaping.
The only unescaped inserts are matplotlib's SVG (which escapes its own text) and the fixed CSS/JS
of the template. The report holds no external URL at all — not even SVG namespace URIs (see
`plots`). Each distinct plot is written once, as a `<symbol>` in a hidden sprite, and every claim
that shows it draws it with `<use href="#…">`, so claims with identical evidence share the bytes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..audit import ClaimResult
from ..conditions import Status
from ..records import atomic_write_text
from .table import CIRCLED, fmt_lr, fmt_margin

OUTCOMES = ("passed", "boundary", "failed")
_SVG_ROOT = re.compile(r'^<svg viewBox="([^"]*)"[^>]*>(.*)</svg>$', re.S)


@dataclass
class Sprite:
    """Distinct plots by key: (viewBox, inner SVG) written once into the page."""

    symbols: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, plot: tuple[str, str] | None) -> dict[str, str] | None:
        if plot is None:
            return None
        key, svg = plot
        if key not in self.symbols:
            m = _SVG_ROOT.match(svg)
            if m is None:  # pragma: no cover - matplotlib changed its output shape
                raise ValueError("unexpected SVG from matplotlib")
            self.symbols[key] = (m.group(1), m.group(2))
        return {"key": key, "viewbox": self.symbols[key][0]}


def _fmt_obs(observed: dict[str, Any]) -> str:
    parts = []
    for k, v in observed.items():
        if v is None:
            parts.append(f"{k} —")
        elif isinstance(v, float):
            parts.append(f"{k} {v:.2f}" if k in ("ticket", "reference") else f"{k} {v:g}")
        else:
            parts.append(f"{k} {v}")
    return ", ".join(parts) or "—"


def _grid(results: Sequence[ClaimResult]) -> list[dict[str, Any]]:
    """Table 3 of the paper: one row per (arch, dataset)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for i, r in enumerate(results):
        row = rows.setdefault((r.arch, r.dataset), {
            "arch": r.arch, "dataset": r.dataset, "jackpot": [], "secondary": [], "boundary": [], "none": [],
            "insufficient": [], "small_lr": [], "prefers": set(), "outcomes": dict.fromkeys(OUTCOMES, 0)})
        ticket = {"label": f"{r.setting} s={r.sparsity:g}", "anchor": f"claim-{i}", "outcome": r.outcome}
        if r.verdict == "jackpot":
            row["jackpot"].append(ticket)
        elif r.verdict == "secondary":
            row["secondary"].append(ticket)
        elif r.verdict.endswith("-boundary"):
            row["boundary"].append({**ticket, "label": f"{ticket['label']} ({r.verdict.split('-')[0]})"})
        elif r.verdict == "none":
            row["none"].append(ticket)
        else:
            row["insufficient"].append(ticket)
        if r.observations.prefers_small_lr is not None:
            row["small_lr"].append(r.observations.prefers_small_lr)
        if r.observations.prefers is not None:
            row["prefers"].add(r.observations.prefers)
        row["outcomes"][r.outcome] += 1
    out = []
    for row in rows.values():
        yes = sum(row["small_lr"])
        row["small_lr"] = "—" if not row["small_lr"] else ("yes" if yes == len(row["small_lr"]) else
                                                          "no" if yes == 0 else f"{yes}/{len(row['small_lr'])}")
        row["prefers"] = "/".join(p.upper() if p != "neither" else "neither" for p in sorted(row["prefers"])) or "—"
        out.append(row)
    return sorted(out, key=lambda r: (r["arch"], r["dataset"]))


def _claim_view(i: int, r: ClaimResult, sprite: Sprite, with_plots: bool) -> dict[str, Any]:
    from . import plots

    conditions = [{
        "mark": CIRCLED[c.id], "name": c.name, "status": c.status.value, "observed": _fmt_obs(c.observed),
        "threshold": ", ".join(f"{k} {v:g}" for k, v in c.threshold.items()) or "—",
        "margin": fmt_margin(c.margin), "band": "—" if c.band is None else f"±{c.band:.2f}",
        "reference_lr": fmt_lr(c.reference_lr), "best_lr": fmt_lr(c.best_lr), "note": c.note,
    } for c in r.conditions]
    evidence = sorted({e for c in r.conditions for e in c.evidence})
    witness = next((w for w in r.witnesses if w.lr == r.witness_lr), None)
    return {
        "n": i, "anchor": f"claim-{i}", "r": r, "conditions": conditions, "evidence": evidence,
        "failing": "".join(CIRCLED[k] for k in r.failing) or "—",
        "missing": [f"{m['setting']} @ lr {fmt_lr(m['lr'])}" for m in r.missing],
        "witness": fmt_lr(r.witness_lr),
        "witness_detail": None if witness is None else
        f"{witness.ticket_mean:.2f} ± {witness.ticket_se:.2f} (SE, {witness.seeds} seed{'s' * (witness.seeds != 1)}, "
        f"{witness.epochs} epochs)",
        "grades": {k: v.value for k, v in r.grades.items()},
        "acc_plot": sprite.add(plots.accuracy_plot(r)) if with_plots else None,
        "rp_plot": sprite.add(plots.correlation_plot(r)) if with_plots else None,
        "obs": r.observations,
    }


def render_html(results: Sequence[ClaimResult], errors: Sequence[str] = (), *, title: str = "lth-audit report",
                strict: bool = False, with_plots: bool = True, meta: dict[str, str] | None = None) -> str:
    """The report as a string (see the module docstring)."""
    import jinja2

    from . import plots

    env = jinja2.Environment(loader=jinja2.PackageLoader("lth_audit.report", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    plots.clear_cache()
    sprite = Sprite()
    claims = [_claim_view(i, r, sprite, with_plots) for i, r in enumerate(results)]
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    profiles = sorted({r.profile for r in results})
    metrics = sorted({r.metric for r in results})
    html = env.get_template("report.html.j2").render(
        title=title, claims=claims, counts=counts, total=len(results), errors=list(errors), grid=_grid(results),
        symbols=sprite.symbols, strict=strict, profiles=profiles, metrics=metrics, meta=meta or {},
        statuses=[s.value for s in Status])
    plots.clear_cache()
    return html


def write_html(path: str | os.PathLike[str], results: Sequence[ClaimResult], errors: Sequence[str] = (),
               **kwargs: Any) -> None:
    """Write the report atomically (a reader never sees half a file)."""
    atomic_write_text(path, render_html(results, errors, **kwargs))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # a report is for reading: not the 0600 of the temporary file
