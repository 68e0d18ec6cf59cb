"""The settings the backend trains (SPEC §1), as data: what a run of each starts from and what it needs.

`plan.make_plan` plans from this table and `steps.Steps` starts runs from it; the experiment loader refuses a
setting that has no entry. A new setting is one more entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..records import Setting


@dataclass(frozen=True)
class SettingRule:
    """How the runs of one setting are planned and started."""

    start: Literal["theta0", "reinit", "rewind", "small-dense"]
    """θ0 of the seed; θ'0 (a fresh init); θt of the pretrain run at the same (lr, seed); a new small-dense net."""
    masked: bool = False
    """Trains under the mask of its method (`Setting.method`) at its sparsity."""
    random_mask: bool = False
    """That mask's per-layer sparsity, at positions drawn at random (SPEC §6, rp-*; `pruning.random_layerwise`)."""
    r_p: Literal["dense", "init", "reinit"] | None = None
    """The `r_p` pairing its record carries (steps.Steps.r_p)."""
    feeds: bool = False
    """Later runs read its trained weights (masks are pruned from them): its θT is kept."""
    ticket: bool = False
    """A ticket (lt-*, wr-*): with `instability: true` it trains beside a twin and records its instability."""
    per_sparsity: bool = False
    """One stage per sparsity (the network differs per sparsity), else one stage for the setting."""


SETTING_RULES: dict[Setting, SettingRule] = {
    Setting.PRETRAIN: SettingRule("theta0", r_p="dense", feeds=True),
    Setting.LT_IMP: SettingRule("theta0", masked=True, r_p="init", feeds=True, ticket=True),
    Setting.LT_OMP: SettingRule("theta0", masked=True, r_p="init", ticket=True),
    Setting.RR_OMP: SettingRule("reinit", masked=True, r_p="reinit"),
    Setting.RR_IMP: SettingRule("reinit", masked=True, r_p="reinit"),
    Setting.RP_OMP: SettingRule("theta0", masked=True, random_mask=True),
    Setting.RP_IMP: SettingRule("theta0", masked=True, random_mask=True),
    Setting.WR_OMP: SettingRule("rewind", masked=True, ticket=True),
    Setting.WR_IMP: SettingRule("rewind", masked=True, ticket=True),
    Setting.SDT: SettingRule("small-dense", per_sparsity=True),
}
"""The settings the backend trains, in the order of their stages after pretraining and the IMP chain."""
