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
    r_p: Literal["dense", "init", "reinit"] | None = None
    """The `r_p` pairing its record carries (steps.Steps.r_p)."""
    feeds: bool = False
    """Later runs read its trained weights (masks are pruned from them): its θT is kept."""
    per_sparsity: bool = False
    """One stage per sparsity (the network differs per sparsity), else one stage for the setting."""


SETTING_RULES: dict[Setting, SettingRule] = {
    Setting.PRETRAIN: SettingRule("theta0", r_p="dense", feeds=True),
    Setting.LT_IMP: SettingRule("theta0", masked=True, r_p="init", feeds=True),
    Setting.LT_OMP: SettingRule("theta0", masked=True, r_p="init"),
    Setting.RR_OMP: SettingRule("reinit", masked=True, r_p="reinit"),
    Setting.RR_IMP: SettingRule("reinit", masked=True, r_p="reinit"),
    Setting.WR_OMP: SettingRule("rewind", masked=True),
    Setting.WR_IMP: SettingRule("rewind", masked=True),
    Setting.SDT: SettingRule("small-dense", per_sparsity=True),
}
"""The settings the backend trains, in the order of their stages after pretraining and the IMP chain."""
