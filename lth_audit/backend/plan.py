"""The runs an experiment asks for, their dependencies, and the order (stages) they are trained in.

Planning is data: `settings.SETTING_RULES` says, per setting, what a run starts from, whether it trains
under a mask, which R_p pairing it records and whether later runs read its weights. A new setting is a new
entry there (and a branch in `steps.Steps.start` if it starts from something new), never a special case in
the scheduler.

Stages, in order; the runs of one stage can train together (same arch, width, epochs and setting; different
lr / seed / mask / init):
  pretrain                  dense θ0 -> θT for every (lr, seed); keeps θt (rewind) and θT
  imp-1 ... imp-K           LT-IMP round k for every (lr, seed): train θ0 ⊙ m_k, whose trained weights give
                            m_{k+1} (20 % of the remaining weights pruned). m_1 comes from the pretrain run at
                            the same (lr, seed): the chain is per (lr, seed).
  lt-omp, rr-omp, rr-imp, rp-omp, rp-imp, wr-omp, wr-imp
  sdt-s<sparsity>           one stage per sparsity (the width differs per sparsity)
With `instability: true` every ticket run (lt-*, wr-*) trains beside its twin in the same unit (SPEC §6).
A run may start as soon as the runs in its `deps` are finished; `Plan.priorities` orders the ready ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..records import Setting
from .experiment import Experiment
from .pruning import imp_round, imp_sparsity
from .settings import SETTING_RULES, SettingRule


def fmt_sparsity(s: float) -> str:
    return f"{round(s, 3):g}"


def make_run_id(name: str, arch: str, setting: Setting | str, sparsity: float, lr: float, seed: int) -> str:
    """Deterministic from (name, arch, setting, sparsity, lr, seed), e.g. `demo/mlp-lt-imp-s0.59-lr0.05-seed0`."""
    setting = Setting(setting).value
    return f"{name}/{arch}-{setting}-s{fmt_sparsity(sparsity)}-lr{lr:g}-seed{seed}"


@dataclass(frozen=True)
class PlannedRun:
    """One network to train, as a picklable description (executors send it to other processes)."""

    run_id: str
    setting: Setting
    sparsity: float          # the asked (grid) sparsity; 0 for pretrain
    lr: float
    seed: int
    epochs: int              # epochs this run trains (T, or T - t for wr-*)
    rewind_epoch: int
    stage: str
    deps: tuple[str, ...] = ()
    imp_round: int = 0       # k for masks m_k (lt-imp / rr-imp / wr-imp); 0 otherwise
    twin: bool = False       # trains beside a twin (another data order) for its instability (SPEC §6)

    @property
    def rule(self) -> SettingRule:
        return SETTING_RULES[self.setting]

    @property
    def source_mask_key(self) -> str | None:
        """Name of the mask of its method at its grid point (checkpoints/masks/<key>.pt): the one pruning made."""
        if not self.rule.masked:
            return None
        if self.setting.method == "imp":
            return f"imp-k{self.imp_round}-lr{self.lr:g}-seed{self.seed}"
        return f"omp-s{fmt_sparsity(self.sparsity)}-lr{self.lr:g}-seed{self.seed}"

    @property
    def mask_key(self) -> str | None:
        """Name of the mask this run trains under: the pruned one, or its random layerwise shuffle (rp-*)."""
        key = self.source_mask_key
        return f"rp-{key}" if key is not None and self.rule.random_mask else key

    @property
    def trained_epochs(self) -> int:
        """Epochs this run costs: its own, and its twin's."""
        return self.epochs * (2 if self.twin else 1)


@dataclass
class Plan:
    experiment: Experiment
    runs: list[PlannedRun] = field(default_factory=list)

    @property
    def stages(self) -> list[tuple[str, list[PlannedRun]]]:
        out: dict[str, list[PlannedRun]] = {}
        for r in self.runs:
            out.setdefault(r.stage, []).append(r)
        return list(out.items())

    def by_id(self) -> dict[str, PlannedRun]:
        return {r.run_id: r for r in self.runs}

    def priorities(self) -> dict[str, int]:
        """Epochs on the longest chain from each run to the end of the plan (the run's own included): ready
        runs go highest first, so the IMP chains start early and SDT runs fill the gaps."""
        children: dict[str, list[PlannedRun]] = {}
        for r in self.runs:
            for d in r.deps:
                children.setdefault(d, []).append(r)
        prio: dict[str, int] = {}
        for r in reversed(self.runs):  # plan order is topological: deps come first
            prio[r.run_id] = r.trained_epochs + max((prio[c.run_id] for c in children.get(r.run_id, [])), default=0)
        return prio


def make_plan(exp: Experiment) -> Plan:
    r = exp.recipe_obj
    T, t = r.epochs, r.rewind_epoch
    want = exp.setting_set()
    rid = lambda s, sp, lr, seed: make_run_id(exp.name, exp.arch, s, sp, lr, seed)  # noqa: E731
    pairs = [(lr, seed) for lr in exp.lrs for seed in exp.seeds]
    # Asked sparsities sit on the IMP grid (validated); snap them to it exactly (0.59 -> 1 - 0.8^4 = 0.5904)
    # so OMP, IMP and SDT runs at one grid point prune the very same number of weights.
    rounds = {imp_sparsity(imp_round(s, r.imp_rate), r.imp_rate): imp_round(s, r.imp_rate) for s in exp.sparsities}
    sparsities = sorted(rounds)
    methods = {s.method for s in want if SETTING_RULES[s].masked}
    runs: list[PlannedRun] = []

    def pre(lr: float, seed: int) -> str:
        return rid(Setting.PRETRAIN, 0.0, lr, seed)

    def lt_imp(k: int, lr: float, seed: int) -> str:
        return rid(Setting.LT_IMP, imp_sparsity(k, r.imp_rate), lr, seed) if k > 0 else pre(lr, seed)

    if Setting.PRETRAIN in want or methods:
        for lr, seed in pairs:
            runs.append(PlannedRun(pre(lr, seed), Setting.PRETRAIN, 0.0, lr, seed, T, 0, "pretrain"))
    if "imp" in methods:
        kmax = max(rounds.values())
        last = kmax if Setting.LT_IMP in want else kmax - 1  # the chain trains rounds 1..last
        for k in range(1, last + 1):
            for lr, seed in pairs:
                deps = (pre(lr, seed),) if k == 1 else (lt_imp(k - 1, lr, seed), pre(lr, seed))
                runs.append(PlannedRun(lt_imp(k, lr, seed), Setting.LT_IMP, imp_sparsity(k, r.imp_rate), lr, seed,
                                       T, 0, f"imp-{k}", deps, k, twin=exp.instability))
    for setting, rule in SETTING_RULES.items():
        if setting not in want or setting in (Setting.PRETRAIN, Setting.LT_IMP):
            continue
        rewound = rule.start == "rewind"
        for s in sparsities:
            stage = f"{setting.value}-s{fmt_sparsity(s)}" if rule.per_sparsity else setting.value
            for lr, seed in pairs:
                k = rounds[s] if setting.method == "imp" else 0
                deps: tuple[str, ...] = ()
                if rule.masked:
                    source = lt_imp(k - 1, lr, seed) if setting.method == "imp" else pre(lr, seed)
                    deps = tuple(dict.fromkeys((source, pre(lr, seed))))
                runs.append(PlannedRun(rid(setting, s, lr, seed), setting, s, lr, seed, T - t if rewound else T,
                                       t if rewound else 0, stage, deps, k, twin=exp.instability and rule.ticket))
    return Plan(exp, runs)


RunStates = Mapping[str, str]
"""run_id -> "done" | "changed" (recorded under another training configuration); absent: todo."""


def describe(plan: Plan, states: RunStates, changes: str = "") -> str:
    """What `lth-audit plan` prints: every run by stage, its dependencies, what is done or changed, epochs left.
    `changes` (from `resume.changes_summary`) says what changed, when any run did."""
    exp = plan.experiment
    lines = [f"experiment {exp.name}: {exp.arch} on {exp.dataset}, {len(exp.lrs)} lr x {len(exp.seeds)} seeds, "
             f"T={exp.epochs_total}, rewind t={exp.rewind}",
             f"records: {exp.out_path}", f"checkpoints: {exp.ckpt_dir}"]
    left = 0
    for stage, runs in plan.stages:
        n_done = sum(states.get(r.run_id) == "done" for r in runs)
        n_changed = sum(states.get(r.run_id) == "changed" for r in runs)
        lines.append(f"[{stage}] {len(runs)} runs, {n_done} done" + (f", {n_changed} changed" if n_changed else ""))
        for r in runs:
            mark = states.get(r.run_id, "todo")
            dep = f"  <- {', '.join(r.deps)}" if r.deps else ""
            twin = " + twin" if r.twin else ""
            lines.append(f"  {mark}  {r.run_id}  ({r.epochs} ep{twin}){dep}")
            if mark != "done":
                left += r.trained_epochs
    total = len(plan.runs)
    n_done = sum(states.get(r.run_id) == "done" for r in plan.runs)
    n_changed = sum(states.get(r.run_id) == "changed" for r in plan.runs)
    if n_changed:
        lines.append(changes)
    lines.append(f"{total} runs, {n_done} done" + (f", {n_changed} changed" if n_changed else "")
                 + f", {total - n_done} to train, {left} epochs left")
    return "\n".join(lines)
