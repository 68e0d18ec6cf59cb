"""The correlation indicator R_p of Appendix E, over two sets of weights and an optional mask.

R_p(θ, θ') = Σ_l |T_p(θ_l) ∩ T_p(θ'_l)| / (p · Σ_l N_l) (Σ_l |T_p(θ_l)| here), where T_p(θ_l) is the index set of the
top-p·100 % magnitudes among the N_l *remaining* (unmasked) weights of layer l. R_p ≈ p means weak
correlation, R_p > p positive, R_p = 1 identical rankings.

Arrays may be NumPy arrays or CPU torch tensors (anything `numpy.asarray` accepts); this module does
not import torch, so the audit side can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def _top_k(values: np.ndarray, k: int) -> set[int]:
    # Stable sort on -|v|: ties go to the lower index, so the result does not depend on the platform.
    order = np.argsort(-np.abs(values), kind="stable")
    return set(order[:k].tolist())


def correlation_indicator(theta: Mapping[str, Any], theta_prime: Mapping[str, Any], p: float = 0.1,
                          masks: Mapping[str, Any] | None = None) -> float:
    """R_p over the layers of `theta` (names present in both; `masks` names the remaining weights).

    Per layer k_l = round(p · N_l) weights are taken, and the denominator is Σ k_l, the discrete form of
    p · Σ N_l: with it R_p stays in [0, 1] even when rounding makes a k_l exceed p · N_l. A layer with
    no remaining weight is skipped.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    missing = sorted(set(theta) ^ set(theta_prime))
    if missing:
        raise KeyError(f"layers present in only one state dict: {missing}")
    overlap = 0
    taken = 0
    for name in sorted(theta):
        a = np.asarray(theta[name], dtype=np.float64).ravel()
        b = np.asarray(theta_prime[name], dtype=np.float64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"layer {name!r}: shapes differ ({a.size} vs {b.size} weights)")
        keep = np.ones(a.shape, dtype=bool)
        if masks is not None and name in masks:
            keep = np.asarray(masks[name]).ravel() != 0
            if keep.shape != a.shape:
                raise ValueError(f"layer {name!r}: mask has {keep.size} entries, weights {a.size}")
        idx = np.flatnonzero(keep)
        n = idx.size
        if n == 0:
            continue
        k = int(round(p * n))
        overlap += len(_top_k(a[idx], k) & _top_k(b[idx], k))
        taken += k
    if taken == 0:
        raise ValueError("no remaining weights to compare (or p too small to take any)")
    return overlap / taken
