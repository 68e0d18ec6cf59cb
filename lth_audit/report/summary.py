"""The paper's Table 3 for a set of audit results: one row per (arch, dataset)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..audit import ClaimResult, Grade

YES, NO, AT_BOUNDARY, MIXED, UNKNOWN = "✓", "✗", "△", "mixed", "?"


@dataclass(frozen=True)
class Table3Row:
    arch: str
    dataset: str
    jackpot: str
    secondary: str
    prefers_small_lr: str
    prefers_imp: str
    claims: int
    mask_beats_random: str = UNKNOWN   # the `extended` profile's columns (SPEC §6)
    stable: str = UNKNOWN


def _prize(results: Sequence[ClaimResult], prize: str) -> str:
    grades = {r.grades[prize] for r in results if r.verdict != "insufficient-evidence"}
    if Grade.CLEAN in grades:
        return YES
    return AT_BOUNDARY if Grade.BOUNDARY in grades else NO


def _vote(values: Sequence[bool | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return UNKNOWN
    return YES if all(known) else NO if not any(known) else MIXED


def table3(results: Sequence[ClaimResult]) -> list[Table3Row]:
    """A ✓ / △ / ✗ row per network and data set, as in the paper: a prize is won if any audited
    sparsity wins it; an observation is ✓ when every audited sparsity shows it, `mixed` when some do."""
    groups: dict[tuple[str, str], list[ClaimResult]] = {}
    for r in results:
        groups.setdefault((r.arch, r.dataset), []).append(r)
    rows = []
    for (arch, dataset), rs in sorted(groups.items()):
        prefers = [None if r.observations.prefers is None else r.observations.prefers == "imp" for r in rs]
        rows.append(Table3Row(arch, dataset, _prize(rs, "jackpot"), _prize(rs, "secondary"),
                              _vote([r.observations.prefers_small_lr for r in rs]), _vote(prefers), len(rs),
                              _vote([r.observations.mask_beats_random for r in rs]),
                              _vote([r.observations.stable for r in rs])))
    return rows


def extended(results: Sequence[ClaimResult]) -> bool:
    """Whether any claim was judged under `extended`: Table 3 then gains its two columns."""
    return any(r.profile == "extended" for r in results)


def format_table3(rows: Sequence[Table3Row], with_extended: bool = False) -> str:
    head = ("arch", "dataset", "jackpot", "secondary", "prefers small lr", "prefers IMP", "claims")
    body = [(r.arch, r.dataset, r.jackpot, r.secondary, r.prefers_small_lr, r.prefers_imp, str(r.claims))
            for r in rows]
    if with_extended:
        head += ("mask beats random", "stable")
        body = [b + (r.mask_beats_random, r.stable) for b, r in zip(body, rows)]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*b) for b in body)])
