"""The threshold overrides as command-line options, shared by the CLI and the pytest plugin.

Kept free of the audit engine (and of pydantic) so that pytest's start-up, which registers the
plugin's options, stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .thresholds import ThresholdOverrides

THRESHOLD_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("similar", float, "pp for ④ ⑤"), ("gap", float, "pp for ② ③"), ("sufficient_epochs", int, "epochs for ①"),
    ("min_sparsity", float, "for ①"), ("band_floor", float, "pp, smallest boundary half-width"),
    ("band_se", float, "boundary half-width in standard errors"),
    ("seed_sd", float, "pp, the seed SD of reported numbers that come one run per cell"),
    ("stable", float, "pp of instability for ⑦, profile extended"))


def add_threshold_options(add: Callable[..., Any]) -> None:
    """Register `--similar` ... `--band-se` (dest `lth_<name>`) with `add` (add_argument or addoption)."""
    for name, kind, text in THRESHOLD_OPTIONS:
        flag = name.replace("_", "-")
        add(f"--{flag}", dest=f"lth_{name}", type=kind, default=None,
            help=f"override the {flag} threshold ({text}) of every claim")


def overrides_from(ns: object) -> ThresholdOverrides:
    from .thresholds import ThresholdOverrides

    return ThresholdOverrides(**{name: getattr(ns, f"lth_{name}", None) for name, _, _ in THRESHOLD_OPTIONS})
