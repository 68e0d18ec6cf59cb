"""Loss landscapes around a run's training trajectory (Lorch 2016; Li et al. 2018, "Visualizing the loss
landscape of neural nets", Section 7), as in Figures 5-6 of the paper.

For one run with kept weights θ_0, θ_k, θ_2k, ..., θ_T (`trajectory_every: k` in the experiment file):

1. **Directions.** The trajectory points, restricted to the *direction parameters* (weights of convs and
   linears, `dim > 1`), flattened; PCA of those points (centred, as sklearn's PCA in Li et al.'s code;
   equivalently of the differences θ_i − θ_T, which Li et al. feed it). v1, v2: the two leading components.
   Biases and BatchNorm weights/biases are 0 in both directions (Li et al.'s `--ignore biasbn`), so
   every grid point keeps the final run's values there. Signs: θ_0 projects to negative coordinates, so
   the path runs from the lower left to the origin.
   `norm="filter"` (default): each direction is filter-normalised (Li et al.): filter i (slice i along
   dim 0: a conv's output channel, a linear's row) is rescaled to the norm of filter i of θ_T. Rescaling
   two directions filter by filter would leave them non-orthogonal, so inside each filter v2's slice is
   first made orthogonal to v1's (Gram-Schmidt per filter); then both directions are filter-normalised
   AND orthogonal, and the projection of the trajectory onto the plane is exact least squares.
   `norm="none"`: the raw unit-norm PCA components (what Li et al.'s released code plots).
   A pruned weight is 0 in every trajectory point, hence 0 in both directions; the mask is also applied to
   every grid point, so the subnetwork stays exactly the subnetwork.
2. **Grid.** θ(a, b) = m ⊙ (θ_T + a·d1 + b·d2); (0, 0) is θ_T. The axis ranges cover the projected
   trajectory and 0, padded by `margin` of the span on each side (or are given).
3. **Loss.** Mean cross-entropy on the training set (first `samples` examples). BatchNorm: `bn="final"`
   (default, as Li et al.): eval mode with θ_T's running statistics at every grid point (the statistics
   are not a parameter, so the plane does not move them; far from θ_T the loss is then somewhat
   pessimistic); `bn="batch"`: BatchNorm normalises with the statistics of the evaluated data at each
   point (the exact training-set statistics when `eval_batch >= samples`), no running statistics.
   Points are evaluated `chunk` at a time with `torch.func.vmap` over `functional_call`, the data
   `eval_batch` examples at a time (default 1000 with bn="final", all with bn="batch"). Small pieces
   win on CPU: resnet1d, 21 x 21 grid, 4,000 examples, one thread: chunk 2 / batch 1000 took 23 s,
   chunk 8 / batch 5000 71 s (two thirds of it in the kernel, allocating and freeing big activations).
4. **Cache.** `<out>.ckpt/landscape/<key>.json`, key = sha256 of θ_T, the trajectory, the mask, the data
   fingerprint and the grid spec (size, margin or range, norm, bn, samples, eval batch). A hit skips every
   forward pass.

Output of `plot`: one subplot per run (each run its own plane, as Li et al.), one shared log-scale colour
map, the projected trajectory on each; and a JSON sidecar (grids, losses, projected trajectory, explained
variance) for the HTML report.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from ..records import atomic_write_text

State = dict[str, torch.Tensor]
Norm = Literal["filter", "none"]
BN = Literal["final", "batch"]
CACHE_VERSION = 1
EPS = 1e-10


# ------------------------------------------------------------------------------------------- directions
def direction_names(model: nn.Module) -> list[str]:
    """Parameters that get a direction: weights with dim > 1. Biases and BN affine params stay at θ_T."""
    return [n for n, p in model.named_parameters() if p.dim() > 1]


def _flat(state: State, names: Sequence[str]) -> torch.Tensor:
    return torch.cat([state[n].detach().reshape(-1).to(torch.float64) for n in names])


def _unflat(v: torch.Tensor, like: State, names: Sequence[str]) -> State:
    out, i = {}, 0
    for n in names:
        k = like[n].numel()
        out[n] = v[i:i + k].reshape(like[n].shape).clone()
        i += k
    return out


@dataclass
class Plane:
    names: list[str]
    d1: State                          # float64, one tensor per direction parameter
    d2: State
    explained_variance_ratio: tuple[float, float]   # of the two PCA components (centred trajectory)
    captured: float                    # Σ‖proj(θ_i − θ_T)‖² / Σ‖θ_i − θ_T‖² for the plotted plane
    coords: list[tuple[float, float]]  # the trajectory projected onto the plane, one pair per state
    norm: str

    def flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        return _flat(self.d1, self.names), _flat(self.d2, self.names)


def _filter_normalise(d1: State, d2: State, final: State) -> tuple[State, State]:
    """Per filter: d2 ⟂ d1 (Gram-Schmidt), then both rescaled to the norm of θ_T's filter (Li et al.)."""
    o1, o2 = {}, {}
    for n, a in d1.items():
        w = final[n].to(torch.float64).reshape(a.shape[0], -1)
        a2, b2 = a.reshape(a.shape[0], -1), d2[n].reshape(a.shape[0], -1)
        na2 = (a2 * a2).sum(1, keepdim=True)
        coef = torch.where(na2 > 0, (a2 * b2).sum(1, keepdim=True) / na2.clamp_min(EPS * EPS), torch.zeros_like(na2))
        b2 = b2 - coef * a2
        wn = w.norm(dim=1, keepdim=True)
        o1[n] = (a2 * (wn / (a2.norm(dim=1, keepdim=True) + EPS))).reshape(a.shape)
        o2[n] = (b2 * (wn / (b2.norm(dim=1, keepdim=True) + EPS))).reshape(a.shape)
    return o1, o2


def pca_plane(states: Sequence[State], final: State, names: Sequence[str], norm: Norm = "filter") -> Plane:
    """The plane of the two leading PCA directions of the trajectory `states` (θ_T may be among them)."""
    names = list(names)
    f = _flat(final, names)
    x = torch.stack([_flat(s, names) - f for s in states])
    if x.shape[0] < 3:
        raise ValueError(f"a trajectory of {x.shape[0]} kept states has no second PCA direction; keep more "
                         "epochs (smaller trajectory_every)")
    xc = x - x.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    var = s * s
    evr = (float(var[0] / var.sum()), float(var[1] / var.sum())) if var.sum() > 0 else (0.0, 0.0)
    v = [vh[0].clone(), vh[1].clone()]
    for i in range(2):                          # θ_0 (the first state) at negative coordinates
        if float(x[0] @ v[i]) > 0:
            v[i] = -v[i]
    d1, d2 = _unflat(v[0], final, names), _unflat(v[1], final, names)
    if norm == "filter":
        d1, d2 = _filter_normalise(d1, d2, final)
    elif norm != "none":
        raise ValueError(f"unknown norm {norm!r}; use 'filter' or 'none'")
    plane = Plane(names, d1, d2, evr, 0.0, [], norm)
    v1, v2 = plane.flat()
    a, b = x @ v1 / (v1 @ v1), x @ v2 / (v2 @ v2)
    total = float((x * x).sum())
    held = float((a * a).sum() * (v1 @ v1) + (b * b).sum() * (v2 @ v2))
    plane.captured = held / total if total > 0 else 0.0
    plane.coords = [(float(p), float(q)) for p, q in zip(a, b)]
    return plane


# ------------------------------------------------------------------------------------------------- loss
class LossEvaluator:
    """Mean cross-entropy of a model at many weight points, `chunk` points per vmapped forward pass."""

    def __init__(self, model: nn.Module, final: State, mask: State | None, x: torch.Tensor, y: torch.Tensor,
                 bn: BN = "final", eval_batch: int | None = None, chunk: int = 2):
        if bn not in ("final", "batch"):
            raise ValueError(f"unknown bn mode {bn!r}; use 'final' or 'batch'")
        self.model = copy.deepcopy(model).cpu()
        self.model.load_state_dict(final)
        self.bn = bn
        if bn == "batch":
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.track_running_stats = False
                    m.running_mean = m.running_var = m.num_batches_tracked = None
        self.model.eval()
        self.params = {n: p.detach() for n, p in self.model.named_parameters()}
        self.buffers = {n: b.detach() for n, b in self.model.named_buffers()}
        self.mask = {n: m.to(self.params[n].dtype) for n, m in (mask or {}).items()}
        self.x, self.y = x, y
        self.eval_batch = eval_batch or (1000 if bn == "final" else max(1, x.shape[0]))
        self.chunk = chunk
        self.forward_points = 0               # weight points evaluated (the cache test counts them)

    def _losses(self, batched: State, fixed: State, buffers: State | None = None) -> torch.Tensor:
        """Mean loss at each of the P points in `batched` (tensors with a leading P dim)."""
        bufs = self.buffers if buffers is None else buffers

        def one(bp: State, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            out = functional_call(self.model, ({**fixed, **bp}, bufs), (xb,))
            return F.cross_entropy(out, yb, reduction="sum")

        total = None
        with torch.no_grad():
            for i in range(0, self.x.shape[0], self.eval_batch):
                xb, yb = self.x[i:i + self.eval_batch], self.y[i:i + self.eval_batch]
                s = vmap(one, in_dims=(0, None, None))(batched, xb, yb)
                total = s if total is None else total + s
        self.forward_points += next(iter(batched.values())).shape[0]
        return total.double() / self.x.shape[0]

    def grid(self, plane: Plane, xs: Sequence[float], ys: Sequence[float]) -> torch.Tensor:
        """Loss at m ⊙ (θ_T + a·d1 + b·d2) for a in xs, b in ys: shape (len(ys), len(xs))."""
        pts = [(a, b) for b in ys for a in xs]
        fixed = {n: p for n, p in self.params.items() if n not in plane.d1}
        out = [self._losses(self.points(plane, pts[i:i + self.chunk]), fixed)
               for i in range(0, len(pts), self.chunk)]
        return torch.cat(out).view(len(ys), len(xs))

    def points(self, plane: Plane, pts: Sequence[tuple[float, float]]) -> State:
        """The direction parameters at the points (a, b): m ⊙ (θ_T + a·d1 + b·d2), leading dim = point."""
        ab = torch.tensor(list(pts), dtype=torch.float32)
        batched = {}
        for n in plane.d1:
            shape = (-1,) + (1,) * self.params[n].dim()
            w = (self.params[n] + ab[:, 0].view(shape) * plane.d1[n].to(torch.float32)
                 + ab[:, 1].view(shape) * plane.d2[n].to(torch.float32))
            batched[n] = w * self.mask[n] if n in self.mask else w
        return batched

    def state_loss(self, state: State) -> float:
        """Loss of a full state dict (its own BN running statistics when bn='final'), masked."""
        params = {n: (state[n] * self.mask[n] if n in self.mask else state[n]).unsqueeze(0) for n in self.params}
        bufs = {n: state[n] for n in self.buffers} if self.bn == "final" else {}
        return float(self._losses(params, {}, bufs)[0])


def axis_values(lo: float, hi: float, n: int) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)] if n > 1 else [0.5 * (lo + hi)]


def auto_range(vals: Sequence[float], margin: float) -> tuple[float, float]:
    lo, hi = min(0.0, *vals), max(0.0, *vals)
    pad = margin * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


# ------------------------------------------------------------------------------------------------ cache
def _hash_tensors(h, tag: str, state: State | None) -> None:
    h.update(tag.encode())
    for n in sorted(state or {}):
        t = state[n].detach().cpu().contiguous()
        h.update(n.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())


def cache_key(final: State, states: Sequence[State], mask: State | None, data_fp: str, spec: dict) -> str:
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, **spec}, sort_keys=True).encode())
    h.update(data_fp.encode())
    _hash_tensors(h, "final", final)
    for i, s in enumerate(states):
        _hash_tensors(h, f"state{i}", s)
    _hash_tensors(h, "mask", mask)
    return h.hexdigest()[:24]


def data_fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in (x, y):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# -------------------------------------------------------------------------------------------- one run
@dataclass
class GridSpec:
    size: int = 21                          # points per axis
    margin: float = 0.25                    # padding of the auto range, as a fraction of the span
    span: tuple[float, float, float, float] | None = None   # (a0, a1, b0, b1); overrides the auto range
    norm: Norm = "filter"
    bn: BN = "final"
    samples: int | None = None              # first N training examples (None: all)
    eval_batch: int | None = None           # examples per forward pass; None: 1000 (bn final) or all (bn batch)
    chunk: int = 2                          # grid points per vmapped pass (bigger: slower on CPU, see below)

    def key(self) -> dict:
        return {"size": self.size, "margin": self.margin, "span": list(self.span) if self.span else None,
                "norm": self.norm, "bn": self.bn, "samples": self.samples, "eval_batch": self.eval_batch}


@dataclass
class Trajectory:
    """A run's kept weights, oldest first; the last one is θ_T."""

    run_id: str
    label: str
    model: nn.Module                        # the architecture (weights irrelevant)
    epochs: list[int]
    states: list[State]
    mask: State | None = None
    info: dict[str, Any] = field(default_factory=dict)   # copied into the sidecar (setting, lr, top1, ...)

    @property
    def final(self) -> State:
        return self.states[-1]


def _r(v: float, digits: int = 6) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.{digits}g}")


def landscape(traj: Trajectory, x: torch.Tensor, y: torch.Tensor, spec: GridSpec | None = None,
              cache_dir: str | Path | None = None, use_cache: bool = True,
              evaluator_hook=None) -> dict:
    """The landscape of one run: plane, grid losses, projected trajectory. Cached under `cache_dir`."""
    spec = spec or GridSpec()
    t0 = time.perf_counter()
    if spec.samples is not None:
        x, y = x[:spec.samples], y[:spec.samples]
    key = cache_key(traj.final, traj.states, traj.mask, data_fingerprint(x, y), spec.key())
    path = Path(cache_dir) / f"{key}.json" if cache_dir is not None else None
    if use_cache and path is not None and path.is_file():
        res = json.loads(path.read_text(encoding="utf-8"))
        res.update(from_cache=True, wall_s=round(time.perf_counter() - t0, 3), label=traj.label,
                   info=traj.info)
        return res
    names = direction_names(traj.model)
    plane = pca_plane(traj.states, traj.final, names, spec.norm)
    ev = LossEvaluator(traj.model, traj.final, traj.mask, x, y, spec.bn, spec.eval_batch, spec.chunk)
    if evaluator_hook is not None:
        evaluator_hook(ev)
    if spec.span is not None:
        (a0, a1, b0, b1) = spec.span
    else:
        (a0, a1), (b0, b1) = (auto_range([c[i] for c in plane.coords], spec.margin) for i in range(2))
    xs, ys = axis_values(a0, a1, spec.size), axis_values(b0, b1, spec.size)
    grid = ev.grid(plane, xs, ys)
    true_loss = [ev.state_loss(s) for s in traj.states]
    res = {
        "run_id": traj.run_id, "cache_key": key,
        "norm": spec.norm, "bn": spec.bn, "samples": int(x.shape[0]), "grid_size": spec.size,
        "a": [_r(v) for v in xs], "b": [_r(v) for v in ys],
        "loss": [[_r(float(v)) for v in row] for row in grid],       # loss[j][i] at (a[i], b[j])
        "final_loss": _r(true_loss[-1]),
        "trajectory": {"epochs": traj.epochs, "a": [_r(c[0]) for c in plane.coords],
                       "b": [_r(c[1]) for c in plane.coords], "loss": [_r(v) for v in true_loss]},
        "explained_variance_ratio": [_r(v, 4) for v in plane.explained_variance_ratio],
        "plane_captured": _r(plane.captured, 4),
        "compute_s": round(time.perf_counter() - t0, 3),
    }
    if path is not None:
        atomic_write_text(path, json.dumps(res))
    res.update(from_cache=False, wall_s=res["compute_s"], label=traj.label, info=traj.info)
    return res


# ------------------------------------------------------------------------------------------------ plot
BASIN_LEVELS = (0.1, 1.0)


def basin_areas(res: dict, levels: Sequence[float] = BASIN_LEVELS) -> dict:
    """Area of the plane (in the directions' units; filter-normalised, so comparable across runs) where
    the loss is below each level, counted by grid points x cell area; `clipped`: the region reaches the
    grid's border, so the area is a lower bound."""
    a, b = res["a"], res["b"]
    cell = (a[-1] - a[0]) / max(len(a) - 1, 1) * (b[-1] - b[0]) / max(len(b) - 1, 1)
    out = {}
    for lv in levels:
        inside = [[v is not None and v < lv for v in row] for row in res["loss"]]
        edge = any(inside[0]) or any(inside[-1]) or any(r[0] or r[-1] for r in inside)
        out[f"{lv:g}"] = {"area": _r(sum(map(sum, inside)) * cell, 4), "clipped": edge}
    return out


def plot(results: Sequence[dict], out: str | Path, title: str | None = None, cols: int | None = None) -> Path:
    """Contours of every run's plane (one subplot each, one shared log colour scale) with its trajectory;
    writes `out` (.png / .svg / .pdf) and `out` with suffix .json (the sidecar)."""
    import matplotlib as mpl

    from ..report.landscape import LandscapeRun, color_range, landscape_figure

    out = Path(out)
    runs = [LandscapeRun.model_validate(r) for r in results]
    lo, hi = color_range(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    with mpl.rc_context({"text.parse_math": False}):  # run ids and titles are text, never mathtext
        landscape_figure(runs, title, cols).savefig(out, dpi=90)
    if out.suffix.lower() == ".png":               # 256-colour palette: a third of the size, same look
        from PIL import Image

        with Image.open(out) as im:
            small = im.convert("RGB").quantize(256)
        small.save(out, optimize=True)
    for r in results:
        r["basin"] = basin_areas(r)
    sidecar = {"figure": out.name, "title": title, "color_scale": {"kind": "log", "min": _r(lo), "max": _r(hi)},
               "runs": [{k: v for k, v in r.items()} for r in results]}
    atomic_write_text(out.with_suffix(".json"), json.dumps(sidecar, indent=1))
    return out


# ------------------------------------------------------------------------------ runs of an experiment
def trajectory_files(exp, rec) -> list[tuple[int, Path]]:
    """(epoch, file) of a run's kept weights: from `meta.trajectory` (paths relative to the record store's
    folder), else whatever `traj-<epoch>.pt` files its checkpoint folder holds."""
    from ..backend.checkpoints import Checkpoints

    meta = rec.meta.get("trajectory") if isinstance(rec.meta, dict) else None
    if meta and meta.get("files"):
        base = exp.out_path.parent
        return [(int(e), base / f) for e, f in zip(meta["epochs"], meta["files"])]
    folder = Path(exp.ckpt_dir) / Checkpoints.run_dir(rec.run_id)
    found = [(int(p.stem.split("-", 1)[1]), p) for p in folder.glob("traj-*.pt")]
    return sorted(found)


def run_mask(exp, rec, final: State) -> State | None:
    """The run's mask from `<out>.ckpt/masks/` (via the plan), else the zeros of its prunable weights."""
    from ..backend.checkpoints import Checkpoints
    from ..backend.models import build_model, entry
    from ..backend.plan import make_plan
    from ..backend.pruning import prunable_names

    if rec.setting.method is None:
        return None
    planned = make_plan(exp).by_id().get(rec.run_id)
    ck = Checkpoints(exp.ckpt_dir)
    if planned is not None and planned.mask_key and ck.exists(ck.mask(planned.mask_key)):
        return ck.load(ck.mask(planned.mask_key))
    ignore = list(exp.ignore) if exp.ignore is not None else list(entry(exp.arch).dense)
    names = prunable_names(build_model(exp.arch, exp.dataset, exp.width, device="meta"), ignore)
    return {n: (final[n] != 0).to(final[n].dtype) for n in names}


def label_of(rec) -> str:
    s = f" s={rec.sparsity:g}" if rec.sparsity else ""
    return f"{rec.arch} {rec.setting.value}{s} lr={rec.lr:g} seed={rec.seed}"


def load_trajectory(exp, rec) -> Trajectory:
    from ..backend.models import build_model

    files = trajectory_files(exp, rec)
    if len(files) < 3:
        raise FileNotFoundError(f"run {rec.run_id}: {len(files)} trajectory checkpoints under {exp.ckpt_dir}; "
                                "train it with `trajectory_every:` set (at least 3 kept epochs)")
    missing = [str(p) for _, p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"run {rec.run_id}: missing trajectory checkpoint(s) {', '.join(missing[:3])}")
    states = [torch.load(p, map_location="cpu", weights_only=True) for _, p in files]
    width = float(rec.meta.get("sdt_width", exp.width)) if rec.setting.value == "sdt" else exp.width
    model = build_model(exp.arch, exp.dataset, width, seed=0)
    info = {"arch": rec.arch, "dataset": rec.dataset, "setting": rec.setting.value, "sparsity": rec.sparsity,
            "lr": rec.lr, "seed": rec.seed, "top1": rec.top1, "epochs": rec.epochs, "experiment": exp.name}
    return Trajectory(rec.run_id, label_of(rec), model, [e for e, _ in files], states,
                      run_mask(exp, rec, states[-1]), info)


def select_runs(exps, run_ids: Sequence[str] = (), settings: Sequence[str] = (), lrs: Sequence[float] = (),
                seeds: Sequence[int] = (), sparsities: Sequence[float] = (), tol: float = 2e-3) -> list[tuple]:
    """(experiment, record) pairs, in experiment order then record order, that pass every filter given.
    Sparsities match within `tol` (0.738 asked, 0.7379 recorded)."""
    from ..store import RecordStore

    picked = []
    for exp in exps:
        for rec in RecordStore(exp.out_path).load():
            if run_ids and rec.run_id not in run_ids:
                continue
            if settings and rec.setting.value not in settings:
                continue
            if lrs and not any(math.isclose(rec.lr, v, rel_tol=1e-9) for v in lrs):
                continue
            if seeds and rec.seed not in seeds:
                continue
            if sparsities and not any(abs(rec.sparsity - s) <= tol for s in sparsities):
                continue
            picked.append((exp, rec))
    if run_ids:
        order = {r: i for i, r in enumerate(run_ids)}
        picked.sort(key=lambda p: order[p[1].run_id])
    return picked
