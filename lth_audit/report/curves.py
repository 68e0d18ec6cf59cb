"""Sparsity curves (the paper's Figure 1 / D.x): accuracy against sparsity, one line per learning rate.

For each (arch, dataset) of the audited records: LT (solid) and RR (dashed) per pruning method, each
learning rate in its own colour, pretraining as a dotted horizontal line in that colour; error bars
are the seed spread (min–max). Records of every epoch budget are pooled per (setting, lr, sparsity).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..records import RunRecord

METHODS = ("imp", "omp")


@dataclass(frozen=True)
class Point:
    sparsity: float
    mean: float
    lo: float
    hi: float


@dataclass(frozen=True)
class CurveSet:
    """Everything one Figure-1 panel row shows for one (arch, dataset)."""

    arch: str
    dataset: str
    lrs: tuple[float, ...]
    pretrain: dict[float, Point]                            # lr -> dense accuracy
    lines: dict[tuple[str, float], tuple[Point, ...]]       # (setting, lr) -> points by sparsity

    @property
    def methods(self) -> list[str]:
        return [m for m in METHODS if any(s.endswith(m) for s, _ in self.lines)]


def _point(sparsity: float, values: Sequence[float]) -> Point:
    return Point(sparsity, math.fsum(values) / len(values), min(values), max(values))


def sparsity_curves(records: Iterable[RunRecord]) -> list[CurveSet]:
    """Curves for every (arch, dataset) that has LT or RR records at two or more sparsities."""
    groups: dict[tuple[str, str], dict[tuple[str, float, float], list[float]]] = {}
    for r in records:
        if r.setting.value == "pretrain" or r.setting.value[:3] in ("lt-", "rr-"):
            cell = groups.setdefault((r.arch, r.dataset), {})
            cell.setdefault((r.setting.value, r.lr, round(r.sparsity, 3)), []).append(r.top1)
    out = []
    for (arch, dataset), cells in sorted(groups.items()):
        lines: dict[tuple[str, float], list[Point]] = {}
        pretrain = {}
        for (setting, lr, s), values in sorted(cells.items()):
            if setting == "pretrain":
                pretrain[lr] = _point(0.0, values)
            else:
                lines.setdefault((setting, lr), []).append(_point(s, values))
        if len({p.sparsity for pts in lines.values() for p in pts}) < 2:
            continue
        lrs = tuple(sorted({lr for _, lr in lines} | set(pretrain)))
        out.append(CurveSet(arch, dataset, lrs, pretrain, {k: tuple(v) for k, v in lines.items()}))
    return out


def draw_curves(c: CurveSet) -> str:
    """One lean inline SVG: a panel per pruning method present."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    import matplotlib as mpl

    from .plots import STYLE, _lean_svg

    with mpl.rc_context(STYLE):
        methods = c.methods
        fig = Figure(figsize=(3.4 * len(methods) + 1.2, 2.8))
        axes = fig.subplots(1, len(methods), squeeze=False, sharey=True)[0]
        cmap = colormaps["viridis"]
        colour = {lr: cmap(i / max(len(c.lrs) - 1, 1) * 0.9) for i, lr in enumerate(c.lrs)}
        top = max(p.hi for pts in c.lines.values() for p in pts)
        xmax = max(p.sparsity for pts in c.lines.values() for p in pts)
        for ax, method in zip(axes, methods):
            for (setting, lr), pts in sorted(c.lines.items()):
                if not setting.endswith(method):
                    continue
                lt = setting.startswith("lt-")
                ax.errorbar([p.sparsity for p in pts], [p.mean for p in pts],
                            yerr=[[p.mean - p.lo for p in pts], [p.hi - p.mean for p in pts]],
                            color=colour[lr], linestyle="-" if lt else "--", marker="o" if lt else "^",
                            markersize=3, linewidth=1, elinewidth=0.6, capsize=1.5,
                            label=f"{'LT' if lt else 'RR'} lr {lr:g}")
            for lr, p in c.pretrain.items():
                ax.axhline(p.mean, color=colour[lr], linestyle=":", linewidth=1)
                top = max(top, p.mean)
            ax.set_title(f"{c.arch} / {c.dataset}: {method.upper()}", fontsize=8)
            ax.set_xlabel("sparsity")
            ax.set_xlim(-0.02, xmax + 0.05)
        axes[0].set_ylabel("top-1 accuracy (%)")
        lows = [p.lo for pts in c.lines.values() for p in pts] + [p.lo for p in c.pretrain.values()]
        axes[0].set_ylim(min(lows) - 1.0, top + 1.5)
        handles, labels = axes[-1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center right", fontsize=6)
        fig.subplots_adjust(left=0.09, right=1 - 1.1 / fig.get_figwidth(), bottom=0.16, top=0.9, wspace=0.08)
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    return _lean_svg(buf.getvalue())
