"""The batched trainer: R independent networks of one architecture trained at once as one stacked network.

Semantics are those of `jobs.py` (reference: `train.train_one`); see docs/batched.md for the design.

How the R runs become one network:

- The template (a deep copy of the first spec's model) keeps its own `forward`; each parameterised leaf
  module is swapped for a batched twin that reads its weights from a stack of all runs' weights:
  `nn.Linear` -> one `baddbmm` over the run axis, `nn.Conv1d` in a network without BatchNorm -> batched GEMMs
  over im2col windows or strided tap views (`_GemmConv1d`), other convolutions -> one grouped convolution with groups = R * groups,
  `nn.BatchNorm1d`/`2d` -> one `F.batch_norm` over R * C channels. Every other module
  and the template's forward code (`view(x.shape[0], ...)`, `flatten(1)`, residual adds, pooling) must act
  on each sample alone, which holds for every network in the registry.
- Activations carry the R runs folded into the sample axis. With grouped convolutions or BatchNorm the
  order is sample-major (row b * R + r), so that (B * R, C, ...) viewed as (B, R * C, ...) is free; for
  MLPs and plain 1-D CNNs it is run-major (row r * B + b), which suits `bmm` best.
- All parameters live in one flat tensor (`_Stack.flat`, one contiguous (R, *shape) block per parameter)
  and their gradients in another; each block is an autograd leaf whose `.grad` is the matching gradient
  block, so backward accumulates straight into the flat gradient and SGD is a handful of whole-stack ops,
  plus one `addcmul_` per parameter block with the runs' learning rates as an (R, 1) column (it rounds like
  `add_(alpha=-lr)` in torch.optim.SGD).
- BatchNorm running statistics of every layer live in one 1-D buffer whose per-layer segments are (R, C)
  contiguous; `F.batch_norm` updates them in place through (R * C,) views, so each run keeps its own
  statistics exactly as a lone `nn.BatchNorm` would.

Divergence: `alive` (R,) lives on the device. A run whose batch loss is not finite takes no step (its
update row is zeroed, its BatchNorm statistics keep the values of that forward, as in `train_one`) and is
never updated again; nothing of it reaches the other runs, whose rows are computed independently.
The host reads `alive` once per epoch.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import device as dev
from .augment import apply_augment, draw_augment, mixup_draws
from .jobs import EVAL_BATCH, TensorData, TrainOutcome, TrainSpec, epoch_generator

EVAL_ROWS = {"cpu": 1200}
"""Most (run, test sample) rows in one evaluation forward, by device type (default 4096). On the CPU about a
training batch's rows keeps activations cache-sized: cnn1d, 12 runs, an epoch's evaluation took 25 ms in
chunks of 1200 rows, 30 ms in chunks of 4096."""

_CONVS = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d}
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


class _Stack:
    """All runs' parameters in one flat tensor and their gradients in another; BatchNorm statistics in a third.

    The layout is parameter-major: each parameter's R copies form one contiguous (R, *shape) block. Each
    block is a persistent autograd leaf whose `.grad` is the matching block of `grad`, so backward
    accumulates in place into one flat gradient (no split, no cat, no per-step views), and every leaf is
    dense, which is what bmm and autograd's gradient layout want.
    """

    def __init__(self, runs: int, shapes: list[torch.Size], flat: torch.Tensor, runs_first: bool):
        self.runs = runs
        self.runs_first = runs_first
        self.shapes = shapes
        self.sizes = [runs * s.numel() for s in shapes]
        self.flat = flat
        self.grad = torch.zeros_like(flat)
        self.views: list[torch.Tensor] = []
        self.grad_views: list[torch.Tensor] = []
        for value, grad, shape in zip(flat.split(self.sizes), self.grad.split(self.sizes), shapes):
            leaf = value.view(runs, *shape).requires_grad_(True)
            leaf.grad = grad.view(runs, *shape)
            self.views.append(leaf)
            self.grad_views.append(leaf.grad)
        self.stats = torch.zeros(0, dtype=flat.dtype, device=flat.device)

    def check_grads(self) -> None:
        """Backward must have accumulated into `grad` in place; a replaced `.grad` would silently stop training."""
        if any(v.grad is not g for v, g in zip(self.views, self.grad_views)):
            raise RuntimeError("batched trainer: autograd replaced a parameter's .grad instead of accumulating "
                               "into it in place; this torch version breaks the flat-gradient design")

    def blocks(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every parameter's (R, numel) block of a tensor laid out like `flat`: per-run ops take an (R, 1)
        column on each (a gather to per-element values costs several times more on the CPU)."""
        return [b.view(self.runs, -1) for b in t.split(self.sizes)]


def _weight_grad(g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Per run gᵀ a, (R, M, N) x (R, M, K) -> (R, N, K), as the product whose result is at least as wide as
    tall (the transpose of the other): MKL's small-output bmm with a long reduction is several times
    faster that way round (measured: 25x5 from 1900 rows 289 µs, 5x25 88 µs; 10x125 28 µs, 125x10 83)."""
    if g.shape[-1] <= a.shape[-1]:
        return torch.bmm(g.transpose(1, 2), a)
    return torch.bmm(a.transpose(1, 2), g).transpose(1, 2)


class _Affine(torch.autograd.Function):
    """Per run: a (M, K) @ w (N, K)ᵀ + b (N), the batched Linear.

    The backward forms the weight gradient with `_weight_grad`; autograd's bmm backward always forms aᵀ g,
    several times slower when N is small (a classifier).
    On CUDA the backward runs under the forward's autocast state.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(a, w)
        ctx.has_bias = b is not None
        wt = w.transpose(1, 2)
        return torch.bmm(a, wt) if b is None else torch.baddbmm(b.unsqueeze(1), a, wt)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, g: torch.Tensor):
        a, w = ctx.saved_tensors
        ga = torch.bmm(g, w) if ctx.needs_input_grad[0] else None
        gw = _weight_grad(g, a) if ctx.needs_input_grad[1] else None
        gb = g.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return ga, gw, gb


class _BatchedLinear(nn.Module):
    def __init__(self, stack: _Stack, weight: int, bias: int | None):
        super().__init__()
        self.stack, self.w, self.b = stack, weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self.stack
        r, fin = st.runs, x.shape[-1]
        if st.runs_first:
            h = x.reshape(r, -1, fin)
        else:
            h = x.reshape(-1, r, x[0].numel() // fin, fin).transpose(0, 1).reshape(r, -1, fin)
        out = _Affine.apply(h, st.views[self.w], None if self.b is None else st.views[self.b])
        if st.runs_first:
            return out.reshape(*x.shape[:-1], -1)
        return out.reshape(r, -1, *x.shape[1:-1], out.shape[-1]).transpose(0, 1).reshape(*x.shape[:-1], -1)


@functools.lru_cache(maxsize=64)
def _conv1d_taps(k: int, s: int, p: int, length: int) -> tuple[int, tuple[tuple[int, int, int], ...], slice | None]:
    """A 1-D convolution's geometry: (Lout, per tap t the output positions [lo, hi) whose input s*j + t - p
    lies inside [0, length) with that first input position, and the input positions no tap t < s reaches:
    a slice, or None when every position is reached)."""
    lout = (length + 2 * p - k) // s + 1
    taps = []
    reached = [False] * length
    for t in range(k):
        lo = max(0, -((t - p) // s))
        hi = max(lo, min(lout, (length - 1 - t + p) // s + 1))
        taps.append((lo, hi, s * lo + t - p))
        if t < s:
            for q in range(s * lo + t - p, s * hi + t - p, s):
                reached[q] = True
    missing = [q for q, hit in enumerate(reached) if not hit]
    if not missing:
        return lout, tuple(taps), None
    contiguous = missing[-1] - missing[0] + 1 == len(missing)
    return lout, tuple(taps), slice(missing[0], missing[-1] + 1) if contiguous else slice(0, length)


TAP_SUM_MIN_CHANNELS = 8
"""Fewest input channels for which the tap-sum form pays (each of its products reduces over s * Cin)."""


def _tap_sum_fits(k: int, s: int, p: int, length: int, c: int) -> bool:
    """Whether every window of every sample lies in that sample's input zero-padded to s * Lout positions
    (p in front) or in the next sample's front padding. Then output row (b, j) reads padded rows
    s * (b * Lout + j) .. + k - 1 at one uniform stride over the whole run, and the convolution is
    ceil(k / s) GEMMs over strided views of the padded input. True for kernel 3, stride 2, padding 1
    over an odd length (cnn1d's conv2)."""
    lout = (length + 2 * p - k) // s + 1
    return c >= TAP_SUM_MIN_CHANNELS and k <= s + p and length + p <= s * lout


def _tap_groups(padded: torch.Tensor, k: int, s: int, runs: int, rows: int, c: int
                ) -> list[tuple[slice, torch.Tensor]]:
    """A tap-sum padded tensor as blocks of up to s adjacent taps: (the block's rows of the tap-major weight
    matrix, its (R, B * Lout, taps * Cin) view at row stride s * Cin). Rows of a block never overlap, so
    each is a plain GEMM operand; the first block of a full s taps is the dense tensor itself."""
    out = []
    for t0 in range(0, k, s):
        t1 = min(k, t0 + s)
        view = padded.as_strided((runs, rows, (t1 - t0) * c), (rows * s * c, s * c, 1), t0 * c)
        out.append((slice(t0 * c, t1 * c), view))
    return out


def _padded_segments(like: torch.Tensor, n: int, lp: int, c: int, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat tap-sum buffer of n samples x lp positions x c channels plus the last sample's overhang (p
    positions, zeroed), and its (n, lp, c) view."""
    flat = like.new_empty(n * lp * c + p * c)
    flat[n * lp * c:] = 0
    return flat, flat[:n * lp * c].view(n, lp, c)


def _im2col(x: torch.Tensor, k: int, s: int, lout: int, taps) -> torch.Tensor:
    """(n, Cin, L) -> (n, Lout, k, Cin) windows: per tap one strided block copy, then the pad zeros (after
    the copies, when those scattered rows are in cache)."""
    src = x.transpose(1, 2)
    win = x.new_empty(x.shape[0], lout, k, x.shape[1])
    for t, (lo, hi, first) in enumerate(taps):
        if hi > lo:
            win[:, lo:hi, t] = src[:, first:first + s * (hi - lo - 1) + 1:s]
    for t, (lo, hi, _) in enumerate(taps):
        if lo > 0:
            win[:, :lo, t] = 0
        if hi < lout:
            win[:, hi:, t] = 0
    return win


def _col2im(gcols: torch.Tensor, length: int, s: int, taps, unreached: slice | None) -> torch.Tensor:
    """(n, Lout, k, Cin) window gradients -> (n, L, Cin): taps 0..s-1 (disjoint) copied, the rest added."""
    out = gcols.new_empty(gcols.shape[0], length, gcols.shape[-1])
    if unreached is not None:
        out[:, unreached] = 0
    for t, (lo, hi, first) in enumerate(taps):
        if hi > lo:
            dst = out[:, first:first + s * (hi - lo - 1) + 1:s]
            if t < s:
                dst.copy_(gcols[:, lo:hi, t])
            else:
                dst.add_(gcols[:, lo:hi, t])
    return out


class _GemmConv1d(torch.autograd.Function):
    """Per run, a Conv1d as GEMMs: (R*B, Cin, L) -> (R*B, Cout, Lout), channels-last memory.

    Two forms, the same products and sums:
    - im2col: a tap-major windows matrix (R, B*Lout, k*Cin) from `_im2col` (cheap when the input is
      channels-last, as the previous such convolution leaves it), one GEMM; the backward forms the
      weight gradient from the saved windows and the windows' gradient by one GEMM, written back by
      `_col2im` into a dense channels-last input gradient (the layout of the activation it meets next);
    - tap sum, where `_tap_sum_fits`: one zero-padded copy of the input, ceil(k / s) accumulated GEMMs
      over strided views of it, and the same in the backward, the input gradient written straight into
      a padded buffer; no window matrix either way (cnn1d, 12 runs: about +5 % on the whole call).
    One autograd node in place of unfold/permute/bmm nodes: torch's unfold backward is several times
    slower on these shapes, and on the CPU each node is a fixed cost of the step.
    Under CUDA autocast its inputs are cast to the autocast dtype on entry and it runs with autocast off:
    the in-place and out= products of the tap sum are not autocast ops, so their operands must already
    share a dtype.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=dev.AMP_DTYPE)
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, s: int, p: int) -> torch.Tensor:
        n, c, length = x.shape
        r, cout, _, k = w.shape
        lout, taps, _ = _conv1d_taps(k, s, p, length)
        tap_sum = _tap_sum_fits(k, s, p, length, c)
        wt = w.permute(0, 3, 2, 1).reshape(r, k * c, cout)              # (R, k*Cin, Cout), tap-major
        bias = None if b is None else b.unsqueeze(1)
        if tap_sum:
            saved, xp = _padded_segments(x, n, s * lout, c, p)
            xp[:, p:p + length] = x.transpose(1, 2)
            xp[:, :p] = 0
            xp[:, p + length:] = 0
            out = None
            for rows_at, a in _tap_groups(saved, k, s, r, n // r * lout, c):
                if out is not None:
                    out.baddbmm_(a, wt[:, rows_at])
                else:
                    out = torch.bmm(a, wt[:, rows_at]) if bias is None else torch.baddbmm(bias, a, wt[:, rows_at])
        else:
            saved = _im2col(x, k, s, lout, taps).view(r, -1, k * c)
            out = torch.bmm(saved, wt) if bias is None else torch.baddbmm(bias, saved, wt)
        ctx.save_for_backward(saved, wt)
        ctx.geometry = (k, s, p, length, b is not None, tap_sum)
        return out.view(n, lout, cout).transpose(1, 2)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad: torch.Tensor):
        k, s, p, length, has_bias, tap_sum = ctx.geometry
        lout, taps, unreached = _conv1d_taps(k, s, p, length)
        saved, wt = ctx.saved_tensors                                  # windows, or the padded input
        r, kc, cout = wt.shape
        n, c = grad.shape[0], kc // k
        g = grad.transpose(1, 2).reshape(r, -1, cout)
        gx = gw = gb = None
        if ctx.needs_input_grad[1]:
            if tap_sum:
                gw = torch.cat([_weight_grad(g, a) for _, a in _tap_groups(saved, k, s, r, g.shape[1], c)], 2)
            else:
                gw = _weight_grad(g, saved)
            gw = gw.unflatten(2, (k, -1)).transpose(2, 3)
        if has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(1)
        if ctx.needs_input_grad[0] and tap_sum:
            flat, gp = _padded_segments(grad, n, s * lout, c, p)
            if k < s:                                      # positions no tap reaches
                flat.zero_()
            for i, (rows_at, view) in enumerate(_tap_groups(flat, k, s, r, g.shape[1], c)):
                if i == 0:
                    torch.bmm(g, wt[:, rows_at].transpose(1, 2), out=view)
                else:
                    view.baddbmm_(g, wt[:, rows_at].transpose(1, 2))
            gx = gp[:, p:p + length].transpose(1, 2)
        elif ctx.needs_input_grad[0]:
            gcols = torch.bmm(g, wt.transpose(1, 2)).view(n, lout, k, c)
            gx = _col2im(gcols, length, s, taps, unreached).transpose(1, 2)
        return gx, gw, gb, None, None


def _im2col_conv1d(m: nn.Module) -> bool:
    """A Conv1d the run-major layout computes as im2col + bmm (groups 1, dilation 1, numeric padding)."""
    return (type(m) is nn.Conv1d and m.groups == 1 and m.dilation == (1,) and not isinstance(m.padding, str)
            and m.padding_mode == "zeros")


class _BatchedConv(nn.Module):
    """Sample-major: one grouped convolution. Run-major (Conv1d only): `_GemmConv1d`, output channels-last
    (dense for the last conv, `dense_out`)."""

    def __init__(self, stack: _Stack, src: nn.Conv1d | nn.Conv2d, weight: int, bias: int | None,
                 dense_out: bool = False):
        super().__init__()
        self.dense_out = dense_out
        if src.padding_mode != "zeros":
            raise NotImplementedError(f"batched conv: padding_mode {src.padding_mode!r}")
        self.stack, self.w, self.b = stack, weight, bias
        self.fn = _CONVS[type(src)]
        self.stride, self.padding, self.dilation, self.groups = src.stride, src.padding, src.dilation, src.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self.stack
        r = st.runs
        w = st.views[self.w]
        if st.runs_first:
            out = _GemmConv1d.apply(x, w, None if self.b is None else st.views[self.b], self.stride[0],
                                      self.padding[0])
            return out.contiguous() if self.dense_out else out
        bias = None if self.b is None else st.views[self.b].reshape(-1)
        h = x.reshape(-1, r * x.shape[1], *x.shape[2:])
        out = self.fn(h, w.reshape(-1, *w.shape[2:]), bias, self.stride, self.padding, self.dilation,
                      r * self.groups)
        return out.reshape(-1, w.shape[1], *out.shape[2:])


class _BatchedNorm(nn.Module):
    def __init__(self, stack: _Stack, src: nn.BatchNorm1d | nn.BatchNorm2d, weight: int | None,
                 bias: int | None, stats_at: int | None):
        super().__init__()
        if src.track_running_stats and src.momentum is None:
            raise NotImplementedError("batched BatchNorm: momentum=None (cumulative average)")
        self.stack, self.w, self.b, self.at = stack, weight, bias, stats_at
        self.channels, self.eps, self.momentum = src.num_features, src.eps, src.momentum or 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self.stack
        rc = st.runs * self.channels
        mean = var = None
        if self.at is not None:
            mean = st.stats[self.at:self.at + rc]
            var = st.stats[self.at + rc:self.at + 2 * rc]
        w = None if self.w is None else st.views[self.w].reshape(-1)
        b = None if self.b is None else st.views[self.b].reshape(-1)
        out = F.batch_norm(x.reshape(-1, rc, *x.shape[2:]), mean, var, w, b, self.training or mean is None,
                           self.momentum, self.eps)
        return out.reshape(x.shape)


class _Batched:
    """The template network with batched leaves, its stacked state, and the map back to state_dicts."""

    def __init__(self, specs: list[TrainSpec], device: torch.device):
        first = specs[0].model
        _check_same_structure(specs)
        self.runs = r = len(specs)
        pnames = [n for n, _ in first.named_parameters()]
        ptensors = dict(first.named_parameters())
        self.runs_first = not any(isinstance(m, (*_CONVS, *_NORMS)) and not _im2col_conv1d(m)
                                  for m in first.modules())
        dtype = next(iter(ptensors.values())).dtype if ptensors else torch.float32
        params = [dict(s.model.named_parameters()) for s in specs]
        flat = torch.cat([torch.stack([p[n].detach() for p in params]).to(device, dtype).reshape(-1)
                          for n in pnames]) if pnames else torch.zeros(0, device=device, dtype=dtype)
        self.stack = _Stack(r, [ptensors[n].shape for n in pnames], flat, self.runs_first)
        self.pindex = {n: i for i, n in enumerate(pnames)}
        self.net = copy.deepcopy(first).to(device)
        # Channels-last output suits a following conv's im2col. The last conv usually feeds flatten + Linear,
        # where that layout makes ReLU's backward mix layouts (several times slower) and flatten copy anyway,
        # so it emits a dense (N, C, L) tensor. Only speed depends on this guess, never results.
        self.last_conv = next((m for m in reversed(list(self.net.modules())) if type(m) in _CONVS), None)
        self.stat_slices: dict[str, tuple[int, int]] = {}   # buffer name -> (start, channels) in stats
        self.tracked: dict[str, torch.Tensor] = {}         # num_batches_tracked name -> (R,) at start
        stats: list[torch.Tensor] = []
        for name, mod in list(self.net.named_modules()):
            new = self._batched_twin(name, mod, specs, stats, device, dtype)
            if new is None:
                continue
            if name:
                parent, _, leaf = name.rpartition(".")
                setattr(self.net.get_submodule(parent), leaf, new)
            else:
                self.net = new
        if stats:
            self.stack.stats = torch.cat(stats)
        self.state_keys = list(first.state_dict().keys())

    def _batched_twin(self, name: str, mod: nn.Module, specs: list[TrainSpec], stats: list[torch.Tensor],
                      device: torch.device, dtype: torch.dtype) -> nn.Module | None:
        """The batched twin of `mod` (None: keep it), appending a BatchNorm's stacked statistics to `stats`."""
        prefix = f"{name}." if name else ""
        own = dict(mod.named_parameters(recurse=False))
        idx = {k: self.pindex[prefix + k] for k in own}
        if isinstance(mod, nn.Linear):
            return _BatchedLinear(self.stack, idx["weight"], idx.get("bias"))
        if type(mod) in _CONVS:
            return _BatchedConv(self.stack, mod, idx["weight"], idx.get("bias"), dense_out=mod is self.last_conv)
        if isinstance(mod, _NORMS):
            stats_at = None
            if mod.track_running_stats:
                stats_at = at = sum(t.numel() for t in stats)
                for key in ("running_mean", "running_var"):
                    stats.append(torch.cat([s.model.get_submodule(name).get_buffer(key).detach().to(device, dtype)
                                            for s in specs]))
                    self.stat_slices[prefix + key] = (at, mod.num_features)
                    at += self.runs * mod.num_features
                self.tracked[prefix + "num_batches_tracked"] = torch.stack(
                    [s.model.get_submodule(name).num_batches_tracked.detach().cpu() for s in specs])
            return _BatchedNorm(self.stack, mod, idx.get("weight"), idx.get("bias"), stats_at)
        if isinstance(mod, nn.modules.dropout._DropoutNd):
            raise NotImplementedError(f"batched trainer: random module {type(mod).__name__} at {name!r}")
        if own or any(True for _ in mod.buffers(recurse=False)):
            raise NotImplementedError(f"batched trainer: no batched form of {type(mod).__name__} at {name!r}")
        return None

    def states(self, flat: torch.Tensor, stats: torch.Tensor, steps: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Per-run CPU state_dicts (the template's keys and order) from stacked params and statistics."""
        blocks, stats, steps = self.stack.blocks(flat.cpu()), stats.cpu(), steps.cpu()
        out = []
        for r in range(self.runs):
            sd: dict[str, torch.Tensor] = {}
            for key in self.state_keys:
                if key in self.pindex:
                    i = self.pindex[key]
                    sd[key] = blocks[i][r].view(self.stack.shapes[i]).clone()
                elif key in self.stat_slices:
                    at, c = self.stat_slices[key]
                    sd[key] = stats[at + r * c:at + (r + 1) * c].clone()
                else:
                    sd[key] = self.tracked[key][r] + steps[r]
            out.append(sd)
        return out


def _check_same_structure(specs: list[TrainSpec]) -> None:
    def sig(s: TrainSpec):
        return ([type(m) for m in s.model.modules()],
                [(k, tuple(v.shape), v.dtype) for k, v in s.model.state_dict().items()])

    ref = specs[0]
    for i, s in enumerate(specs[1:], start=1):
        for what, a, b in (("recipe", s.recipe, ref.recipe), ("epochs", s.epochs, ref.epochs)):
            if a != b:
                raise ValueError(f"train_batched: spec {i} has {what} {a!r}, spec 0 has {b!r}; "
                                 "one call trains one architecture, width, recipe and epoch count")
        if sig(s) != sig(ref):
            raise ValueError(f"train_batched: spec {i}'s model differs from spec 0's (architecture or width); "
                             "one call trains one architecture, width, recipe and epoch count")


def _owners(runs: int, widths: list[int], device: torch.device) -> torch.Tensor:
    """The run of each element of consecutive (R, width) blocks."""
    return torch.cat([torch.arange(runs, device=device).repeat_interleave(w) for w in widths]) if widths else \
        torch.zeros(0, dtype=torch.long, device=device)


@dataclass
class _Draws:
    """One run-epoch's draws, in jobs.py's order: data order, augmentation, mixup."""

    perm: torch.Tensor                    # (n,) data order
    aug: torch.Tensor | None              # (n, k) augmentation parameters, or None ("none")
    lam: torch.Tensor | None              # (iters,) float64 mixup λ per batch, or None (no mixup)
    mix: torch.Tensor | None              # (n,) mixup permutations, batch by batch, indices within the batch


def _epoch_draws(seed: int, epoch: int, n: int, bs: int, kind: str, mixup: float) -> _Draws:
    """Data order, augmentation and mixup draws of one run-epoch, in jobs.py's order."""
    g = epoch_generator(seed, epoch)
    perm = torch.randperm(n, generator=g)
    if kind == "none" and not mixup:
        return _Draws(perm, None, None, None)
    parts, lams, mixes = [], [], []
    for start in range(0, n, bs):
        b = min(bs, n - start)
        aug = draw_augment(g, kind, b)
        if aug is not None:
            parts.append(aug)
        if mixup:
            lam, q = mixup_draws(g, b, mixup)
            lams.append(lam)
            mixes.append(q)
    return _Draws(perm, torch.cat(parts) if parts else None,
                  torch.tensor(lams, dtype=torch.float64) if mixup else None, torch.cat(mixes) if mixup else None)


def train_batched(specs: list[TrainSpec], data: TensorData, device: torch.device | str = "cpu"
                  ) -> list[TrainOutcome]:
    """Train every spec at once; one TrainOutcome per spec, in order, as `train.train_one` would give.

    All specs must share architecture, width, recipe and epochs (ValueError otherwise). A model holding a
    module with no batched form (anything with parameters or buffers other than Linear, Conv1d/2d,
    BatchNorm1d/2d; Dropout) raises NotImplementedError so the caller can train one at a time; so does
    data that is not in memory (`stream.StreamData`).
    """
    if not isinstance(data, TensorData):
        raise NotImplementedError(f"batched trainer: in-memory data only, not {type(data).__name__}")
    t0 = time.perf_counter()
    device = dev.resolve(device)
    specs = list(specs)
    if not specs:
        return []
    bt = _Batched(specs, device)
    st, net, r = bt.stack, bt.net, bt.runs
    flat = st.flat
    data = data.to(device)
    x_train, y_train = data.x_train.to(flat.dtype), data.y_train
    x_test, y_test = data.x_test.to(flat.dtype), data.y_test
    sample = x_train.shape[1:]
    recipe, epochs = specs[0].recipe, specs[0].epochs
    n, bs = x_train.shape[0], recipe.batch_size
    iters = (n + bs - 1) // bs
    mom, wd = recipe.momentum, recipe.weight_decay
    smoothing, mixing = recipe.label_smoothing, recipe.mixup > 0
    run_ids = torch.arange(r, device=device)
    nesterov = recipe.nesterov and mom > 0

    keep = torch.ones_like(flat, dtype=torch.bool)
    for i, s in enumerate(specs):
        for name, m in (s.mask or {}).items():
            if name not in bt.pindex:
                raise ValueError(f"train_batched: mask names {name!r}, not a parameter of the model")
            j = bt.pindex[name]
            st.blocks(keep)[j][i] = m.to(device).reshape(-1).bool()
    masked = not bool(keep.all())
    keep_f = keep.to(flat.dtype)
    with torch.no_grad():
        flat.mul_(keep_f)
    buf = torch.zeros_like(flat) if mom else None
    alive = torch.ones(r, dtype=torch.bool, device=device)
    steps = torch.zeros(r, dtype=torch.long, device=device)
    has_stats = st.stats.numel() > 0
    # the run each element of the statistics buffer and of the parameter stack belongs to
    stats_run = _owners(r, [c for _, c in bt.stat_slices.values()], device) if has_stats else None
    param_run = _owners(r, [n // r for n in st.sizes], device)
    flat_rows = st.blocks(flat)
    # the tensor SGD steps along: the momentum buffer, or the gradient (plain, or Nesterov's, formed in it)
    step_rows = st.blocks(buf if buf is not None and not nesterov else st.grad)

    def snapshot() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return flat.clone(), st.stats.clone(), steps.clone()

    kept: list[dict[int, dict[str, torch.Tensor]]] = [{} for _ in specs]

    def keep_after(k: int, wanted: list[bool]) -> None:
        if any(wanted):
            states = bt.states(*snapshot())
            for i, w in enumerate(wanted):
                if w:
                    kept[i][k] = states[i]

    keep_after(0, [0 in s.keep_epochs for s in specs])
    keep_best = any(s.keep_best for s in specs)
    best_snap = snapshot() if keep_best else None
    curves: list[list[float]] = [[] for _ in specs]
    running = [True] * r          # host view: still recording epochs
    epochs_run, diverged = [0] * r, [False] * r

    def evaluate() -> list[float]:
        net.eval()
        correct = torch.zeros(r, dtype=torch.long, device=device)
        chunk = max(1, min(EVAL_BATCH, EVAL_ROWS.get(device.type, 4096) // r))
        with torch.no_grad():
            for i in range(0, x_test.shape[0], chunk):
                xb, yb = x_test[i:i + chunk], y_test[i:i + chunk]
                t = xb.shape[0]
                if bt.runs_first:
                    rows = xb.unsqueeze(0).expand(r, *xb.shape).reshape(r * t, *sample)
                else:
                    rows = xb.unsqueeze(1).expand(t, r, *sample).reshape(t * r, *sample)
                with dev.autocast(device):
                    pred = net(rows).argmax(1)
                hit = pred.view(r, t) == yb if bt.runs_first else (pred.view(t, r) == yb[:, None]).t()
                correct += hit.sum(1)
        net.train()
        return (100.0 * correct.double() / max(1, x_test.shape[0])).tolist()

    net.train()
    for e in range(epochs):
        if not any(running):
            break
        sched = [s.schedule_offset + e for s in specs]
        draws = [_epoch_draws(s.seed, ep, n, bs, data.augment, recipe.mixup) for s, ep in zip(specs, sched)]
        order = torch.stack([d.perm for d in draws])                                     # (R, n)
        aug = None if draws[0].aug is None else torch.stack([d.aug for d in draws])      # (R, n, k)
        if not bt.runs_first:
            order = order.t()
            aug = None if aug is None else aug.transpose(0, 1)
        order = order.contiguous().to(device)
        aug = None if aug is None else aug.contiguous().to(device)
        if mixing:
            # λ and 1 - λ per (iteration, run), each rounded once from float64 as train_one's scalars are;
            # the partner of each row as a row of the stacked batch (sample-major: independent of b).
            lam64 = torch.stack([d.lam for d in draws])                                  # (R, iters)
            lam_it = lam64.t().to(flat.dtype).contiguous().to(device)
            rest_it = (1 - lam64).t().to(flat.dtype).contiguous().to(device)
            partner = torch.stack([d.mix for d in draws])                                # (R, n)
            if not bt.runs_first:
                partner = partner.t() * r + torch.arange(r)                              # (n, R)
            partner = partner.contiguous().to(device)
        neg_lr = torch.tensor([[[-s.lr * recipe.lr_factor(ep + it / iters)] for s, ep in zip(specs, sched)]
                               for it in range(iters)], dtype=flat.dtype).to(device)    # (iters, R, 1)
        for it in range(iters):
            lo, hi = it * bs, min(n, (it + 1) * bs)
            b = hi - lo
            idx = order[:, lo:hi] if bt.runs_first else order[lo:hi]
            rows = idx.reshape(-1)
            xb = x_train.index_select(0, rows)
            yb = y_train.index_select(0, rows)
            if aug is not None:
                p = aug[:, lo:hi] if bt.runs_first else aug[lo:hi]
                xb = apply_augment(xb, data.augment, p.reshape(-1, p.shape[-1]))
            if mixing:
                if bt.runs_first:
                    src = (partner[:, lo:hi] + run_ids[:, None] * b).reshape(-1)
                    lam, rest = lam_it[it].repeat_interleave(b), rest_it[it].repeat_interleave(b)
                else:
                    src = partner[lo:hi].reshape(-1)
                    lam, rest = lam_it[it].repeat(b), rest_it[it].repeat(b)
                col = (-1,) + (1,) * (xb.dim() - 1)
                xb = lam.view(col) * xb + rest.view(col) * xb.index_select(0, src)
            before = alive
            old_stats = st.stats.clone() if has_stats else None
            with dev.autocast(device):
                out = net(xb)
            # Classes along dim 1 of a (1, C, N) view: the CPU log-softmax over a short strided dim is
            # several times faster than over the contiguous last dim of (N, C). Same per-row losses.
            # In the parameters' dtype, as autocast computes train_one's loss (bf16 logits on CUDA).
            logits = out.to(flat.dtype).t().unsqueeze(0)
            per = F.cross_entropy(logits, yb.unsqueeze(0), reduction="none", label_smoothing=smoothing)[0]
            if mixing:
                per = lam * per + rest * F.cross_entropy(logits, yb[src].unsqueeze(0), reduction="none",
                                                         label_smoothing=smoothing)[0]
            loss = per.view(r, b).mean(1) if bt.runs_first else per.view(b, r).mean(0)
            alive = before & torch.isfinite(loss)
            st.grad.zero_()
            loss.sum().backward()
            st.check_grads()
            with torch.no_grad():  # torch.optim.SGD's arithmetic, in place on the flat stack
                g = st.grad
                if masked:
                    g.mul_(keep_f)
                if wd:
                    g.add_(flat, alpha=wd)
                if buf is not None:
                    buf.mul_(mom).add_(g)
                    if nesterov:
                        g.add_(buf, alpha=mom)
                # Dead runs' rows are zeroed NaN-safely. A host check is free on the CPU and skips the
                # pass; on CUDA it would sync every step.
                dead = ~alive[:, None] if device.type != "cpu" or not bool(alive.all()) else None
                lr_col = neg_lr[it]
                for p_rows, g_rows in zip(flat_rows, step_rows):
                    if dead is not None:
                        g_rows.masked_fill_(dead, 0)
                    p_rows.addcmul_(g_rows, lr_col)
                if old_stats is not None:
                    st.stats.copy_(torch.where(before[stats_run], st.stats, old_stats))
                steps += before
        alive_host = alive.tolist()
        accs = evaluate()
        improved = []
        wanted = []
        for i in range(r):
            if not running[i]:
                improved.append(False)
                wanted.append(False)
                continue
            epochs_run[i] = e + 1
            curves[i].append(accs[i])
            improved.append(accs[i] > max(curves[i][:-1], default=-1.0))
            wanted.append(e + 1 in specs[i].keep_epochs)
            if not alive_host[i]:
                diverged[i] = True
                running[i] = False
        keep_after(e + 1, wanted)
        if best_snap is not None and any(improved):
            imp = torch.tensor(improved, device=device)
            now = snapshot()
            best_snap = (torch.where(imp[param_run], now[0], best_snap[0]),
                         torch.where(imp[stats_run], now[1], best_snap[1]) if has_stats else now[1],
                         torch.where(imp, now[2], best_snap[2]))
    if epochs == 0:
        for i, a in enumerate(evaluate()):
            curves[i].append(a)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    final = bt.states(*snapshot())
    best_states = bt.states(*best_snap) if best_snap is not None else [None] * r
    wall = (time.perf_counter() - t0) / r
    return [TrainOutcome(state=final[i], top1=curves[i][-1], best_top1=max(max(curves[i]), 0.0),
                         diverged=diverged[i], epochs_run=epochs_run[i],
                         best_state=best_states[i] if specs[i].keep_best else None, kept=kept[i],
                         curve=curves[i], wall_s=wall) for i in range(r)]
