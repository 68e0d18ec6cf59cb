"""The runs an experiment asks for, their dependencies, and the order (stages) they are trained in.

Stages, in order; each stage is one group handed to `train_many` (same arch, width, epochs and setting;
different lr / seed / mask / init):
  pretrain                  dense θ0 -> θT for every (lr, seed); keeps θt (rewind) and θT
  imp-1 ... imp-K           LT-IMP round k for every (lr, seed) at once: train θ0 ⊙ m_k, whose trained
                            weights give m_{k+1} (20 % of the remaining weights pruned). m_1 comes from
                            the pretrain run at the same (lr, seed): the chain is per (lr, seed).
  lt-omp, rr-omp, rr-imp, wr-omp, wr-imp
  sdt-s<sparsity>           one stage per sparsity (the width differs per sparsity)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..records import Setting
from .experiment import Experiment
from .pruning import imp_round, imp_sparsity


def fmt_sparsity(s: float) -> str:
    return f"{round(s, 3):g}"


def make_run_id(name: str, arch: str, setting: Setting | str, sparsity: float, lr: float, seed: int) -> str:
    """Deterministic from (name, arch, setting, sparsity, lr, seed), e.g. `demo/mlp-lt-imp-s0.59-lr0.05-seed0`."""
    setting = Setting(setting).value
    return f"{name}/{arch}-{setting}-s{fmt_sparsity(sparsity)}-lr{lr:g}-seed{seed}"


@dataclass(frozen=True)
class PlannedRun:
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

    @property
    def mask_key(self) -> str | None:
        """Name of the mask this run trains under (checkpoints/masks/<key>.pt)."""
        if self.setting.method == "imp":
            return f"imp-k{self.imp_round}-lr{self.lr:g}-seed{self.seed}"
        if self.setting.method == "omp":
            return f"omp-s{fmt_sparsity(self.sparsity)}-lr{self.lr:g}-seed{self.seed}"
        return None


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
    imp_wanted = any(s.method == "imp" for s in want)
    omp_wanted = any(s.method == "omp" for s in want)
    runs: list[PlannedRun] = []

    need_pretrain = Setting.PRETRAIN in want or imp_wanted or omp_wanted
    if need_pretrain:
        for lr, seed in pairs:
            runs.append(PlannedRun(rid(Setting.PRETRAIN, 0.0, lr, seed), Setting.PRETRAIN, 0.0, lr, seed, T, 0,
                                   "pretrain"))

    def pre(lr, seed):
        return rid(Setting.PRETRAIN, 0.0, lr, seed)

    def lt_imp(k, lr, seed):
        return rid(Setting.LT_IMP, imp_sparsity(k, r.imp_rate), lr, seed) if k > 0 else pre(lr, seed)

    if imp_wanted:
        kmax = max(rounds.values())
        last = kmax if Setting.LT_IMP in want else kmax - 1  # the chain trains rounds 1..last
        for k in range(1, last + 1):
            for lr, seed in pairs:
                deps = (pre(lr, seed),) if k == 1 else (lt_imp(k - 1, lr, seed), pre(lr, seed))
                runs.append(PlannedRun(lt_imp(k, lr, seed), Setting.LT_IMP, imp_sparsity(k, r.imp_rate), lr, seed,
                                       T, 0, f"imp-{k}", deps, k))

    for setting in (Setting.LT_OMP, Setting.RR_OMP, Setting.RR_IMP, Setting.WR_OMP, Setting.WR_IMP):
        if setting not in want:
            continue
        wr = setting.value.startswith("wr-")
        for s in sparsities:
            for lr, seed in pairs:
                k = rounds[s] if setting.method == "imp" else 0
                source = lt_imp(k - 1, lr, seed) if setting.method == "imp" else pre(lr, seed)
                deps = tuple(dict.fromkeys((source, pre(lr, seed))))
                runs.append(PlannedRun(rid(setting, s, lr, seed), setting, s, lr, seed, T - t if wr else T,
                                       t if wr else 0, setting.value, deps, k))
    if Setting.SDT in want:
        for s in sparsities:
            for lr, seed in pairs:
                runs.append(PlannedRun(rid(Setting.SDT, s, lr, seed), Setting.SDT, s, lr, seed, T, 0,
                                       f"sdt-s{fmt_sparsity(s)}"))
    return Plan(exp, runs)


def describe(plan: Plan, done: set[str]) -> str:
    """What `lth-audit plan` prints: every run by stage, its dependencies, what is done, epochs left."""
    exp = plan.experiment
    lines = [f"experiment {exp.name}: {exp.arch} on {exp.dataset}, {len(exp.lrs)} lr x {len(exp.seeds)} seeds, "
             f"T={exp.epochs_total}, rewind t={exp.rewind}",
             f"records: {exp.out_path}", f"checkpoints: {exp.ckpt_dir}"]
    left = 0
    for stage, runs in plan.stages:
        n_done = sum(r.run_id in done for r in runs)
        lines.append(f"[{stage}] {len(runs)} runs, {n_done} done")
        for r in runs:
            mark = "done" if r.run_id in done else "todo"
            dep = f"  <- {', '.join(r.deps)}" if r.deps else ""
            lines.append(f"  {mark}  {r.run_id}  ({r.epochs} ep){dep}")
            if r.run_id not in done:
                left += r.epochs
    total = len(plan.runs)
    n_done = sum(r.run_id in done for r in plan.runs)
    lines.append(f"{total} runs, {n_done} done, {total - n_done} to train, {left} epochs left")
    return "\n".join(lines)
