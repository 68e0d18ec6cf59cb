"""Two small per-claim charts drawn as inline SVG by the report template from the geometry computed here
(no matplotlib: each is a handful of shapes, and they must stay cheap for a thousand claims).

* The margin chart: each condition's margin at the witness, with its band, against zero. A condition
  holds right of zero (② ③ strictly), fails left of it; the band around the margin is the noise it was
  graded with: a margin inside its band is boundary (holding) or a failure within noise.
* The instability chart (SPEC §6, Frankle et al. 2020): test error along the straight line between each
  witness run's final weights and its twin's; the instability is the rise above the two ends' mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..conditions import ConditionResult, Status
from .table import CIRCLED, fmt_margin

WIDTH, ROW, TOP, BOTTOM = 440, 17, 16, 20
LABEL_W, PLOT_W = 22, 200
"""Geometry in SVG user units: a label column, the plot, then the words."""


@dataclass(frozen=True)
class MarginRow:
    mark: str
    y: float
    x: float | None           # the margin's position; None: no margin (missing, or ①)
    band: tuple[float, float] | None
    kind: str                 # holds | boundary | within | fails | missing
    words: str


@dataclass(frozen=True)
class MarginChart:
    width: int
    height: int
    zero: float
    left: float
    right: float
    extent: float             # the plot spans -extent .. +extent pp
    rows: list[MarginRow]

    @property
    def ticks(self) -> list[tuple[float, str]]:
        return [(self.left, f"{-self.extent:g}"), (self.zero, "0"), (self.right, f"+{self.extent:g}")]


def _kind(c: ConditionResult) -> str:
    if c.status is Status.MISSING:
        return "missing"
    if c.margin is None:
        return "requirement"
    if c.status is Status.PASS:
        return "holds"
    if c.status is Status.BOUNDARY:
        return "boundary"
    return "within" if c.within_noise else "fails"


WORDS = {"holds": "holds", "boundary": "holds, inside the band", "within": "fails, within noise",
         "fails": "fails", "missing": "missing evidence"}


def _nice(x: float) -> float:
    """The smallest of 0.5 and 1, 1.5, 2, 3, 5, 7.5 × 10^k that is at least x: a round axis end."""
    if x <= 0.5:
        return 0.5
    exp = math.floor(math.log10(x))
    return next(m * 10.0 ** exp for m in (1, 1.5, 2, 3, 5, 7.5, 10) if m * 10.0 ** exp >= x)


def margin_chart(conditions: Sequence[ConditionResult]) -> MarginChart | None:
    """Geometry of the chart for the conditions at the witness; None when no condition has a margin."""
    banded = [c for c in conditions if c.margin is not None]
    if not banded:
        return None
    extent = _nice(max(abs(c.margin) + (c.band or 0.0) for c in banded) * 1.02)
    left, right = LABEL_W, LABEL_W + PLOT_W

    def x(v: float) -> float:
        v = max(-extent, min(extent, v))
        return round(left + (v + extent) / (2 * extent) * PLOT_W, 2)

    rows = []
    for i, c in enumerate(conditions):
        kind = _kind(c)
        y = TOP + i * ROW + ROW / 2
        if c.margin is None:
            if kind == "requirement":
                kind = "holds" if c.status is Status.PASS else "fails"
                words = "passes" if c.status is Status.PASS else "fails"
            else:
                words = WORDS[kind]
            rows.append(MarginRow(CIRCLED[c.id], y, None, None, kind, words))
            continue
        band = None if c.band is None else (x(c.margin - c.band), x(c.margin + c.band))
        tail = f" ±{c.band:.2f}" if c.band is not None else " (no band: one run)" if c.noise else ""
        rows.append(MarginRow(CIRCLED[c.id], y, x(c.margin), band, kind,
                              f"{fmt_margin(c.margin)}{tail} {WORDS[kind]}"))
    return MarginChart(WIDTH, TOP + len(conditions) * ROW + BOTTOM, x(0.0), left, right, extent, rows)


@dataclass(frozen=True)
class PathChart:
    width: int
    height: int
    lines: list[str]                        # SVG polyline points, one per run
    yticks: list[tuple[float, str]]
    xticks: list[tuple[float, str]]
    left: float
    right: float
    top: float
    bottom: float


def instability_chart(paths: Sequence[dict], witness_lr: float | None) -> PathChart | None:
    """Geometry of the error-along-the-path lines of the witness's runs; None when none is recorded."""
    runs = [p for p in paths if p["lr"] == witness_lr]
    if not runs:
        return None
    width, height, left, right, top, bottom = 300, 150, 34, 290, 10, 124
    errors = [e for p in runs for e in p["error"]]
    lo, hi = min(errors), max(errors)
    pad = max(0.5, 0.1 * (hi - lo))
    lo, hi = max(0.0, lo - pad), min(100.0, hi + pad)

    def pt(a: float, e: float) -> str:
        x = left + a * (right - left)
        y = bottom - (e - lo) / (hi - lo) * (bottom - top)
        return f"{x:.1f},{y:.1f}"

    lines = [" ".join(pt(a, e) for a, e in zip(p["alpha"], p["error"])) for p in runs]
    yticks = [(round(bottom - (v - lo) / (hi - lo) * (bottom - top), 1), f"{v:.1f}") for v in (lo, (lo + hi) / 2, hi)]
    xticks = [(left + a * (right - left), label) for a, label in ((0.0, "run"), (0.5, "0.5"), (1.0, "twin"))]
    return PathChart(width, height, lines, yticks, xticks, left, right, top, bottom)
