"""Command-line options shared by the CLI and the pytest plugin: threshold overrides and input limits.

Kept free of the audit engine (and of pydantic) so that pytest's start-up, which registers the
plugin's options, stays cheap: a threshold value is checked against the claim-file schema only when
it is given. A bad value is a usage error naming the option (argparse: exit 2; pytest: exit 4).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .inputfiles import MAX_FILES, MAX_STORE_BYTES, InputLimits

if TYPE_CHECKING:
    from .thresholds import ThresholdOverrides

THRESHOLD_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("similar", float, "pp for ④ ⑤"), ("gap", float, "pp for ② ③"), ("sufficient_epochs", int, "epochs for ①"),
    ("min_sparsity", float, "for ①"), ("band_floor", float, "pp, smallest boundary half-width"),
    ("band_se", float, "boundary half-width in standard errors"),
    ("seed_sd", float, "pp, the seed SD of reported numbers that come one run per cell"),
    ("stable", float, "pp of instability for ⑦, profile extended"))


def _threshold(name: str, kind: type) -> Callable[[str], Any]:
    """argparse `type=` for one threshold: a number the claim-file schema accepts for `name`."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        from pydantic import ValidationError

        from .thresholds import ThresholdOverrides

        try:
            ThresholdOverrides.model_validate({name: value})
        except ValidationError as exc:
            says = exc.errors()[0]["msg"].replace("Input should be", "must be")
            raise argparse.ArgumentTypeError(f"{says}, got {text!r}") from None
        return value

    parse.__name__ = kind.__name__
    return parse


def add_threshold_options(add: Callable[..., Any]) -> None:
    """Register `--similar` ... `--band-se` (dest `lth_<name>`) with `add` (add_argument or addoption)."""
    for name, kind, text in THRESHOLD_OPTIONS:
        flag = name.replace("_", "-")
        add(f"--{flag}", dest=f"lth_{name}", type=_threshold(name, kind), default=None,
            help=f"override the {flag} threshold ({text}) of every claim")


def overrides_from(ns: object) -> ThresholdOverrides:
    from .thresholds import ThresholdOverrides

    return ThresholdOverrides(**{name: getattr(ns, f"lth_{name}", None) for name, _, _ in THRESHOLD_OPTIONS})


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.I)


def _count(text: str) -> int:
    """A positive whole number, e.g. `20000`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _size(text: str) -> int:
    """A positive size in bytes, with an optional binary unit: `300000`, `512K`, `256M`, `2G`."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected a size such as 268435456, 256M or 2G, got {text!r}")
    value = float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " ")
    if not math.isfinite(value) or value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text!r}")
    return int(value)


_count.__name__, _size.__name__ = "count", "size"


def add_limit_options(add: Callable[..., Any]) -> None:
    """Register `--max-files` and `--max-store-bytes` (dest `lth_max_*`): how much one claim file may
    make the audit read (docs/input.md)."""
    add("--max-files", dest="lth_max_files", type=_count, default=None, metavar="N",
        help=f"most files one claim file's `records:` (or `landscapes:`) may match, and claim files or stores "
             f"one folder argument may hold (default {MAX_FILES:,})")
    add("--max-store-bytes", dest="lth_max_store_bytes", type=_size, default=None, metavar="SIZE",
        help=f"largest record store read, in bytes or with K/M/G (default {MAX_STORE_BYTES // 2**20} MiB)")


def limits_from(ns: object) -> InputLimits:
    files, size = getattr(ns, "lth_max_files", None), getattr(ns, "lth_max_store_bytes", None)
    return InputLimits(max_files=files or MAX_FILES, max_store_bytes=size or MAX_STORE_BYTES)
