"""Thresholds per dataset (SPEC §2), their overrides, and the audit profiles."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .strict import Number

Pp = Annotated[float, Field(ge=0.0, allow_inf_nan=False), Number]   # Field first: nan says "finite number"
Epochs = Annotated[int, Number, Field(ge=1)]
Sparsity = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False), Number]


class Thresholds(BaseModel):
    """Every number a verdict depends on, in percentage points unless named otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    similar: Pp
    gap: Pp
    sufficient_epochs: Epochs
    min_sparsity: Sparsity = 0.59
    band_floor: Pp = 0.1
    band_se: Pp = 1.0
    seed_sd: Pp | None = None   # known seed SD of reported numbers (one run per cell): SPEC §2 "Noise"
    stable: Pp = 2.0            # ⑦: instability (pp) at or below which a ticket is stable (SPEC §6)


class ThresholdOverrides(BaseModel):
    """The `thresholds:` mapping of a claim file, or the `--lth-*` command-line overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    similar: Pp | None = None
    gap: Pp | None = None
    sufficient_epochs: Epochs | None = None
    min_sparsity: Sparsity | None = None
    band_floor: Pp | None = None
    band_se: Pp | None = None
    seed_sd: Pp | None = None
    stable: Pp | None = None

    def merged(self, other: ThresholdOverrides | None) -> ThresholdOverrides:
        """`other` wins where it sets a value (command line over claim file)."""
        if other is None:
            return self
        return self.model_copy(update=other.model_dump(exclude_none=True))


TABLE: dict[str, dict[str, float | int]] = {
    "cifar10": {"similar": 0.5, "gap": 0.5, "sufficient_epochs": 160},
    "cifar100": {"similar": 1.0, "gap": 0.5, "sufficient_epochs": 160},
    "tiny-imagenet": {"similar": 1.0, "gap": 0.5, "sufficient_epochs": 160},
    "imagenet": {"similar": 1.5, "gap": 0.5, "sufficient_epochs": 90},
}


class MissingThresholds(ValueError):
    """A dataset outside the table whose thresholds were not given: an error, never a guess."""


def resolve(dataset: str, overrides: ThresholdOverrides | None = None) -> Thresholds:
    """The thresholds for `dataset`: the table's row, with `overrides` on top."""
    base = dict(TABLE.get(dataset.lower(), {}))
    if overrides is not None:
        base.update(overrides.model_dump(exclude_none=True))
    needed = [k for k in ("similar", "gap", "sufficient_epochs") if k not in base]
    if needed:
        raise MissingThresholds(
            f"dataset {dataset!r} has no thresholds in SPEC §2's table; give "
            f"{', '.join(needed)} under `thresholds:` in the claim file (known: {', '.join(TABLE)})")
    return Thresholds(**base)

