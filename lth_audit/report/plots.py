"""Inline SVG plots for the HTML report, drawn with matplotlib (Agg, text kept as text).

* Figure 3 (`accuracy_spec`): accuracy vs learning rate (log x) for pretraining, the ticket (LT), its
  random reinitialisation (RR), the small-dense network (SDT) and random pruning (RP, SPEC §6) at the
  claim's sparsity, with the seed
  spread (min–max of the seeds) as error bars and the thresholds as bands.
* Figure 4 (`correlation_spec`): R_p vs learning rate for LT and RR, with a line at p: against the
  pretrained θT (the paper's pairing, solid) where records carry it, else against each run's own θT
  (dotted, older records); the legend says which.

A claim is first reduced to a *spec*: the plain numbers and labels its plot shows. The spec is the
plot's identity (claims with identical evidence share one plot, keyed by a hash of the spec) and what
`draw` turns into SVG, in this process or in worker processes (`draw_all`, for many plots).

Speed (~13 ms of CPU a plot instead of ~50): figures are reused, one per kind of plot and set of
artists (a fresh figure, its axes and ticks cost about as much as drawing): a plot with the same
artists as the one before only moves their data. Parts that many plots draw identically — the legend
and the lr axis — are drawn once per key and shown with `<use href>` (`_parts`). Many plots are drawn
in a process pool over the cores (`start`). No pyplot: no global backend is touched. Whatever was
drawn before, a plot comes out byte-identical.

The SVG is made lean and offline-safe: no XML prolog, no metadata, no namespace declarations (an
inline `<svg>` in HTML is in the SVG namespace without them), no clip paths (everything drawn lies
inside the axes), coordinates at 0.1 pt, so the report holds no `http://` string and no `url(` at all.
Importing this module imports matplotlib; only the HTML writer does.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
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
    "text.parse_math": False,     # run ids, archs and data sets are text: `$x$` in one is not maths
}

SERIES = {  # setting prefix -> (label, colour, marker)
    "pretrain": ("pretrain", "#444444", "s"),
    "lt": ("LT", "#d62728", "o"),
    "wr": ("WR", "#d62728", "o"),
    "rr": ("RR", "#1f77b4", "^"),
    "sdt": ("SDT", "#2ca02c", "D"),
    "rp": ("RP", "#9467bd", "v"),
}

POOL_MIN = 50
"""Draw in a process pool only from this many distinct plots on (a pool costs ~0.3 s to start)."""

_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.S)
_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_STYLE_CDATA = re.compile(r"<style[^>]*>.*?</style>\s*", re.S)
_CLIP_DEF = re.compile(r"<defs>\s*<clipPath\b.*?</clipPath>\s*</defs>|<clipPath\b.*?</clipPath>", re.S)
_CLIP_ATTR = re.compile(r'\s+clip-path="[^"]*"')
_WS = re.compile(r">\s+<")
_G_ID = re.compile(r'<g id="[^"]*"')
_GEOM = re.compile(r'\b(d|x|y|width|height|transform)="([^"]*)"')
_NUM = re.compile(r"(-?\d+\.\d)\d+")
_TRAILING_ZERO = re.compile(r"(\d)\.0\b")
_NL = re.compile(r"\s*\n\s*")
_FONT_FAMILY = re.compile(r"font-family: [^;\"]*(; )?")
_NO_ROTATE = re.compile(r' transform="rotate\(-?0 [^)]*\)"')
_DASH_OFFSET = re.compile(r"stroke-dashoffset: 0; ")
_PATH_SPACES = re.compile(r' ?([MLCZz]) ')
_G_TAG = re.compile(r"<g>|</g>|<g\b[^>]*(?<!/)>")   # self-closing <g .../> groups are not nesting


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


def _geom(m: re.Match) -> str:
    """0.1 pt coordinates (finer than a screen pixel), `12.0` as `12`, compact path commands."""
    value = _TRAILING_ZERO.sub(r"\1", _NUM.sub(r"\1", m.group(2)))
    if m.group(1) == "d":
        value = _PATH_SPACES.sub(r"\1", value).strip()
    return f'{m.group(1)}="{value}"'


def _lean_svg(raw: str) -> str:
    svg = _PROLOG.sub("", raw, count=1)
    svg = _METADATA.sub("", svg)
    svg = _COMMENT.sub("", svg)
    svg = _STYLE_CDATA.sub("", svg)
    svg = _XMLNS.sub("", svg)
    svg = svg.replace("xlink:href=", "href=")
    svg = _CLIP_DEF.sub("", svg)
    svg = _CLIP_ATTR.sub("", svg)
    svg = _G_ID.sub("<g", svg)
    svg = _NL.sub(" ", svg)
    svg = _WS.sub("><", svg)
    svg = _FONT_FAMILY.sub("", svg)
    svg = _NO_ROTATE.sub("", svg)
    svg = _DASH_OFFSET.sub("", svg)
    # Only geometry is rounded: never visible text, never a style value such as an opacity.
    svg = _GEOM.sub(_geom, svg)
    svg = _drop_bare_groups(svg).replace("<defs></defs>", "").replace("<g/>", "")
    # Drop the fixed pt size so the plot scales with its container; the viewBox keeps the aspect.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1', svg, count=1)
    return svg.strip()


def _key(kind: str, spec: Any) -> str:
    return kind + hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _series_of(setting: str) -> tuple[str, str, str]:
    return SERIES["pretrain" if setting == "pretrain" else "sdt" if setting == "sdt" else setting.split("-")[0]]


# --- specs: what a plot shows, as plain data -------------------------------------------------------

def deciding_window(r: ClaimResult) -> list[float] | None:
    """The accuracy range Figure 3 zooms to: the witness's cells and every value a condition compared at
    it (ticket, reference, reference ± threshold), padded. None without a witness (then: every cell)."""
    if r.witness_lr is None:
        return None
    ys = [c.mean for c in r.cells if c.lr == r.witness_lr]
    for c in r.conditions:
        ticket, ref = c.observed.get("ticket"), c.observed.get("reference")
        ys += [v for v in (ticket, ref) if v is not None]
        if ref is not None:
            ys += [ref + v if k == "gap" else ref - v for k, v in c.threshold.items() if k in ("gap", "similar")]
    if not ys:
        return None
    lo, hi = min(ys), max(ys)
    pad = max(0.3, 0.25 * (hi - lo))
    return [round(lo - pad, 6), round(hi + pad, 6)]


def accuracy_spec(r: ClaimResult) -> tuple[str, dict[str, Any]] | None:
    """(key, spec) of a claim's Figure 3 plot, None when the claim has no cells to draw."""
    if not r.cells:
        return None
    th = r.thresholds
    cells = sorted(([c.setting, c.epochs, c.lr, c.mean, min(c.values), max(c.values)] for c in r.cells),
                   key=lambda c: (c[0] != "pretrain", c[0], c[1], c[2]))
    spec = {"cells": cells, "similar": th.similar, "gap": th.gap, "sufficient": th.sufficient_epochs,
            "witness": r.witness_lr, "ylabel": f"top-1 accuracy (%) · {r.metric}",
            "title": f"{r.arch} / {r.dataset}, s = {r.sparsity:g}", "window": deciding_window(r)}
    return _key("acc", spec), spec


def correlation_spec(r: ClaimResult) -> tuple[str, dict[str, Any]] | None:
    """(key, spec) of the Figure 4 style R_p plot, None when no record carries R_p."""
    if not r.r_p:
        return None
    method = r.setting.split("-")[1].upper()
    series = []
    for reinit, name, colour, marker in ((0.0, f"LT-{method}: θ0", "#d62728", "o"),
                                         (1.0, f"RR-{method}: θ'0", "#1f77b4", "^")):
        for pairing, against, style in (("pretrained", "pretrained θT", "-"), ("own", "its own θT", ":")):
            pts: dict[float, list[float]] = {}
            for row in r.r_p:
                if row["reinit"] == reinit and row["pairing"] == pairing:
                    pts.setdefault(row["lr"], []).append(row["value"])
            if pts:
                xs = sorted(pts)
                rows = [[x, sum(pts[x]) / len(pts[x]), min(pts[x]), max(pts[x])] for x in xs]
                series.append([f"{name} vs {against}", colour, marker, style, rows])
    spec = {"series": series, "p": sorted({row["p"] for row in r.r_p}), "lrs": sorted({row["lr"] for row in r.r_p})}
    return _key("rp", spec), spec


# --- drawing on a reused figure ---------------------------------------------------------------------

class _Canvas:
    """One figure and axes of a plot kind, reused: a plot with the same artists as the previous one only
    moves their data; otherwise the previous plot's artists are removed and its own are made."""

    def __init__(self, figsize: tuple[float, float], adjust: dict[str, float]) -> None:
        self.fig = Figure(figsize=figsize)
        self.ax = self.fig.subplots()
        self.fig.subplots_adjust(**adjust)  # fixed margins: tight_layout would draw twice
        self.ax.set_xscale("log")
        self.ax.xaxis.set_minor_locator(NullLocator())
        self.ax.set_xlabel("learning rate")
        self.ax.tick_params(labelsize=7)
        self.owned: list[Any] = []
        self.signature: Any = None
        # Where matplotlib puts the x label depends only on the height of the lr tick labels, which is the
        # same for every plot: find it once with a draw and pin it (saves a tick-label layout per plot).
        self.lr_axis([0.1])
        self.fig.savefig(io.StringIO(), format="svg")
        x, y = self.ax.xaxis.label.get_position()
        self.ax.xaxis.set_label_coords(x, y, transform=self.ax.xaxis.label.get_transform())

    def reset(self, signature: Any = None) -> Any:
        for artist in self.owned:
            artist.remove()
        self.owned.clear()
        if self.ax.legend_ is not None:
            self.ax.legend_.remove()
        self.signature = signature
        return self.ax

    def lr_axis(self, lrs: Sequence[float]) -> None:
        """Log x with a tick at every swept lr, labelled plainly (no mathtext: it is slow and heavy)."""
        ax = self.ax
        ticks = sorted(set(lrs))
        if len(ticks) > 8:
            ticks = ticks[:: -(-len(ticks) // 8)]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FixedFormatter([f"{x:g}" for x in ticks]))
        lo, hi = min(lrs), max(lrs)
        pad = max(1.25, (hi / lo) ** 0.06)  # keep end markers and error bars off the frame
        xlim = (lo / pad / (1.6 if lo == hi else 1), hi * pad * (1.6 if lo == hi else 1))
        ax.set_xlim(*xlim)
        self.lr_key = [self.fig.get_size_inches().tolist(), ticks, xlim]  # all the lr axis depends on

    def save(self, shared: dict[str, Any], ydata: tuple[float, float] | None = None, fixed: bool = False) -> str:
        """The lean SVG.

        shared: {key: artist} parts that many plots draw identically (the legend, the lr axis): each is
        drawn once per key, kept in `_parts`, and the SVG shows it with `<use href="#key">`.
        ydata: the y extent of everything drawn, when the caller knows it: the y limits are then what
        autoscaling (5 % margins) makes of it, without matplotlib walking every artist to find it.
        fixed: the caller has set the y limits (a zoomed plot)."""
        ax = self.ax
        if fixed:
            pass  # the caller set the y limits
        elif ydata is not None and ydata[1] > ydata[0]:
            margin = (ydata[1] - ydata[0]) * mpl.rcParams["axes.ymargin"]
            ax.set_ylim(ydata[0] - margin, ydata[1] + margin)
        else:
            ax.set_autoscaley_on(True)
            ax.relim()
            ax.autoscale_view(scalex=False)
        fresh = [key for key in shared if key not in _parts]
        for key, artist in shared.items():
            artist.set_visible(key in fresh)
            artist.set_gid(key)
        buf = io.StringIO()
        self.fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
        raw = buf.getvalue()
        for key in fresh:
            raw = _cut_part(raw, key)
        svg = _lean_svg(raw)
        return svg[:-len("</svg>")] + "".join(f'<use href="#{key}"/>' for key in shared) + "</svg>"


_canvases: dict[Any, _Canvas] = {}
"""Canvases by plot kind and signature (the artists a plot needs), most recent last: a report mixing a few
kinds of plot (with or without SDT, short runs, …) keeps one canvas for each instead of rebuilding."""
_CANVASES_MAX = 8
_parts: dict[str, str] = {}
"""Shared parts (`<g id=key>`, self-contained) by key: identical in every plot with the same key."""

_MARKER_DEF = re.compile(r'<path id="(m[0-9a-f]+)"[^>]*/>')
_HREF = re.compile(r'href="#(m[0-9a-f]+)"')
_G_OPEN_CLOSE = re.compile(r"<g\b[^>]*(?<!/)>|</g>")


def _with_shapes(body: str, raw: str) -> str:
    """body, preceded by the marker shapes it uses but does not define (found in raw)."""
    have = set(_MARKER_DEF.findall(body))
    shapes = {m.group(1): m.group(0) for m in _MARKER_DEF.finditer(raw)}
    need = [shapes[i] for i in dict.fromkeys(_HREF.findall(body)) if i not in have and i in shapes]
    return ("<defs>" + "".join(need) + "</defs>" if need else "") + body


def _cut_part(raw: str, key: str) -> str:
    """Move the group `<g id=key>` out of a raw SVG into `_parts[key]`; each side keeps the shapes it uses."""
    start = raw.index(f'<g id="{key}">')
    depth, end = 0, start
    for m in _G_OPEN_CLOSE.finditer(raw, start):
        depth += -1 if m.group(0) == "</g>" else 1
        if depth == 0:
            end = m.end()
            break
    group = raw[start + len(f'<g id="{key}">'):end - len("</g>")]
    inner = _lean_svg(f"<svg>{_with_shapes(group, raw)}</svg>")
    _parts[key] = f'<g id="{key}">{inner[len("<svg>"):-len("</svg>")]}</g>'
    rest = raw[:start] + raw[end:]
    head = rest.index(">", rest.index("<svg")) + 1
    return rest[:head] + _with_shapes(rest[head:], raw)


def _canvas(kind: str, signature: Any = None) -> _Canvas:
    key = (kind, repr(signature))
    cv = _canvases.pop(key, None)
    if cv is None:
        if len(_canvases) >= _CANVASES_MAX:
            del _canvases[next(iter(_canvases))]
        cv = (_Canvas((4.6, 2.9), {"left": 0.11, "right": 0.66, "bottom": 0.15, "top": 0.91}) if kind == "acc" else
              _Canvas((3.6, 2.4), {"left": 0.15, "right": 0.97, "bottom": 0.18, "top": 0.95}))
    _canvases[key] = cv
    return cv


def _bars(rows: Sequence[Sequence[float]]) -> tuple[list[float], list[float], list[float], list[float]]:
    """rows (x, mean, min, max) -> x, mean, lower and upper error: the bars are the seed spread."""
    xs = [row[0] for row in rows]
    ys = [row[1] for row in rows]
    lo = [max(0.0, row[1] - row[2]) for row in rows]  # fsum mean vs min: no -1e-16
    hi = [max(0.0, row[3] - row[1]) for row in rows]
    return xs, ys, lo, hi


def _errorbar(cv: _Canvas, rows: Sequence[Sequence[float]], **kw: Any) -> None:
    xs, ys, lo, hi = _bars(rows)
    cv.owned.append(cv.ax.errorbar(xs, ys, yerr=[lo, hi], markersize=3.5, linewidth=1.1, capsize=2,
                                   elinewidth=0.7, **kw))


def _move_errorbar(container: Any, rows: Sequence[Sequence[float]]) -> None:
    """New data for an errorbar made by `_errorbar`: what errorbar() itself would have made of it."""
    xs, ys, lo, hi = _bars(rows)
    x = np.asarray(xs, float)
    low = np.asarray(ys, float) - np.asarray(lo, float)
    high = np.asarray(ys, float) + np.asarray(hi, float)
    line, caps, bars = container.lines
    line.set_data(x, np.asarray(ys, float))
    caps[0].set_data(x, low)
    caps[1].set_data(x, high)
    bars[0].set_segments([np.array([[a, b], [a, c]]) for a, b, c in zip(x, low, high)])


def _span(ax: Any, lo: float, hi: float, **kw: Any) -> Any:
    return ax.axhspan(lo, hi, linewidth=0, **kw)


def _move_span(patch: Any, lo: float, hi: float) -> None:
    patch.set_y(lo)
    patch.set_height(hi - lo)


def _clip(rows: Sequence[Sequence[float]], window: Sequence[float] | None
          ) -> tuple[list[list[float]], tuple[list[float], list[float]], list[float], list[float]]:
    """A series (x, mean, min, max) zoomed to `window` (lo, hi) of accuracy, clipped by hand (the SVG keeps no
    clip paths): the points inside (others NaN, bars cut at the edges), the connecting line cut at the edges
    (NaN between pieces, interpolated in log x), and the points above and below drawn at the edge."""
    nan = float("nan")
    if window is None:
        return [list(r) for r in rows], ([r[0] for r in rows], [r[1] for r in rows]), [nan], [nan]
    lo, hi = window
    inside = [list(r) if lo <= r[1] <= hi else [r[0], nan, nan, nan] for r in rows]
    inside = [[x, m, max(a, lo), min(b, hi)] if m == m else [x, m, a, b] for x, m, a, b in inside]
    xs: list[float] = []
    ys: list[float] = []
    for (x0, y0, *_), (x1, y1, *_) in zip(rows, rows[1:]):
        t0, t1 = 0.0, 1.0
        for edge, sign in ((lo, 1.0), (hi, -1.0)):   # keep sign * (y - edge) >= 0
            a, b = sign * (y0 - edge), sign * (y1 - edge)
            if a < 0 and b < 0:
                t0, t1 = 1.0, 0.0
            elif a < 0:
                t0 = max(t0, a / (a - b))
            elif b < 0:
                t1 = min(t1, a / (a - b))
        if t0 > t1:
            continue
        lx0, lx1 = math.log(x0), math.log(x1)
        piece = [(math.exp(lx0 + t * (lx1 - lx0)), y0 + t * (y1 - y0)) for t in (t0, t1)]
        if xs and (xs[-1], ys[-1]) == piece[0]:
            xs.append(piece[1][0])
            ys.append(piece[1][1])
        else:
            xs += [nan, piece[0][0], piece[1][0]] if xs else [piece[0][0], piece[1][0]]
            ys += [nan, piece[0][1], piece[1][1]] if ys else [piece[0][1], piece[1][1]]
    above = [hi if r[1] > hi else nan for r in rows]
    below = [lo if r[1] < lo else nan for r in rows]
    return inside, (xs or [nan], ys or [nan]), above, below


def _cut(lo: float, hi: float, window: Sequence[float] | None) -> tuple[float, float]:
    """A band's extent inside the zoom window (empty at an edge when it lies outside)."""
    if window is None:
        return lo, hi
    lo, hi = min(max(lo, window[0]), window[1]), max(min(hi, window[1]), window[0])
    return lo, max(lo, hi)


def _level(y: float, window: Sequence[float] | None) -> float:
    """A horizontal line's level, NaN (not drawn) when the zoom window leaves it out."""
    return y if window is None or window[0] <= y <= window[1] else float("nan")


def _draw_accuracy(spec: dict[str, Any]) -> str:
    groups: dict[tuple[str, int], list] = {}
    for setting, epochs, lr, mean, lo, hi in spec["cells"]:
        groups.setdefault((setting, epochs), []).append((lr, mean, lo, hi))
    multi_epochs = {s for s, _ in groups if sum(1 for t, _ in groups if t == s) > 1}
    short_of = spec["sufficient"]
    window = spec.get("window")
    series = []
    for (setting, epochs), rows in groups.items():  # cells come sorted: pretrain first, then by setting
        label, colour, marker = _series_of(setting)
        if setting.startswith(("lt-", "wr-", "rr-", "rp-")):
            label = setting.upper()
        short = epochs < short_of
        if setting in multi_epochs or short:
            label += f" ({epochs} ep)"
        series.append(((label, colour, marker, ":" if short else "-", "white" if short else colour),
                       _clip(sorted(rows), window)))
    cells = spec["cells"]
    well = [c[3] for c in cells if c[0] == "pretrain" and c[1] >= short_of]
    rr = [c[3] for c in cells if c[0].startswith("rr-")]
    sdt = [c[3] for c in cells if c[0] == "sdt"]
    rp = [c[3] for c in cells if c[0].startswith("rp-")]
    similar, gap = spec["similar"], spec["gap"]
    signature = ("acc", [style for style, _ in series], bool(well), bool(rr), bool(sdt), bool(rp),
                 spec["witness"] is not None, similar, gap, window is not None)
    cv = _canvas("acc", signature)
    ax = cv.ax
    if signature != cv.signature:  # other artists: make them (the legend comes with them)
        cv.reset(signature)
        for (label, colour, marker, linestyle, face), (points, line, above, below) in series:
            _errorbar(cv, points, label=label, color=colour, marker=marker, linestyle="none", markerfacecolor=face)
            xs = [r[0] for r in points]
            cv.owned += ax.plot(*line, color=colour, linestyle=linestyle, linewidth=1.1)
            cv.owned += ax.plot(xs, above, color=colour, marker="^", linestyle="none", markersize=3.5,
                                markerfacecolor="white")
            cv.owned += ax.plot(xs, below, color=colour, marker="v", linestyle="none", markersize=3.5,
                                markerfacecolor="white")
        if well:
            cv.owned.append(_span(ax, *_cut(max(well) - similar, max(well), window), color="#888888", alpha=0.18,
                                  label=f"⑤ best pretrain − {similar:g}"))
        if rr:
            cv.owned.append(_span(ax, *_cut(max(rr), max(rr) + gap, window), color="#1f77b4", alpha=0.12,
                                  label=f"③ best RR + {gap:g}"))
        if sdt:
            cv.owned.append(ax.axhline(_level(max(sdt) + gap, window), color="#2ca02c", linewidth=0.7,
                                       linestyle="--", label=f"② best SDT + {gap:g}"))
        if rp:
            cv.owned.append(ax.axhline(_level(max(rp) + gap, window), color="#9467bd", linewidth=0.7,
                                       linestyle="--", label=f"⑥ best RP + {gap:g}"))
        if spec["witness"] is not None:
            cv.owned.append(ax.axvline(spec["witness"], color="#d62728", linewidth=0.6, alpha=0.5, linestyle="-."))
        ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:  # the same artists: move their data
        owned = iter(cv.owned)
        for _, (points, line, above, below) in series:
            _move_errorbar(next(owned), points)
            xs = [r[0] for r in points]
            next(owned).set_data(*line)
            next(owned).set_data(xs, above)
            next(owned).set_data(xs, below)
        if well:
            _move_span(next(owned), *_cut(max(well) - similar, max(well), window))
        if rr:
            _move_span(next(owned), *_cut(max(rr), max(rr) + gap, window))
        if sdt:
            next(owned).set_ydata([_level(max(sdt) + gap, window)] * 2)
        if rp:
            next(owned).set_ydata([_level(max(rp) + gap, window)] * 2)
        if spec["witness"] is not None:
            next(owned).set_xdata([spec["witness"]] * 2)
    cv.lr_axis([c[2] for c in cells])
    ax.set_ylabel(spec["ylabel"])
    title = spec["title"] + (" · zoomed to the deciding values" if window is not None else "")
    ax.set_title(title, fontsize=8, y=1.0)  # a fixed y: no tight-bbox search per plot
    if window is not None:
        ax.set_ylim(*window)
        return cv.save({_key("leg", repr(signature)): ax.legend_, _key("lrx", cv.lr_key): ax.xaxis}, None,
                       fixed=True)
    ys = [c[4] for c in cells] + [c[5] for c in cells] + [c[3] for c in cells]  # bar ends, means
    if well:
        ys += [max(well) - similar, max(well)]
    if rr:
        ys += [max(rr) + gap]
    if sdt:
        ys += [max(sdt) + gap]
    if rp:
        ys += [max(rp) + gap]
    shared = {_key("leg", repr(signature)): ax.legend_, _key("lrx", cv.lr_key): ax.xaxis}
    return cv.save(shared, (min(ys), max(ys)))


def _draw_correlation(spec: dict[str, Any]) -> str:
    cv = _canvas("rp")
    ax = cv.reset()
    for label, colour, marker, style, rows in spec["series"]:
        _errorbar(cv, rows, label=label, color=colour, marker=marker, linestyle=style)
    for p in spec["p"]:
        cv.owned.append(ax.axhline(p, color="#444444", linewidth=0.7, linestyle="--",
                                   label=f"p = {p:g} (no correlation)"))
    cv.lr_axis(spec["lrs"])
    ax.set_ylabel("R_p")
    ax.legend(fontsize=6.5)
    return cv.save({})


_USES_PART = re.compile(r'<use href="#((?:leg|lrx)[0-9a-f]+)"/>')
_TAIL = re.compile(r'(?:<use href="#(?:leg|lrx)[0-9a-f]+"/>)*</svg>$')


def _draw_batch(items: Sequence[tuple[str, dict[str, Any]]]) -> tuple[list[str], dict[str, str], float]:
    """SVG of each (kind, spec), in order, the legends they use ({key: `<g id=key>`}) and the CPU seconds."""
    cpu = time.process_time()
    with mpl.rc_context(STYLE):
        svgs = [_draw_accuracy(spec) if kind == "acc" else _draw_correlation(spec) for kind, spec in items]
    used = {key for svg in svgs for key in _USES_PART.findall(_TAIL.search(svg).group(0))}
    return svgs, {k: _parts[k] for k in sorted(used)}, time.process_time() - cpu


def draw(kind: str, spec: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The SVG of one plot ("acc" or "rp") and the legends it uses."""
    svgs, legends, _ = _draw_batch([(kind, spec)])
    return svgs[0], legends


stats: dict[str, float] = {}
"""Of the last `draw_all`: plots, workers (0: in this process), cpu_s (drawing, all processes)."""


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Drawing:
    """Plots being drawn (see `start`); `result()` waits for them."""

    def __init__(self, plots: dict[str, tuple[str, dict[str, Any]]], workers: int | None) -> None:
        self.keys = list(plots)
        self.items = [plots[k] for k in self.keys]
        self.workers = _workers() if workers is None else workers
        self.pool: Any = None
        self.pending: Any = None
        if self.workers >= 2 and len(self.items) >= POOL_MIN:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # forkserver, not fork: the caller may be a threaded process (pytest-xdist). The server
            # imports this module (and matplotlib) once; each worker then draws batch after batch on
            # its reused figures.
            size = max(8, min(64, -(-len(self.items) // (self.workers * 4))))
            batches = [self.items[i:i + size] for i in range(0, len(self.items), size)]
            try:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload([__name__])
                self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
                self.pending = self.pool.map(_draw_batch, batches)
            except (OSError, RuntimeError, ValueError, ImportError):  # no processes here (sandbox, frozen app)
                self._close()

    def _close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        self.pool = self.pending = None

    def result(self) -> tuple[dict[str, str], dict[str, str]]:
        """SVG by key, and the legends they use by key."""
        from concurrent.futures.process import BrokenProcessPool

        done = None
        if self.pending is not None:
            try:
                done = list(self.pending)
            except (BrokenProcessPool, OSError):  # a worker died (out of memory?): draw here instead
                done = None
            finally:
                self._close()
        workers = self.workers if done is not None else 0
        if done is None:
            done = [_draw_batch(self.items)]
        svgs = [svg for batch, _, _ in done for svg in batch]
        legends = {k: v for _, used, _ in done for k, v in used.items()}
        stats.update(plots=len(self.items), workers=workers, cpu_s=sum(cpu for _, _, cpu in done))
        return dict(zip(self.keys, svgs)), dict(sorted(legends.items()))


def start(plots: dict[str, tuple[str, dict[str, Any]]], *, workers: int | None = None) -> Drawing:
    """Start drawing {key: (kind, spec)}: over a process pool of `workers` (default: the usable cores)
    from `POOL_MIN` plots on, else in this process when the result is asked for."""
    return Drawing(plots, workers)


def draw_all(plots: dict[str, tuple[str, dict[str, Any]]], *,
             workers: int | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """SVG by key for {key: (kind, spec)}, and the legends they use by key (see `start`)."""
    return start(plots, workers=workers).result()


def collect(results: Iterable[ClaimResult]
            ) -> tuple[list[dict[str, str | None]], dict[str, tuple[str, dict[str, Any]]]]:
    """Per claim {"acc": key or None, "rp": key or None}, and the distinct plots {key: (kind, spec)}."""
    per_claim = []
    plots: dict[str, tuple[str, dict[str, Any]]] = {}
    for r in results:
        keys: dict[str, str | None] = {}
        for kind, make in (("acc", accuracy_spec), ("rp", correlation_spec)):
            ks = make(r)
            keys[kind] = None if ks is None else ks[0]
            if ks is not None and ks[0] not in plots:
                plots[ks[0]] = (kind, ks[1])
        per_claim.append(keys)
    return per_claim, plots
