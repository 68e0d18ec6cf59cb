"""Records grouped into cells: one (setting, lr, epochs) with the seed mean and its standard error."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from .records import RunRecord, Setting

SPARSITY_TOLERANCE = 0.005
"""Records are measured sparsities (0.8322); a claim names the grid value (0.832). They match within this."""


@dataclass(frozen=True)
class Cell:
    """Every seed of one setting trained at one learning rate for one number of epochs."""

    setting: Setting
    lr: float
    epochs: int               # total epochs the weights saw (wr-*: rewind epoch included)
    values: tuple[float, ...]  # accuracy per seed, sorted so that record order never matters
    run_ids: tuple[str, ...]
    sparsity: float            # mean measured sparsity of the runs

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    @property
    def se(self) -> float:
        """Standard error of the seed mean; 0 for a single seed."""
        if len(self.values) < 2:
            return 0.0
        return statistics.stdev(self.values) / math.sqrt(len(self.values))


def same_sparsity(a: float, b: float) -> bool:
    return abs(a - b) <= SPARSITY_TOLERANCE


def build_cells(records: Iterable[RunRecord], metric: str = "top1") -> list[Cell]:
    """Group records by (setting, lr, total epochs); cells come out in a canonical order."""
    groups: dict[tuple[Setting, float, int], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.setting, r.lr, r.total_epochs), []).append(r)
    cells = []
    for (setting, lr, epochs), rs in sorted(groups.items(), key=lambda kv: (kv[0][0].value, kv[0][1], kv[0][2])):
        rs = sorted(rs, key=lambda r: r.run_id)
        cells.append(Cell(setting, lr, epochs, tuple(sorted(r.metric(metric) for r in rs)),
                          tuple(r.run_id for r in rs), math.fsum(r.sparsity for r in rs) / len(rs)))
    return cells


@dataclass(frozen=True)
class TicketEvidence:
    """The cells one ticket is judged on: its own, its random reinit, its small-dense twin, pretraining."""

    ticket: tuple[Cell, ...]
    rr: tuple[Cell, ...]
    sdt: tuple[Cell, ...]
    pretrain: tuple[Cell, ...]
    ticket_setting: Setting
    rr_setting: Setting

    @property
    def sweep(self) -> tuple[float, ...]:
        """Every learning rate seen in any of the four groups."""
        return tuple(sorted({c.lr for group in (self.ticket, self.rr, self.sdt, self.pretrain) for c in group}))

    def role(self, name: str) -> tuple[Cell, ...]:
        return getattr(self, name)


def ticket_evidence(records: Iterable[RunRecord], arch: str, dataset: str, setting: Setting, sparsity: float,
                    metric: str = "top1") -> TicketEvidence:
    """Select and group the records a claim about (arch, dataset, setting, sparsity) needs."""
    method = setting.method
    rr_setting = Setting(f"rr-{method}")
    mine = [r for r in records if r.arch == arch and r.dataset == dataset.lower()]

    def pick(s: Setting, sparse: bool) -> tuple[Cell, ...]:
        chosen = [r for r in mine if r.setting is s and (not sparse or same_sparsity(r.sparsity, sparsity))]
        return tuple(build_cells(chosen, metric))

    return TicketEvidence(ticket=pick(setting, True), rr=pick(rr_setting, True), sdt=pick(Setting.SDT, True),
                          pretrain=pick(Setting.PRETRAIN, False), ticket_setting=setting, rr_setting=rr_setting)
