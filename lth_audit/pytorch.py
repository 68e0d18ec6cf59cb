"""Helpers for your own PyTorch code: the measurements a sanity-check record needs (docs/own-runs.md).

Works with models pruned through `torch.nn.utils.prune` (each pruned tensor `x` becomes a parameter
`x_orig` and a buffer `x_mask`) and with plain models plus a dict of masks. Names are always the
plain parameter names (`layer1.0.conv1.weight`), whichever form the model is in.

- `prunable_names`: conv and linear weights, by default without the stem conv and the classifier
  (SPEC §1: the first conv and the last linear layer, in the model's module order); `exclude=` sets
  the modules left dense yourself, `exclude=()` ranks every conv and linear weight.
- `masks`: {name: 0/1 tensor} from a pruned model, a pruned model's state dict, or a dict of masks.
- `sparsity`: pruned fraction of the prunable weights, measured (SPEC §3 records it as measured).
- `nonzero_params`: the parameters that remain (what a small-dense network is matched to).
- `rewind`: load θ0 (or θt) into a pruned model, masks kept (`x_orig` takes the weights).
- `r_p`: the correlation indicator R_p of Appendix E for two sets of weights under a mask.
- `small_dense_width`: the width at which `build(width)` has a target number of parameters.

This module imports torch; nothing else on the audit side does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

try:
    import torch
except ImportError as exc:  # the base install has no torch
    raise ImportError('lth_audit.pytorch needs torch: pip install "lth-audit[train]" (or torch >= 2.4)') from exc
from torch import nn
from torch.nn.utils import prune

from .backend.pruning import PRUNABLE, pruned_count
from .backend.pruning import prunable_names as _prunable_names
from .correlation import correlation_indicator

Masks = dict[str, torch.Tensor]
StateOrModel = nn.Module | Mapping[str, torch.Tensor]

_ORIG, _MASK = "_orig", "_mask"


def default_dense(model: nn.Module) -> tuple[str, ...]:
    """Module names SPEC §1 leaves dense by default: the first conv (stem) and the last linear (classifier)."""
    convs = [n for n, m in model.named_modules() if isinstance(m, PRUNABLE) and not isinstance(m, nn.Linear)]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return tuple(([convs[0]] if convs else []) + ([linears[-1]] if linears else []))


def prunable_names(model: nn.Module, exclude: Iterable[str] | None = None) -> list[str]:
    """`<module>.weight` of every conv and linear module not excluded (default: `default_dense(model)`)."""
    return _prunable_names(model, default_dense(model) if exclude is None else exclude)


def weights(source: StateOrModel) -> dict[str, torch.Tensor]:
    """The effective tensors under their plain names: for a pruned tensor, `x_orig * x_mask` as `x`."""
    state = source.state_dict() if isinstance(source, nn.Module) else dict(source)
    out = {}
    for name, value in state.items():
        if name.endswith(_MASK) and name[:-len(_MASK)] + _ORIG in state:
            continue
        if name.endswith(_ORIG) and name[:-len(_ORIG)] + _MASK in state:
            base = name[:-len(_ORIG)]
            out[base] = (value * state[base + _MASK]).detach()
        else:
            out[name] = value.detach() if isinstance(value, torch.Tensor) else value
    return out


def masks(source: StateOrModel) -> Masks:
    """{parameter name: 0/1 float mask}: the `x_mask` buffers of a pruned model (or of its state dict),
    or, for a dict without such keys, the dict itself (checked to hold only 0 and 1)."""
    state = source.state_dict() if isinstance(source, nn.Module) else dict(source)
    found = {n[:-len(_MASK)]: v for n, v in state.items() if n.endswith(_MASK) and n[:-len(_MASK)] + _ORIG in state}
    if not found and not isinstance(source, nn.Module):
        found = state
    out = {}
    for name, m in found.items():
        m = torch.as_tensor(m).detach().to("cpu", torch.float32)
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError(f"mask {name!r} holds values other than 0 and 1")
        out[name] = m.clone()
    return out


def sparsity(model: nn.Module, mask: Mapping[str, torch.Tensor] | None = None,
             exclude: Iterable[str] | None = None) -> float:
    """Fraction of the prunable weights that are pruned: zeros of the masks (given, or the model's own
    `torch.nn.utils.prune` masks); for a model without masks, the exact zeros of its weights.

    A mask with zeros on a layer outside the prunable set is an error: the number would leave out pruned
    weights (pass `exclude=` naming the modules you really left dense, or `exclude=()`).
    """
    names = prunable_names(model, exclude)
    m = masks(model) if mask is None else masks(mask)
    stray = sorted(n for n, v in m.items() if n not in names and pruned_count({n: v}))
    if stray:
        raise ValueError(f"pruned weights outside the prunable set {names}: {stray}; the default leaves the stem "
                         f"conv and the classifier dense (exclude={list(default_dense(model))}): pass exclude=")
    w = weights(model)
    total = sum(w[n].numel() for n in names)
    pruned = pruned_count({n: m[n] for n in names if n in m} if m else {n: w[n] for n in names})
    return pruned / total if total else 0.0


def nonzero_params(model: nn.Module, mask: Mapping[str, torch.Tensor] | None = None) -> int:
    """Parameters that remain: all parameters (a pruned tensor counted once) less the pruned weights, i.e.
    the zeros of the masks (given, or the model's own); for a model without masks, the exact zeros of its
    conv and linear weights (biases and normalisation parameters are never pruned, and may be 0)."""
    w = weights(model)
    params = [n[:-len(_ORIG)] if n.endswith(_ORIG) else n for n, _ in model.named_parameters()]
    total = sum(w[n].numel() for n in params)
    m = masks(model) if mask is None else masks(mask)
    unknown = sorted(set(m) - set(params))
    if unknown:
        raise KeyError(f"masks for tensors the model does not have: {unknown}")
    return total - pruned_count(m if m else {n: w[n] for n in prunable_names(model, exclude=())})


def rewind(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load `state` (θ0 or θt: plain names, or a pruned model's state dict) into `model`, keeping its masks.

    For each pruned tensor, `x_orig` takes the weights and the effective `x = x_orig * x_mask` is
    recomputed at once; every other parameter and buffer (biases, BatchNorm) is loaded as it is.
    """
    src = weights(state)
    current = model.state_dict()
    new, missing = {}, []
    for name, value in current.items():
        if name.endswith(_MASK) and name[:-len(_MASK)] + _ORIG in current:
            new[name] = value
            continue
        key = name[:-len(_ORIG)] if name.endswith(_ORIG) and name[:-len(_ORIG)] + _MASK in current else name
        if key not in src:
            missing.append(key)
            continue
        new[name] = src[key]
    if missing:
        raise KeyError(f"state has no value for {missing}")
    model.load_state_dict(new)
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                setattr(module, hook._tensor_name, hook.apply_mask(module))
    return model


def r_p(theta: StateOrModel, theta_prime: StateOrModel, mask: Mapping[str, torch.Tensor] | None = None,
        p: float = 0.1, names: Iterable[str] | None = None) -> float:
    """R_p(θ, θ') over the layers `names` (default: the masks' layers; without masks, the prunable weights
    of `theta` when it is a model, else every tensor of two or more dimensions), counting only the
    weights a mask keeps. Calls `lth_audit.correlation.correlation_indicator`."""
    a, b = weights(theta), weights(theta_prime)
    m = masks(mask) if mask is not None else masks(theta) if isinstance(theta, nn.Module) else {}
    if names is None:
        if m:
            names = list(m)
        elif isinstance(theta, nn.Module):
            names = prunable_names(theta)
        else:
            names = [n for n, v in a.items() if isinstance(v, torch.Tensor) and v.dim() >= 2]
    names = list(names)

    def numpy(state: dict[str, torch.Tensor]) -> dict:
        return {n: state[n].detach().to("cpu", torch.float64).numpy() for n in names}

    return correlation_indicator(numpy(a), numpy(b), p=p, masks={n: m[n].numpy() for n in names if n in m})


def count_params(build: Callable[[float], nn.Module], width: float) -> int:
    """Parameters of `build(width)`, built on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        model = build(width)
    return sum(p.numel() for p in model.parameters())


def small_dense_width(build: Callable[[float], nn.Module], target: int, lo: float = 1e-3,
                      hi: float = 1.0) -> tuple[float, int]:
    """The width in [lo, hi] at which `build(width)` has the parameter count closest to `target`: the
    small-dense network (SDT) matched to a ticket's `nonzero_params`. Returns (width, params).

    The count must not decrease as the width grows (true when every layer size grows with it); the
    search bisects for the smallest width reaching the target and compares it with the one just below.
    """
    hi_count = count_params(build, hi)
    if hi_count < target:
        return hi, hi_count
    lo_count = count_params(build, lo)
    if lo_count >= target:
        return lo, lo_count
    a, b = lo, hi
    for _ in range(50):
        mid = 0.5 * (a + b)
        if count_params(build, mid) >= target:
            b = mid
        else:
            a = mid
    pa, pb = count_params(build, a), count_params(build, b)
    return (a, pa) if abs(pa - target) < abs(pb - target) else (b, pb)
