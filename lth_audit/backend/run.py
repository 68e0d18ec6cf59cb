"""Execute an experiment: train its runs stage by stage, append one record per finished run.

Resume: a run whose record is in `out` and whose needed checkpoints exist is skipped. A run's
checkpoints are written before its record is appended, and each record is appended (atomically) as
soon as its run finishes, so a kill loses at most the run(s) in flight. Everything a later stage
needs (θ0, θt, θT, masks) is read back from `<out>.ckpt/` with weights_only=True.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import torch

from .. import __version__
from ..correlation import correlation_indicator
from ..records import RunRecord, Setting
from ..store import RecordStore
from . import device as dev
from .checkpoints import Checkpoints
from .data import load_dataset
from .experiment import Experiment
from .jobs import Mask, TrainOutcome, TrainSpec
from .models import build_model, entry, init_scheme, search_width
from .plan import Plan, PlannedRun, make_plan, make_run_id
from .pruning import (apply_mask, dense_names, full_mask, imp_sparsity, magnitude_prune, omp_mask, prunable_names,
                      pruned_count)
from .train import train_many

REINIT_SEED_OFFSET = 1_000_000   # θ'0 of seed s is built with seed s + this (a fresh init, never θ0)
R_P = 0.1


@dataclass
class RunSummary:
    trained: list[str] = field(default_factory=list)
    skipped: int = 0
    diverged: list[str] = field(default_factory=list)
    wall_s: float = 0.0


class Runner:
    def __init__(self, exp: Experiment, device: str | torch.device = "auto", quiet: bool = False,
                 batched: bool | None = None, log=None, threads: int | None = None):
        self.exp = exp
        self.device = dev.resolve(device)
        self.threads = threads
        self.batched = (self.device.type == "cuda") if batched is None else batched
        self.quiet = quiet
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.plan: Plan = make_plan(exp)
        self.store = RecordStore(exp.out_path)
        self.recipe = exp.recipe_obj
        self.T, self.t = self.recipe.epochs, self.recipe.rewind_epoch
        self.ignore = list(exp.ignore) if exp.ignore is not None else list(entry(exp.arch).dense)
        self.want = exp.setting_set()
        self.wr_wanted = any(s.value.startswith("wr-") for s in self.want)
        self._init: dict[int, dict[str, torch.Tensor]] = {}
        self._masks: dict[str, Mask] = {}
        self._template = build_model(exp.arch, exp.dataset, exp.width, device="meta")
        self.names = prunable_names(self._template, self.ignore)
        self.dense_layers = dense_names(self._template, self.ignore)
        self.init = self.recipe.init
        self.ck = Checkpoints(exp.ckpt_dir, self._template, self.names,
                              {"arch": exp.arch, "dataset": exp.dataset, "width": exp.width, "ignore": self.ignore})
        self.total_params = sum(p.numel() for p in self._template.parameters())
        self.n_prunable = sum(dict(self._template.named_parameters())[n].numel() for n in self.names)
        self.config_hash = exp.config_hash()

    # ---------------------------------------------------------------------------------------- states
    def model(self, state: dict[str, torch.Tensor], width: float | None = None) -> torch.nn.Module:
        """A model holding `state` (its own initialisation is overwritten, so none is drawn)."""
        m = build_model(self.exp.arch, self.exp.dataset, self.exp.width if width is None else width, seed=0,
                        init="pytorch")
        m.load_state_dict(state)
        return m

    def theta0(self, seed: int) -> dict[str, torch.Tensor]:
        if seed not in self._init:
            rel = self.ck.init(seed)
            if self.ck.exists(rel):
                self._init[seed] = self.ck.load(rel)
            else:
                m = build_model(self.exp.arch, self.exp.dataset, self.exp.width, seed=seed, init=self.init)
                self._init[seed] = {k: v.detach().clone() for k, v in m.state_dict().items()}
                self.ck.save(rel, self._init[seed])
        return self._init[seed]

    def reinit(self, seed: int) -> dict[str, torch.Tensor]:
        m = build_model(self.exp.arch, self.exp.dataset, self.exp.width, seed=REINIT_SEED_OFFSET + seed,
                        init=self.init)
        return {k: v.detach().clone() for k, v in m.state_dict().items()}

    def prune_source(self, run_id: str) -> dict[str, torch.Tensor]:
        what = "best" if self.exp.prune_from == "best" else "final"
        return self.ck.load(self.ck.run_file(run_id, what))

    def _pre(self, lr: float, seed: int) -> str:
        return make_run_id(self.exp.name, self.exp.arch, Setting.PRETRAIN, 0.0, lr, seed)

    def mask(self, r: PlannedRun) -> Mask:
        return self._mask(r.setting.method, r.sparsity, r.imp_round, r.lr, r.seed, r.mask_key)

    def _mask(self, method: str, sparsity: float, k: int, lr: float, seed: int, key: str) -> Mask:
        if key in self._masks:
            return self._masks[key]
        rel = self.ck.mask(key)
        if self.ck.exists(rel):
            m = self.ck.load(rel)
        elif method == "omp":
            m = omp_mask(self.prune_source(self._pre(lr, seed)), self.names, sparsity)
        else:
            rate = self.recipe.imp_rate
            if k == 1:
                prev, src = full_mask(self._template, self.ignore), self._pre(lr, seed)
            else:
                prev = self._mask("imp", imp_sparsity(k - 1, rate), k - 1, lr, seed,
                                  f"imp-k{k - 1}-lr{lr:g}-seed{seed}")
                src = make_run_id(self.exp.name, self.exp.arch, Setting.LT_IMP, imp_sparsity(k - 1, rate), lr, seed)
            m = magnitude_prune(self.prune_source(src), prev, imp_sparsity(k, rate))
        if not self.ck.exists(rel):
            self.ck.save(rel, m)
        self._masks[key] = m
        return m

    # ------------------------------------------------------------------------------------------ runs
    def _needed_files(self, r: PlannedRun) -> list[str]:
        files = []
        if r.setting in (Setting.PRETRAIN, Setting.LT_IMP):
            files.append(self.ck.run_file(r.run_id, "final"))
            if self.exp.prune_from == "best":
                files.append(self.ck.run_file(r.run_id, "best"))
            if r.setting is Setting.PRETRAIN and self.wr_wanted:
                files.append(self.ck.run_file(r.run_id, "rewind"))
        return files

    def satisfied(self, r: PlannedRun, done: set[str]) -> bool:
        return r.run_id in done and all(self.ck.exists(f) for f in self._needed_files(r))

    def trajectory_epochs(self, r: PlannedRun) -> tuple[int, ...]:
        """Epochs of this call whose weights `trajectory_every: k` keeps: 0, k, 2k, ... and the last one."""
        k = self.exp.trajectory_every
        if not k:
            return ()
        return tuple(sorted(set(range(0, r.epochs + 1, k)) | {r.epochs}))

    def spec(self, r: PlannedRun) -> tuple[TrainSpec, dict]:
        """The TrainSpec of a planned run, and what the record needs to know about its start."""
        spec, info = self._spec(r)
        traj = self.trajectory_epochs(r)
        if traj:
            spec.keep_epochs = tuple(sorted(set(spec.keep_epochs) | set(traj)))
            info["trajectory"] = traj
        return spec, info

    def _spec(self, r: PlannedRun) -> tuple[TrainSpec, dict]:
        info: dict = {}
        keep_best = self.exp.prune_from == "best" and r.setting in (Setting.PRETRAIN, Setting.LT_IMP)
        s = r.setting
        if s is Setting.PRETRAIN:
            start = self.theta0(r.seed)
            spec = TrainSpec(self.model(start), r.lr, r.seed, self.recipe, self.T,
                             keep_epochs=(self.t,) if self.wr_wanted else (), keep_best=keep_best)
            info.update(params=self.total_params, start={n: start[n] for n in self.names})
            return spec, info
        if s is Setting.SDT:
            target = self.total_params - int(round(r.sparsity * self.n_prunable))
            width, params = search_width(self.exp.arch, self.exp.dataset, target, hi=max(1.0, self.exp.width))
            model = build_model(self.exp.arch, self.exp.dataset, width, seed=r.seed, init=self.init)
            info.update(params=params, meta={"sdt_width": round(width, 6), "sdt_target_params": target,
                                             "sdt_param_error": round(params / target - 1, 6)},
                        sparsity=int(round(r.sparsity * self.n_prunable)) / self.n_prunable)
            return TrainSpec(model, r.lr, r.seed, self.recipe, self.T), info
        mask = self.mask(r)
        info["mask"] = mask
        if s.value.startswith("lt-"):
            start = self.theta0(r.seed)
        elif s.value.startswith("rr-"):
            start = self.reinit(r.seed)
        else:  # wr-*: θt of the pretrain run at the same (lr, seed)
            start = self.ck.load(self.ck.run_file(self._pre(r.lr, r.seed), "rewind"))
        model = self.model(start)
        apply_mask(model, mask)
        info["start"] = {n: model.state_dict()[n].detach().clone() for n in self.names}
        wr = s.value.startswith("wr-")
        spec = TrainSpec(model, r.lr, r.seed, self.recipe, r.epochs, mask=mask,
                         schedule_offset=self.t if wr else 0, keep_best=keep_best)
        return spec, info

    def record(self, r: PlannedRun, info: dict, out: TrainOutcome, trainer: str) -> RunRecord:
        mask: Mask | None = info.get("mask")
        meta = {"device": dev.describe(self.device), "wall_s": round(out.wall_s, 3), "torch": torch.__version__,
                "lth_audit": __version__, "config_hash": self.config_hash, "experiment": self.exp.name,
                "trainer": trainer, "epochs_run": out.epochs_run, "sparsity_target": r.sparsity,
                "init": init_scheme(self.exp.arch, self.init).name, "dense_layers": self.dense_layers}
        meta.update(info.get("meta", {}))
        sparsity = 0.0
        params = info.get("params")
        if mask is not None:
            pruned = pruned_count(mask)
            sparsity = pruned / self.n_prunable
            meta.update(pruned=pruned, prunable=self.n_prunable)
            params = self.total_params - pruned
        elif r.setting is Setting.SDT:
            sparsity = info["sparsity"]
        if info.get("trajectory"):
            meta["trajectory"] = self.trajectory_meta(r, info["trajectory"], out)
        return RunRecord.model_validate({
            "run_id": r.run_id, "arch": self.exp.arch, "dataset": self.exp.dataset, "setting": r.setting.value,
            "sparsity": round(sparsity, 4), "lr": r.lr, "epochs": r.epochs, "rewind_epoch": r.rewind_epoch,
            "seed": r.seed, "top1": round(out.top1, 4), "best_top1": round(out.best_top1, 4),
            "diverged": out.diverged, "params": params,
            "mask_lr": r.lr if mask is not None else None, "r_p": self.r_p(r, info, out), "meta": meta})

    def r_p(self, r: PlannedRun, info: dict, out: TrainOutcome) -> dict | None:
        """The record's `r_p` (records.CorrelationIndicator) over the prunable layers, p = R_P.

        pretrain: `dense` = R_p(θ0, θT). lt-* (rr-*): `init` (`reinit`) = R_p(start⊙m, own θT⊙m), and
        `init_pretrained` (`reinit_pretrained`) = R_p(start⊙m, θT_pre⊙m), θT_pre the weights pruning takes
        from the pretrain run at the same (lr, seed). A pairing with no weight to compare is left out.
        """
        s = r.setting.value
        if s != "pretrain" and s[:3] not in ("lt-", "rr-"):
            return None
        start, mask = info["start"], info.get("mask")
        pairs = {"dense": out.state} if s == "pretrain" else {}
        if mask is not None:
            key = "init" if s.startswith("lt-") else "reinit"
            pairs[key] = out.state
            pairs[f"{key}_pretrained"] = self.prune_source(self._pre(r.lr, r.seed))
        values = {}
        for key, theta in pairs.items():
            try:
                values[key] = round(correlation_indicator(start, {n: theta[n] for n in self.names}, p=R_P,
                                                          masks=mask), 6)
            except ValueError:
                continue
        return {"p": R_P, **values} if values else None

    def trajectory_file(self, r: PlannedRun, k: int) -> str:
        """Checkpoint (relative to `<out>.ckpt/`) of the weights after epoch k of this call, named by the
        schedule epoch (wr-* runs start at the rewind epoch t, so their files are traj-t ... traj-T)."""
        return self.ck.run_file(r.run_id, f"traj-{r.rewind_epoch + k}")

    def trajectory_meta(self, r: PlannedRun, epochs: tuple[int, ...], out: TrainOutcome) -> dict:
        """`meta.trajectory`: every kept epoch and its file, relative to the record store's folder."""
        kept = [k for k in epochs if k in out.kept]   # a diverged run keeps only the epochs it reached
        root = self.exp.ckpt_dir.name
        return {"every": self.exp.trajectory_every, "epochs": [r.rewind_epoch + k for k in kept],
                "files": [f"{root}/{self.trajectory_file(r, k)}" for k in kept]}

    def save_checkpoints(self, r: PlannedRun, out: TrainOutcome) -> None:
        for k in self.trajectory_epochs(r):
            if k in out.kept:
                self.ck.save(self.trajectory_file(r, k), out.kept[k])
        if r.setting not in (Setting.PRETRAIN, Setting.LT_IMP):
            return
        self.ck.save(self.ck.run_file(r.run_id, "final"), out.state)
        if self.exp.prune_from == "best":
            self.ck.save(self.ck.run_file(r.run_id, "best"), out.best_state if out.best_state is not None
                         else out.state)
        if r.setting is Setting.PRETRAIN and self.wr_wanted:
            rewind = out.kept.get(self.t, out.state)  # a run that diverged before t: its last weights
            self.ck.save(self.ck.run_file(r.run_id, "rewind"), rewind)

    # ------------------------------------------------------------------------------------------ main
    def run(self) -> RunSummary:
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        summary = RunSummary()
        done = self.store.run_ids()
        todo = [r for r in self.plan.runs if not self.satisfied(r, done)]
        summary.skipped = len(self.plan.runs) - len(todo)
        if not todo:
            summary.wall_s = time.perf_counter() - t0
            return summary
        if self.device.type == "cpu":
            dev.keep_freed_memory()
            # Stacked runs make big matmuls that use every core; one small net alone does not.
            threads = self.threads or (None if self.batched else dev.cpu_threads(self.total_params))
            if threads:
                torch.set_num_threads(threads)
        data = load_dataset(self.exp.dataset, self.exp.data_path, self.exp.download, self.exp.augment,
                            in_memory=self.exp.data_in_memory, num_workers=self.exp.loader_workers)
        data = data.to(self.device)
        bar = tqdm(total=len(todo), desc="runs", unit="run", disable=self.quiet)
        for stage, runs in self.plan.stages:
            need = [r for r in runs if not self.satisfied(r, done)]
            if not need:
                continue
            bar.set_description(stage)
            pairs = [self.spec(r) for r in need]

            def finish(i: int, out: TrainOutcome, trainer: str, need=need, pairs=pairs) -> None:
                r = need[i]
                self.save_checkpoints(r, out)
                if r.run_id not in done:
                    self.store.append([self.record(r, pairs[i][1], out, trainer)])
                    done.add(r.run_id)
                    summary.trained.append(r.run_id)
                    if out.diverged:
                        summary.diverged.append(r.run_id)
                bar.update(1)

            train_many([p[0] for p in pairs], data, self.device, batched=self.batched,
                       progress=not self.quiet, on_result=finish)
        bar.close()
        summary.wall_s = time.perf_counter() - t0
        return summary


def run_experiment(exp: Experiment, device: str = "auto", quiet: bool = False,
                   batched: bool | None = None, threads: int | None = None) -> RunSummary:
    return Runner(exp, device=device, quiet=quiet, batched=batched, threads=threads).run()
