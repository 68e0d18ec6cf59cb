"""The steps of one run, with typed inputs and outputs: how it starts, its checkpoints, its record.

`Steps(exp)` knows an experiment's model, masks and checkpoint folder (`<out>.ckpt/<training key>/`):

- `start(run) -> Start`: the TrainSpec of a planned run (θ0, θ'0, θt or a small-dense net; its mask), and
  what its record needs to know about that start. θ0 and masks are read back from the checkpoints, or made
  and saved (atomically: two processes making the same file write the same bytes).
- `save(start, outcome)`: the checkpoints later runs need (θT, best, θt, trajectory), written before the
  record, so a record in the store means its checkpoints are there.
- `record(start, outcome, ...) -> RunRecord`: the run's record, with the training configuration in
  `meta.config` (resume compares it, `resume.py`).

Which start and which checkpoints a setting has is data (`settings.SETTING_RULES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .. import __version__
from ..correlation import correlation_indicator
from ..records import RunRecord, Setting
from . import device as dev
from .checkpoints import Checkpoints
from .experiment import Experiment
from .jobs import Mask, TrainOutcome, TrainSpec
from .models import build_model, entry, init_scheme, search_width
from .plan import Plan, PlannedRun, make_plan, make_run_id
from .pruning import apply_mask, dense_names, full_mask, imp_sparsity, magnitude_prune, omp_mask, prunable_names, \
    pruned_count, random_layerwise
from .stability import TWIN_SEED_OFFSET, instability

State = dict[str, torch.Tensor]
REINIT_SEED_OFFSET = 1_000_000   # θ'0 of seed s is built with seed s + this (a fresh init, never θ0)
RANDOM_MASK_SEED_OFFSET = 3_000_017   # rp-*: the random mask of seed s is drawn with seed s + this
R_P = 0.1


@dataclass
class Start:
    """A planned run ready to train: its TrainSpec, and what its record needs to know about its start."""

    run: PlannedRun
    spec: TrainSpec
    prunable: State | None = None    # the start's prunable weights (masked), for R_p; None for sdt
    mask: Mask | None = None
    params: int | None = None        # non-zero parameters of an unmasked network (pretrain, sdt)
    sparsity: float | None = None    # sdt: the sparsity its parameter count matches
    meta: dict[str, Any] = field(default_factory=dict)   # setting-specific provenance (sdt's width search)
    trajectory: tuple[int, ...] = ()  # epochs of this call whose weights are kept (`trajectory_every`)


class Steps:
    def __init__(self, exp: Experiment, device: str | torch.device = "cpu"):
        self.exp = exp
        self.device = dev.resolve(device)
        self.plan: Plan = make_plan(exp)
        self.recipe = exp.recipe_obj
        self.T, self.t = self.recipe.epochs, self.recipe.rewind_epoch
        self.ignore = list(exp.ignore) if exp.ignore is not None else list(entry(exp.arch).dense)
        self.wr_wanted = any(s.value.startswith("wr-") for s in exp.setting_set())
        self._init: dict[int, State] = {}
        self._masks: dict[str, Mask] = {}
        self._template = build_model(exp.arch, exp.dataset, exp.width, device="meta")
        self.names = prunable_names(self._template, self.ignore)
        self.dense_layers = dense_names(self._template, self.ignore)
        self.ck = Checkpoints(exp.ckpt_dir, self._template, self.names,
                              {"arch": exp.arch, "dataset": exp.dataset, "width": exp.width, "ignore": self.ignore})
        self.total_params = sum(p.numel() for p in self._template.parameters())
        self.n_prunable = sum(dict(self._template.named_parameters())[n].numel() for n in self.names)
        self.training_config = exp.training_config()
        self.config_hash = exp.config_hash()

    # ---------------------------------------------------------------------------------------- states
    def model(self, state: State, width: float | None = None) -> torch.nn.Module:
        """A model holding `state` (its own initialisation is overwritten, so none is drawn)."""
        m = build_model(self.exp.arch, self.exp.dataset, self.exp.width if width is None else width, seed=0,
                        init="pytorch")
        m.load_state_dict(state)
        return m

    def theta0(self, seed: int) -> State:
        if seed not in self._init:
            rel = self.ck.init(seed)
            if self.ck.exists(rel):
                self._init[seed] = self.ck.load(rel)
            else:
                m = build_model(self.exp.arch, self.exp.dataset, self.exp.width, seed=seed, init=self.recipe.init)
                self._init[seed] = {k: v.detach().clone() for k, v in m.state_dict().items()}
                self.ck.save(rel, self._init[seed])
        return self._init[seed]

    def reinit(self, seed: int) -> State:
        m = build_model(self.exp.arch, self.exp.dataset, self.exp.width, seed=REINIT_SEED_OFFSET + seed,
                        init=self.recipe.init)
        return {k: v.detach().clone() for k, v in m.state_dict().items()}

    def prune_source(self, run_id: str) -> State:
        what = "best" if self.exp.prune_from == "best" else "final"
        return self.ck.load(self.ck.run_file(run_id, what))

    def pretrain_id(self, lr: float, seed: int) -> str:
        return make_run_id(self.exp.name, self.exp.arch, Setting.PRETRAIN, 0.0, lr, seed)

    def mask(self, r: PlannedRun) -> Mask:
        assert r.mask_key is not None and r.source_mask_key is not None, f"{r.run_id} trains no mask"
        pruned = self._mask(r.setting.method, r.sparsity, r.imp_round, r.lr, r.seed, r.source_mask_key)
        if not r.rule.random_mask:
            return pruned
        if r.mask_key not in self._masks:   # rp-*: the pruned mask's layerwise sparsity at random positions
            rel = self.ck.mask(r.mask_key)
            if self.ck.exists(rel):
                self._masks[r.mask_key] = self.ck.load(rel)
            else:
                self._masks[r.mask_key] = random_layerwise(pruned, RANDOM_MASK_SEED_OFFSET + r.seed)
                self.ck.save(rel, self._masks[r.mask_key])
        return self._masks[r.mask_key]

    def _mask(self, method: str | None, sparsity: float, k: int, lr: float, seed: int, key: str) -> Mask:
        if key in self._masks:
            return self._masks[key]
        rel = self.ck.mask(key)
        if self.ck.exists(rel):
            m = self.ck.load(rel)
        elif method == "omp":
            m = omp_mask(self.prune_source(self.pretrain_id(lr, seed)), self.names, sparsity)
        else:
            rate = self.recipe.imp_rate
            if k == 1:
                prev, src = full_mask(self._template, self.ignore), self.pretrain_id(lr, seed)
            else:
                prev = self._mask("imp", imp_sparsity(k - 1, rate), k - 1, lr, seed,
                                  f"imp-k{k - 1}-lr{lr:g}-seed{seed}")
                src = make_run_id(self.exp.name, self.exp.arch, Setting.LT_IMP, imp_sparsity(k - 1, rate), lr, seed)
            m = magnitude_prune(self.prune_source(src), prev, imp_sparsity(k, rate))
        if not self.ck.exists(rel):
            self.ck.save(rel, m)
        self._masks[key] = m
        return m

    # ----------------------------------------------------------------------------------------- start
    def trajectory_epochs(self, r: PlannedRun) -> tuple[int, ...]:
        """Epochs of this call whose weights `trajectory_every: k` keeps: 0, k, 2k, ... and the last one."""
        k = self.exp.trajectory_every
        if not k:
            return ()
        return tuple(sorted(set(range(0, r.epochs + 1, k)) | {r.epochs}))

    def start(self, r: PlannedRun) -> Start:
        """The run's TrainSpec and what its record needs, by its setting's rule (settings.SETTING_RULES)."""
        rule = r.rule
        keep_best = self.exp.prune_from == "best" and rule.feeds
        if rule.start == "small-dense":
            target = self.total_params - int(round(r.sparsity * self.n_prunable))
            width, params = search_width(self.exp.arch, self.exp.dataset, target, hi=max(1.0, self.exp.width))
            model = build_model(self.exp.arch, self.exp.dataset, width, seed=r.seed, init=self.recipe.init)
            start = Start(r, TrainSpec(model, r.lr, r.seed, self.recipe, r.epochs), params=params,
                          sparsity=int(round(r.sparsity * self.n_prunable)) / self.n_prunable,
                          meta={"sdt_width": round(width, 6), "sdt_target_params": target,
                                "sdt_param_error": round(params / target - 1, 6)})
        else:
            mask = self.mask(r) if rule.masked else None
            if rule.start == "theta0":
                weights = self.theta0(r.seed)
            elif rule.start == "reinit":
                weights = self.reinit(r.seed)
            else:  # rewind: θt of the pretrain run at the same (lr, seed)
                weights = self.ck.load(self.ck.run_file(self.pretrain_id(r.lr, r.seed), "rewind"))
            model = apply_mask(self.model(weights), mask)
            keep = (self.t,) if r.setting is Setting.PRETRAIN and self.wr_wanted else ()
            spec = TrainSpec(model, r.lr, r.seed, self.recipe, r.epochs, mask=mask, schedule_offset=r.rewind_epoch,
                             keep_epochs=keep, keep_best=keep_best)
            start = Start(r, spec, prunable={n: model.state_dict()[n].detach().clone() for n in self.names},
                          mask=mask, params=None if mask is not None else self.total_params)
        traj = self.trajectory_epochs(r)
        if traj:
            start.spec.keep_epochs = tuple(sorted(set(start.spec.keep_epochs) | set(traj)))
            start.trajectory = traj
        return start

    @staticmethod
    def twin(start: Start) -> TrainSpec:
        """The twin of a ticket run (SPEC §6): the same start weights and mask, another data order and other
        augmentation draws (data seed + TWIN_SEED_OFFSET); nothing of it is kept but its final weights."""
        spec = start.spec
        return TrainSpec(spec.model, spec.lr, spec.seed + TWIN_SEED_OFFSET, spec.recipe, spec.epochs, mask=spec.mask,
                         schedule_offset=spec.schedule_offset)

    # ----------------------------------------------------------------------------------- checkpoints
    def needed_files(self, r: PlannedRun) -> list[str]:
        """Checkpoints later runs read from this run: a run is finished only when they exist."""
        if not r.rule.feeds:
            return []
        files = [self.ck.run_file(r.run_id, "final")]
        if self.exp.prune_from == "best":
            files.append(self.ck.run_file(r.run_id, "best"))
        if r.setting is Setting.PRETRAIN and self.wr_wanted:
            files.append(self.ck.run_file(r.run_id, "rewind"))
        return files

    def has_checkpoints(self, r: PlannedRun) -> bool:
        return all(self.ck.exists(f) for f in self.needed_files(r))

    def trajectory_file(self, r: PlannedRun, k: int) -> str:
        """Checkpoint (relative to the checkpoint folder) of the weights after epoch k of this call, named by
        the schedule epoch (wr-* runs start at the rewind epoch t, so their files are traj-t ... traj-T)."""
        return self.ck.run_file(r.run_id, f"traj-{r.rewind_epoch + k}")

    def save(self, start: Start, out: TrainOutcome) -> None:
        r = start.run
        for k in start.trajectory:
            if k in out.kept:
                self.ck.save(self.trajectory_file(r, k), out.kept[k])
        if not r.rule.feeds:
            return
        self.ck.save(self.ck.run_file(r.run_id, "final"), out.state)
        if self.exp.prune_from == "best":
            self.ck.save(self.ck.run_file(r.run_id, "best"), out.best_state if out.best_state is not None
                         else out.state)
        if r.setting is Setting.PRETRAIN and self.wr_wanted:
            rewind = out.kept.get(self.t, out.state)  # a run that diverged before t: its last weights
            self.ck.save(self.ck.run_file(r.run_id, "rewind"), rewind)

    # ---------------------------------------------------------------------------------------- record
    def record(self, start: Start, out: TrainOutcome, trainer: str, executor: str,
               path: list[float] | None = None) -> RunRecord:
        """The run's record; `path`: test errors along the line to its twin's weights (SPEC §6), if it had one."""
        r, mask = start.run, start.mask
        meta: dict[str, Any] = {
            "device": dev.describe(self.device), "wall_s": round(out.wall_s, 3), "torch": torch.__version__,
            "lth_audit": __version__, "config_hash": self.config_hash,
            "config": self.training_config, "experiment": self.exp.name, "trainer": trainer, "executor": executor,
            "epochs_run": out.epochs_run, "sparsity_target": r.sparsity,
            "init": init_scheme(self.exp.arch, self.recipe.init).name, "dense_layers": self.dense_layers,
            **start.meta}
        params, sparsity = start.params, start.sparsity or 0.0
        if mask is not None:
            pruned = pruned_count(mask)
            sparsity = pruned / self.n_prunable
            meta.update(pruned=pruned, prunable=self.n_prunable)
            params = self.total_params - pruned
        if start.trajectory:
            meta["trajectory"] = self.trajectory_meta(start, out)
        if path is not None:
            meta["interpolation"] = {"alpha": [round(i / (len(path) - 1), 6) for i in range(len(path))],
                                     "error": path}
        return RunRecord.model_validate({
            "run_id": r.run_id, "arch": self.exp.arch, "dataset": self.exp.dataset, "setting": r.setting.value,
            "sparsity": round(sparsity, 4), "lr": r.lr, "epochs": r.epochs, "rewind_epoch": r.rewind_epoch,
            "seed": r.seed, "top1": round(out.top1, 4), "best_top1": round(out.best_top1, 4),
            "diverged": out.diverged, "params": params,
            "mask_lr": r.lr if mask is not None else None, "r_p": self.r_p(start, out),
            "instability": None if path is None else instability(path), "meta": meta})

    def r_p(self, start: Start, out: TrainOutcome) -> dict | None:
        """The record's `r_p` (records.CorrelationIndicator) over the prunable layers, p = R_P.

        `dense` (pretrain) = R_p(θ0, θT). `init` (lt-*) or `reinit` (rr-*) = R_p(start⊙m, own θT⊙m), and
        `init_pretrained` / `reinit_pretrained` = R_p(start⊙m, θT_pre⊙m), θT_pre the weights pruning takes
        from the pretrain run at the same (lr, seed). A pairing with no weight to compare is left out.
        """
        r, key = start.run, start.run.rule.r_p
        if key is None or start.prunable is None:
            return None
        pairs = {key: out.state}
        if start.mask is not None:
            pairs[f"{key}_pretrained"] = self.prune_source(self.pretrain_id(r.lr, r.seed))
        values = {}
        for name, theta in pairs.items():
            try:
                values[name] = round(correlation_indicator(start.prunable, {n: theta[n] for n in self.names},
                                                           p=R_P, masks=start.mask), 6)
            except ValueError:
                continue
        return {"p": R_P, **values} if values else None

    def trajectory_meta(self, start: Start, out: TrainOutcome) -> dict:
        """`meta.trajectory`: every kept epoch and its file, relative to the record store's folder."""
        r = start.run
        kept = [k for k in start.trajectory if k in out.kept]   # a diverged run keeps only the epochs it reached
        folder = self.exp.ckpt_dir.relative_to(self.exp.out_path.parent).as_posix()
        return {"every": self.exp.trajectory_every, "epochs": [r.rewind_epoch + k for k in kept],
                "files": [f"{folder}/{self.trajectory_file(r, k)}" for k in kept]}
