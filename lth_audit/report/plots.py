"""Inline SVG plots for the HTML report, drawn with matplotlib (Agg, text kept as text).

* `accuracy_plot`: the paper's Figure 3 — accuracy vs learning rate (log x) for pretraining, the
  ticket (LT), its random reinitialisation (RR) and the small-dense network (SDT) at the claim's
  sparsity, with the seed spread (min–max of the seeds) as error bars and the thresholds as bands.
* `correlation_plot`: Figure 4 — R_p vs learning rate for LT and RR, with a line at p.

No pyplot: each plot is a bare `Figure`, so no global backend is touched.
Plots are cached by what they show (cells, thresholds, witness), so claims with identical evidence
share one SVG. The SVG is made lean and offline-safe: no XML prolog, no metadata, no namespace
declarations (an inline `<svg>` in HTML is in the SVG namespace without them), so the report holds
no `http://` string at all. Importing this module imports matplotlib; only the HTML writer does.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

from ..audit import ClaimResult

STYLE = {
    "svg.fonttype": "none",       # text as <text>, not glyph paths: small and searchable
    "svg.hashsalt": "lth-audit",  # deterministic ids: the same input gives byte-identical output
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # the report's CSS picks the face; the SVG names none
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "legend.frameon": False,
    "path.simplify": True,
}

SERIES = {  # setting prefix -> (label, colour, marker)
    "pretrain": ("pretrain", "#444444", "s"),
    "lt": ("LT", "#d62728", "o"),
    "wr": ("WR", "#d62728", "o"),
    "rr": ("RR", "#1f77b4", "^"),
    "sdt": ("SDT", "#2ca02c", "D"),
}

_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.S)
_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_STYLE_CDATA = re.compile(r"<style[^>]*>.*?</style>\s*", re.S)
_WS = re.compile(r">\s+<")
_G_ID = re.compile(r'<g id="[^"]*"')
_ATTR = re.compile(r'"[^"<>]*"')
_NUM = re.compile(r"(\d\.\d)\d+")
_NL = re.compile(r"\s*\n\s*")
_FONT_FAMILY = re.compile(r"font-family: [^;\"]*(; )?")
_NO_ROTATE = re.compile(r' transform="rotate\(-?0 [^)]*\)"')
_G_TAG = re.compile(r"<g>|</g>|<g\b[^>]*>")


def _drop_bare_groups(svg: str) -> str:
    """Remove `<g>` wrappers without attributes (matplotlib nests three deep per tick), keeping the others."""
    out = []
    stack: list[bool] = []
    pos = 0
    for m in _G_TAG.finditer(svg):
        out.append(svg[pos:m.start()])
        tag = m.group(0)
        if tag == "</g>":
            if stack.pop():
                out.append(tag)
        elif tag == "<g>":
            stack.append(False)
        else:
            stack.append(True)
            out.append(tag)
        pos = m.end()
    out.append(svg[pos:])
    return "".join(out)

_cache: dict[str, str] = {}
"""SVG text by plot key: the sharing between claims (bounded by the report size, cleared per report)."""


def clear_cache() -> None:
    _cache.clear()


def _lean_svg(raw: str) -> str:
    svg = _PROLOG.sub("", raw, count=1)
    svg = _METADATA.sub("", svg)
    svg = _COMMENT.sub("", svg)
    svg = _STYLE_CDATA.sub("", svg)
    svg = _XMLNS.sub("", svg)
    svg = svg.replace("xlink:href=", "href=")
    svg = _G_ID.sub("<g", svg)
    # 0.1 pt is finer than a screen pixel; only inside attribute values, never in visible text.
    svg = _ATTR.sub(lambda m: _NUM.sub(r"\1", m.group(0)), svg)
    svg = _NL.sub(" ", svg)
    svg = _WS.sub("><", svg)
    svg = _FONT_FAMILY.sub("", svg)
    svg = _NO_ROTATE.sub("", svg)
    svg = _drop_bare_groups(svg).replace("<defs></defs>", "")
    # Drop the fixed pt size so the plot scales with its container; the viewBox keeps the aspect.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1', svg, count=1)
    return svg.strip()


def _render(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return _lean_svg(buf.getvalue())


def _key(kind: str, payload: Any) -> str:
    return kind + hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _lr_axis(ax: Any, lrs: Sequence[float]) -> None:
    """Log x with a tick at every swept lr, labelled plainly (no mathtext: it is slow and heavy)."""
    ax.set_xscale("log")
    ticks = sorted(set(lrs))
    if len(ticks) > 8:
        ticks = ticks[:: -(-len(ticks) // 8)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{x:g}" for x in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    lo, hi = min(lrs), max(lrs)
    pad = max(1.25, (hi / lo) ** 0.06)  # keep end markers and error bars off the frame
    ax.set_xlim(lo / pad / (1.6 if lo == hi else 1), hi * pad * (1.6 if lo == hi else 1))


def _series_of(setting: str) -> tuple[str, str, str]:
    return SERIES["pretrain" if setting == "pretrain" else "sdt" if setting == "sdt" else setting.split("-")[0]]


def accuracy_key(r: ClaimResult) -> str | None:
    """The cache key of a claim's Figure 3 plot, None when the claim has no cells to draw."""
    if not r.cells:
        return None
    return _key("acc", {"cells": [c.model_dump(mode="json") for c in r.cells], "setting": r.setting,
                        "similar": r.thresholds.similar, "gap": r.thresholds.gap,
                        "sufficient": r.thresholds.sufficient_epochs, "witness": r.witness_lr,
                        "sparsity": r.sparsity})


def accuracy_plot(r: ClaimResult) -> tuple[str, str] | None:
    """(key, svg) of the Figure 3 plot for a claim; shared between claims with identical evidence."""
    key = accuracy_key(r)
    if key is None:
        return None
    if key not in _cache:
        _cache[key] = _draw_accuracy(r)
    return key, _cache[key]


def _draw_accuracy(r: ClaimResult) -> str:
    th = r.thresholds
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(4.6, 2.9))
        ax = fig.subplots()
        groups: dict[tuple[str, int], list] = {}
        for c in r.cells:
            groups.setdefault((c.setting, c.epochs), []).append(c)
        multi_epochs = {s for s, _ in groups if sum(1 for t, _ in groups if t == s) > 1}
        for (setting, epochs), cells in sorted(groups.items(), key=lambda kv: (kv[0][0] != "pretrain", kv[0])):
            cells.sort(key=lambda c: c.lr)
            label, colour, marker = _series_of(setting)
            if setting.startswith(("lt-", "wr-", "rr-")):
                label = setting.upper()
            if setting in multi_epochs or (epochs < th.sufficient_epochs):
                label += f" ({epochs} ep)"
            xs = [c.lr for c in cells]
            ys = [c.mean for c in cells]
            lo = [max(0.0, c.mean - min(c.values)) for c in cells]  # fsum mean vs min: no -1e-16
            hi = [max(0.0, max(c.values) - c.mean) for c in cells]
            short = epochs < th.sufficient_epochs
            ax.errorbar(xs, ys, yerr=[lo, hi], label=label, color=colour, marker=marker, markersize=3.5,
                        linewidth=1.1, capsize=2, elinewidth=0.7, linestyle=":" if short else "-",
                        markerfacecolor="white" if short else colour)
        well = [c for c in r.cells if c.setting == "pretrain" and c.epochs >= th.sufficient_epochs]
        if well:
            best = max(c.mean for c in well)
            ax.axhspan(best - th.similar, best, color="#888888", alpha=0.18, linewidth=0,
                       label=f"⑤ best pretrain − {th.similar:g}")
        rr = [c for c in r.cells if c.setting.startswith("rr-")]
        if rr:
            best_rr = max(c.mean for c in rr)
            ax.axhspan(best_rr, best_rr + th.gap, color="#1f77b4", alpha=0.12, linewidth=0,
                       label=f"③ best RR + {th.gap:g}")
        sdt = [c for c in r.cells if c.setting == "sdt"]
        if sdt:
            best_sdt = max(c.mean for c in sdt)
            ax.axhline(best_sdt + th.gap, color="#2ca02c", linewidth=0.7, linestyle="--",
                       label=f"② best SDT + {th.gap:g}")
        if r.witness_lr is not None:
            ax.axvline(r.witness_lr, color="#d62728", linewidth=0.6, alpha=0.5, linestyle="-.")
        _lr_axis(ax, [c.lr for c in r.cells])
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"top-1 accuracy (%) · {r.metric}")
        ax.set_title(f"{r.arch} / {r.dataset}, s = {r.sparsity:g}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.subplots_adjust(left=0.11, right=0.66, bottom=0.15, top=0.91)  # tight_layout would draw twice
        return _render(fig)


def correlation_key(r: ClaimResult) -> str | None:
    if not r.r_p:
        return None
    return _key("rp", {"rows": r.r_p, "setting": r.setting})


def correlation_plot(r: ClaimResult) -> tuple[str, str] | None:
    """(key, svg) of the Figure 4 style R_p plot, None when no record carries R_p."""
    key = correlation_key(r)
    if key is None:
        return None
    if key not in _cache:
        _cache[key] = _draw_correlation(r.r_p, r.setting)
    return key, _cache[key]


def _draw_correlation(rows: Sequence[dict[str, float]], setting: str) -> str:
    method = setting.split("-")[1].upper()
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(3.6, 2.4))
        ax = fig.subplots()
        for reinit, label, colour, marker in ((0.0, f"LT-{method}", "#d62728", "o"),
                                              (1.0, f"RR-{method}", "#1f77b4", "^")):
            pts: dict[float, list[float]] = {}
            for row in rows:
                if row["reinit"] == reinit:
                    pts.setdefault(row["lr"], []).append(row["value"])
            if not pts:
                continue
            xs = sorted(pts)
            means = [sum(pts[x]) / len(pts[x]) for x in xs]
            lo = [max(0.0, m - min(pts[x])) for m, x in zip(means, xs)]
            hi = [max(0.0, max(pts[x]) - m) for m, x in zip(means, xs)]
            ax.errorbar(xs, means, yerr=[lo, hi], label=label, color=colour, marker=marker, markersize=3.5,
                        linewidth=1.1, capsize=2, elinewidth=0.7)
        for p in sorted({row["p"] for row in rows}):
            ax.axhline(p, color="#444444", linewidth=0.7, linestyle="--", label=f"p = {p:g} (no correlation)")
        _lr_axis(ax, [row["lr"] for row in rows])
        ax.set_xlabel("learning rate")
        ax.set_ylabel("R_p")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5)
        fig.subplots_adjust(left=0.15, right=0.97, bottom=0.18, top=0.95)
        return _render(fig)
