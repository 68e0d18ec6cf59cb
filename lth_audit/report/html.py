"""The HTML report: one self-contained file (inline CSS, JS and SVG) that opens offline.

Built with jinja2, autoescape on: every claim id, arch or record id goes through HTML escaping.
The only unescaped inserts are matplotlib's SVG (which escapes its own text) and the fixed CSS/JS
of the template. The report holds no external URL at all — not even SVG namespace URIs (see
`plots`). Each distinct plot is written once, as a `<symbol>` in a hidden sprite, and every claim
that shows it draws it with `<use href="#…">`, so claims with identical evidence share the bytes.

Many plots (more than `PACK_FROM`) are *packed*: their symbols go, `PACK_SIZE` at a time in claim
order, into gzip + base64 blocks (`<template id="z3">`), and the page's script inflates a block with
the browser's `DecompressionStream` when a plot of it comes near the viewport, then adds its symbols
to the sprite. Plots compress well together (shared axes, legend, styles): about 1 KB a plot instead
of about 12 KB, which keeps a report of a thousand claims at a few MB.
"""

from __future__ import annotations

import base64
import gzip
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audit import ClaimResult
from ..guideline import GuidelineResult
from ..records import InputError, RunRecord
from .curves import draw_curves, sparsity_curves
from .landscape import landscape_svg, load_landscape
from ..records import atomic_write_text
from .summary import extended, table3
from .margins import instability_chart, margin_chart
from .table import CIRCLED, fmt_lr, fmt_margin, fmt_value, status_words

VIEWBOX = {"acc": "0 0 331.2 208.8", "rp": "0 0 259.2 172.8"}
"""The viewBox of each plot kind: its figure size in pt (`plots._canvas`), known before a plot is drawn."""

OUTCOMES = ("passed", "boundary", "failed")
PACK_FROM = 50
"""Pack the plots when the report has more distinct plots than this (a small report stays plain SVG)."""
PACK_SIZE = 25
"""Plots per packed block: big enough to compress well together, small enough to inflate only what is seen."""
_SVG_ROOT = re.compile(r'^<svg viewBox="([^"]*)"[^>]*>(.*)</svg>$', re.S)


@dataclass
class Sprite:
    """The distinct plots of a report: plain `<symbol>`s, or packed blocks of them.

    The layout (which plot goes in which block) follows from the plot keys alone, so the page can be
    written while the plots are still being drawn; `fill` then adds the drawn SVG."""

    kinds: dict[str, str]                                             # key -> "acc" | "rp", in claim order
    packed: bool
    symbols: dict[str, str] = field(default_factory=dict)             # key -> inner SVG of its <symbol>
    legends: dict[str, str] = field(default_factory=dict)             # key -> `<g id=key>` shared by plots
    blocks: list[str] = field(default_factory=list)                   # base64 of gzip of the symbols

    def __post_init__(self) -> None:
        order = list(self.kinds)
        self.block = {k: i // PACK_SIZE for i, k in enumerate(order)} if self.packed else {}

    def plot(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        return {"key": key, "viewbox": VIEWBOX[self.kinds[key]], "z": self.block.get(key)}

    def fill(self, svgs: dict[str, str], legends: dict[str, str]) -> None:
        self.legends = legends
        for key, svg in svgs.items():
            m = _SVG_ROOT.match(svg)
            if m is None or m.group(1) != VIEWBOX[self.kinds[key]]:  # pragma: no cover - matplotlib changed
                raise ValueError("unexpected SVG from matplotlib")
            self.symbols[key] = m.group(2)
        if self.packed:
            for n in range(-(-len(svgs) // PACK_SIZE)):
                part = [k for k, z in self.block.items() if z == n]
                text = "".join(f'<symbol id="{k}" viewBox="{VIEWBOX[self.kinds[k]]}">{self.symbols[k]}</symbol>'
                               for k in part)
                # mtime=0: the same report gives the same bytes
                self.blocks.append(base64.b64encode(gzip.compress(text.encode(), 9, mtime=0)).decode("ascii"))

    def inflate(self) -> str:
        """Every packed symbol as text (for checks: what the browser adds to the page)."""
        return "".join(gzip.decompress(base64.b64decode(b)).decode() for b in self.blocks)


def _fmt_obs(observed: dict[str, Any]) -> str:
    return ", ".join(f"{k} {fmt_value(k, v)}" for k, v in observed.items()) or "—"


def _grid(results: Sequence[ClaimResult]) -> list[dict[str, Any]]:
    """Table 3 of the paper, one row per (arch, dataset): its tickets by verdict, and the observation
    marks of `summary.table3` (the same marks the CLI prints)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for i, r in enumerate(results):
        row = rows.setdefault((r.arch, r.dataset), {
            "arch": r.arch, "dataset": r.dataset, "jackpot": [], "secondary": [], "boundary": [], "none": [],
            "insufficient": [], "outcomes": dict.fromkeys(OUTCOMES, 0)})
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
        row["outcomes"][r.outcome] += 1
    for marks in table3(results):
        rows[(marks.arch, marks.dataset)].update(small_lr=marks.prefers_small_lr, prefers_imp=marks.prefers_imp,
                                                 beats_random=marks.mask_beats_random, stable=marks.stable)
    return sorted(rows.values(), key=lambda r: (r["arch"], r["dataset"]))


def _claim_view(i: int, r: ClaimResult, sprite: Sprite, keys: dict[str, str | None]) -> dict[str, Any]:
    conditions = [{
        "mark": CIRCLED[c.id], "name": c.name, "status": c.status.value, "words": status_words(c),
        "observed": _fmt_obs(c.observed),
        "threshold": ", ".join(f"{k} {fmt_value(k, v)}" for k, v in c.threshold.items()) or "—",
        "margin": fmt_margin(c.margin), "band": "—" if c.band is None else f"±{c.band:.2f}",
        "reference_lr": fmt_lr(c.reference_lr), "best_lr": fmt_lr(c.best_lr),
        "notes": [x for x in (c.noise, c.advice, c.note) if x],
        "ignored": [f"{i['setting']} lr {fmt_lr(i['lr'])} ({i['epochs']} epochs)" for i in c.ignored],
    } for c in r.conditions]
    evidence = sorted({e for c in r.conditions for e in c.evidence})
    witness = next((w for w in r.witnesses if w.lr == r.witness_lr), None)
    detail = None
    if witness is not None:
        se = "no noise estimate" if witness.ticket_se is None else f"± {witness.ticket_se:.2f} (SE)"
        detail = (f"{witness.ticket_mean:.2f} {se}, {witness.seeds} seed{'s' * (witness.seeds != 1)}, "
                  f"{witness.epochs_label} epochs")
    return {
        "n": i, "anchor": f"claim-{i}", "r": r, "conditions": conditions, "evidence": evidence,
        "failing": "".join(CIRCLED[k] for k in r.failing) or "—",
        "missing": [f"{m['setting']} @ lr {fmt_lr(m['lr'])} (≥ {m['epochs']} epochs)" for m in r.missing],
        "witness": fmt_lr(r.witness_lr), "witness_detail": detail,
        "grades": {k: v.value for k, v in r.grades.items()},
        "margins": margin_chart(r.conditions),
        "paths": instability_chart(r.paths, r.witness_lr),
        "acc_plot": sprite.plot(keys.get("acc")),
        "rp_plot": sprite.plot(keys.get("rp")),
        "obs": r.observations,
    }


def _guideline_view(g: GuidelineResult) -> dict[str, Any]:
    return {"g": g, "margin": fmt_margin(g.margin), "band": "—" if g.band is None else f"±{g.band:.2f}",
            "status": "not applicable" if g.status is None else status_words(g),
            "observed": ", ".join(f"{k} {fmt_value(k, v)}" for k, v in g.observed.items() if v is not None) or "—",
            "notes": [x for x in (g.note, g.noise, g.advice) if x]}


def render_html(results: Sequence[ClaimResult], errors: Sequence[str] = (), *, title: str = "lth-audit report",
                strict: bool = False, with_plots: bool = True, meta: dict[str, str] | None = None,
                packed: bool | None = None, workers: int | None = None,
                guideline: Sequence[GuidelineResult] = (), records: Sequence[RunRecord] = (),
                landscapes: Sequence[str | os.PathLike[str]] = ()) -> str:
    """The report as a string (see the module docstring).

    packed: pack the plots (None: when there are more than `PACK_FROM`); workers: processes that
    draw the plots (None: the usable cores; a pool is used only for many plots, see `plots.start`).
    The page is written while the plots are drawn. `records`: the audited runs, for the sparsity curves;
    `landscapes`: sidecars of `lth-audit landscape` to draw (a bad one is listed with the input errors)."""
    import jinja2
    import markupsafe

    from . import plots

    env = jinja2.Environment(loader=jinja2.PackageLoader("lth_audit.report", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    keys, specs = plots.collect(results) if with_plots else ([{} for _ in results], {})
    drawing = plots.start(specs, workers=workers)
    sprite = Sprite({k: kind for k, (kind, _) in specs.items()}, len(specs) > PACK_FROM if packed is None else packed)
    claims = [_claim_view(i, r, sprite, k) for i, (r, k) in enumerate(zip(results, keys))]
    curves = [(c, markupsafe.Markup(draw_curves(c))) for c in sparsity_curves(records)] if with_plots else []
    errors = list(errors)
    figures = []
    for path in landscapes if with_plots else ():
        try:
            land = load_landscape(path)
        except InputError as exc:
            errors.extend(str(p) for p in exc.problems)
            continue
        figures.append((land.title or Path(path).stem, markupsafe.Markup(landscape_svg(land))))
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    profiles = sorted({r.profile for r in results})
    metrics = sorted({r.metric for r in results})
    slot = f"<!--sprite-{os.urandom(8).hex()}-->"  # autoescaped text can never contain it
    page = env.get_template("report.html.j2").render(
        title=title, claims=claims, counts=counts, total=len(results), errors=errors, grid=_grid(results),
        extended=extended(results),
        sprite_slot=markupsafe.Markup(slot), strict=strict, profiles=profiles, metrics=metrics,
        meta=meta or {}, guideline=[_guideline_view(g) for g in guideline],
        curves=curves, landscapes=figures)
    sprite.fill(*drawing.result())
    before, after = page.split(slot)
    return before + env.get_template("sprite.html.j2").render(sprite=sprite) + after


def write_html(path: str | os.PathLike[str], results: Sequence[ClaimResult], errors: Sequence[str] = (),
               **kwargs: Any) -> None:
    """Write the report atomically (a reader never sees half a file)."""
    atomic_write_text(path, render_html(results, errors, **kwargs))
