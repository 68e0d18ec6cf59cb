"""Records grouped into cells (SPEC §2 "Cells" and "Noise"): one setting at one learning rate, with the
seed mean and, where there is one, a noise estimate.

All runs with at least the sufficient epochs form one cell whatever their exact epochs (early stopping
at 160, 163, 170 is one cell of three seeds); shorter runs form cells by their exact epochs. A cell's
noise is its own seed SD, raised to the claim file's `seed_sd` when that is stated; a single run has
none unless `seed_sd` is stated.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .records import RunRecord, Setting

SPARSITY_TOLERANCE = 0.005
"""Records are measured sparsities (0.8322); a claim names the grid value (0.832). They match within this."""


@dataclass(frozen=True)
class Cell:
    """Every seed of one setting trained at one learning rate: all sufficient-epoch runs, or one exact epoch count."""

    setting: Setting
    lr: float
    epochs: int                # total epochs the weights saw (wr-*: rewind epoch included); the least in the cell
    max_epochs: int            # the most: equal to `epochs` unless early stopping varied within a sufficient cell
    sufficient: bool           # trained for at least the sufficient epochs
    values: tuple[float, ...]  # accuracy per seed, sorted so that record order never matters
    run_ids: tuple[str, ...]
    sparsity: float            # mean measured sparsity of the runs
    sigma: float | None        # the noise: seed SD (n >= 2) or max(SD, seed_sd); seed_sd for one run; else None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    @property
    def sd(self) -> float | None:
        """The sample SD of the seeds themselves (None for one run), whatever `seed_sd` says."""
        return statistics.stdev(self.values) if self.n >= 2 else None

    @property
    def se(self) -> float | None:
        """Standard error of the mean, σ/√n; None when the cell has no noise estimate."""
        return None if self.sigma is None else self.sigma / math.sqrt(self.n)

    @property
    def epochs_label(self) -> str:
        """`160`, or `160–170` for a sufficient cell whose runs stopped at different epochs."""
        return str(self.epochs) if self.epochs == self.max_epochs else f"{self.epochs}–{self.max_epochs}"

    def at_least_as_long_as(self, other: Cell) -> bool:
        """Trained at least as long as `other`: any sufficient cell is; a short cell only against shorter ones."""
        return self.sufficient or (not other.sufficient and self.epochs >= other.epochs)


def same_sparsity(a: float, b: float) -> bool:
    return abs(a - b) <= SPARSITY_TOLERANCE


def noise(values: tuple[float, ...], seed_sd: float | None) -> float | None:
    """σ of SPEC §2's noise (revision 2) for one cell's per-seed values."""
    own = statistics.stdev(values) if len(values) >= 2 else None
    if own is None:
        return seed_sd
    return own if seed_sd is None else max(own, seed_sd)


def build_cells(records: Iterable[RunRecord], sufficient_epochs: int, metric: str = "top1",
                seed_sd: float | None = None) -> list[Cell]:
    """Group records into cells; cells come out in a canonical order (setting, lr, epochs)."""
    groups: dict[tuple[Setting, float, int | None], list[RunRecord]] = {}
    for r in records:
        key = None if r.total_epochs >= sufficient_epochs else r.total_epochs
        groups.setdefault((r.setting, r.lr, key), []).append(r)
    cells = []
    for (setting, lr, _), rs in groups.items():
        rs = sorted(rs, key=lambda r: r.run_id)
        values = tuple(sorted(r.metric(metric) for r in rs))
        epochs = [r.total_epochs for r in rs]
        cells.append(Cell(setting, lr, min(epochs), max(epochs), min(epochs) >= sufficient_epochs, values,
                          tuple(r.run_id for r in rs), math.fsum(r.sparsity for r in rs) / len(rs),
                          noise(values, seed_sd)))
    return sorted(cells, key=lambda c: (c.setting.value, c.lr, c.epochs))


ROLES = ("ticket", "pretrain", "rr", "sdt", "rp")
"""The groups of cells a ticket is judged on; a condition names its reference group by role."""


@dataclass(frozen=True)
class TicketEvidence:
    """The cells one ticket is judged on, by role: its own, pretraining, and each reference setting."""

    groups: Mapping[str, tuple[Cell, ...]]
    settings: Mapping[str, Setting]         # role -> the setting its cells are of
    ticket_runs: Mapping[str, RunRecord]    # run id -> record, for the ticket's own cells

    def quantity(self, cell: Cell, name: str) -> list[float | None]:
        """A recorded per-run quantity (e.g. `instability`) of a ticket cell's runs, in run order."""
        return [getattr(self.ticket_runs[i], name) for i in cell.run_ids]

    @property
    def ticket(self) -> tuple[Cell, ...]:
        return self.groups["ticket"]

    @property
    def pretrain(self) -> tuple[Cell, ...]:
        return self.groups["pretrain"]

    @property
    def ticket_setting(self) -> Setting:
        return self.settings["ticket"]

    @property
    def sweep(self) -> tuple[float, ...]:
        """Every learning rate seen in any group."""
        return tuple(sorted({c.lr for group in self.groups.values() for c in group}))

    def role(self, name: str) -> tuple[Cell, ...]:
        return self.groups[name]


def role_setting(role: str, ticket: Setting) -> Setting:
    """The setting that plays `role` for a ticket of setting `ticket` (`rr` of an lt-imp ticket is rr-imp)."""
    if role == "ticket":
        return ticket
    if role in ("pretrain", "sdt"):
        return Setting(role)
    return Setting(f"{role}-{ticket.method}")


def ticket_evidence(records: Iterable[RunRecord], arch: str, dataset: str, setting: Setting, sparsity: float,
                    sufficient_epochs: int, metric: str = "top1", seed_sd: float | None = None,
                    roles: Iterable[str] = ROLES) -> TicketEvidence:
    """Select and group the records a claim about (arch, dataset, setting, sparsity) needs."""
    mine = [r for r in records if r.arch == arch and r.dataset == dataset.lower()]
    groups, settings, runs = {}, {}, {}
    for role in roles:
        s = role_setting(role, setting)
        chosen = [r for r in mine if r.setting is s and (s is Setting.PRETRAIN or same_sparsity(r.sparsity, sparsity))]
        groups[role] = tuple(build_cells(chosen, sufficient_epochs, metric, seed_sd))
        settings[role] = s
        if role == "ticket":
            runs = {r.run_id: r for r in chosen}
    return TicketEvidence(groups, settings, runs)
