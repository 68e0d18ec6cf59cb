"""Strict scalars for every input model (records, claim files, thresholds, experiments): a string or a
boolean where a number belongs, or anything but true/false where a boolean belongs, is an error naming
the field, never a silent conversion (`lr: true` used to become 1.0)."""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator, Strict


def _number(value: Any) -> Any:
    """A number stays a number: "52.5" or true where a number belongs is an error, never converted."""
    if isinstance(value, (str, bool)):
        raise ValueError(f"expected a number, not {'true/false' if isinstance(value, bool) else 'a string'}")
    return value


Number = BeforeValidator(_number)
"""Marks a float or int field strict about its type (an int where a float belongs is fine)."""
Boolean = Strict()
"""A bool field takes true or false only, never "yes" or 1."""
