"""Loss-landscape figures (the paper's Figures 5–6) from `lth-audit landscape`'s JSON sidecar.

The sidecar holds, per run, the plane's grid (a, b), the training loss on it and the projected
trajectory. `landscape_figure` draws them (one subplot per run, one shared log colour scale); the
landscape command saves it as PNG/SVG and the HTML report embeds it as inline SVG. No torch here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..records import InputError, Problem, problems_from_validation


class Trajectory(BaseModel):
    epochs: list[int]
    a: list[float]
    b: list[float]


class LandscapeRun(BaseModel):
    """One run's plane. `loss[j][i]` is the loss at (a[i], b[j]); None where it was not finite."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    a: list[float]
    b: list[float]
    loss: list[list[float | None]]
    trajectory: Trajectory
    explained_variance_ratio: list[float]
    final_loss: float | None = None
    label: str | None = None
    info: dict[str, Any] = {}


class Landscape(BaseModel):
    model_config = ConfigDict(extra="allow")

    title: str | None = None
    runs: list[LandscapeRun]


def load_landscape(path: str | os.PathLike[str]) -> Landscape:
    """Read a sidecar; a bad one is an InputError naming the file and the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError([Problem(str(path), None, None, f"cannot read landscape sidecar: {exc}")]) from exc
    try:
        return Landscape.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_from_validation(str(path), None, exc)) from exc


def color_range(runs: Sequence[LandscapeRun]) -> tuple[float, float]:
    """The shared log colour scale: the lowest finite loss (at least 1e-4) to the highest."""
    finite = [v for r in runs for row in r.loss for v in row if v is not None and math.isfinite(v)]
    lo = max(min(finite), 1e-4)
    return lo, max(max(finite), lo * 1.01)


def landscape_figure(runs: Sequence[LandscapeRun], title: str | None = None, cols: int | None = None) -> Any:
    """A matplotlib Figure (no pyplot): contours of every run's plane with its trajectory on top."""
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    n = len(runs)
    cols = cols or (n if n <= 3 else 2 if n == 4 else min(4, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    grids = [np.array([[np.nan if v is None else v for v in row] for row in r.loss], dtype=float) for r in runs]
    lo, hi = color_range(runs)
    levels = np.geomspace(lo, hi, 30)
    norm = LogNorm(vmin=lo, vmax=hi)
    fig = Figure(figsize=(4.2 * cols + 0.8, 3.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    cs = None
    for ax, r, g in zip(axes.flat, runs, grids):
        a, b = np.meshgrid(r.a, r.b)
        gc = np.clip(g, lo, hi)
        cs = ax.contourf(a, b, gc, levels=levels, norm=norm, cmap="viridis")
        ax.contour(a, b, gc, levels=levels[::3], norm=norm, colors="k", linewidths=0.4, alpha=0.5)
        t = r.trajectory
        ax.plot(t.a, t.b, "-", color="w", lw=1.4)
        ax.plot(t.a, t.b, "o", color="tab:red", ms=3)
        ax.plot(t.a[0], t.b[0], "s", color="tab:orange", ms=6, label=f"epoch {t.epochs[0]}")
        ax.plot(t.a[-1], t.b[-1], "*", color="tab:red", ms=11, mec="w", label=f"epoch {t.epochs[-1]}")
        ev = r.explained_variance_ratio
        ax.set_xlabel(f"PC1 ({100 * ev[0]:.1f} % var.)")
        ax.set_ylabel(f"PC2 ({100 * ev[1]:.1f} % var.)")
        extra = (f"\ntop-1 {r.info['top1']:.1f} %, train loss {r.final_loss:.3f}"
                 if "top1" in r.info and r.final_loss is not None else "")
        ax.set_title(f"{r.label or r.run_id}{extra}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if cs is not None:
        bar = fig.colorbar(cs, ax=axes, shrink=0.9)
        ticks = [t for t in (1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000) if lo <= t <= hi]
        bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        bar.minorticks_off()
        bar.set_label("training loss (log scale)")
    if title:
        fig.suptitle(title)
    return fig


def landscape_svg(landscape: Landscape) -> str:
    """The figure as lean inline SVG for the HTML report (no namespaces, no external reference)."""
    import io

    import matplotlib as mpl

    from .plots import STYLE, _lean_svg

    buf = io.StringIO()
    with mpl.rc_context(STYLE):
        landscape_figure(landscape.runs, landscape.title).savefig(buf, format="svg")
    return _lean_svg(buf.getvalue())
