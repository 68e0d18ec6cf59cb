"""Write OpenLTH output trees the way OpenLTH writes them, for the importer's tests.

Layout, file names and formats follow OpenLTH (facebookresearch/open_lth): `hparams.log` holds the
`display` of each hyperparameter bundle, sorted by field name and joined by newlines (no final one);
`logger` holds `name,iteration,value` lines in insertion order (test_loss, test_accuracy, test_examples
at each evaluation, accuracy as a fraction); `sparsity_report.json` is {"total", "unpruned"} with indent 4;
IMP removes ceil(0.2 x remaining) weights a level. Checkpoints are empty placeholder files (never read).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

TRAIN = {"cifar10": 50_000, "mnist": 60_000, "imagenet": 1_281_167}


@dataclass
class Lottery:
    """One `open_lth.py lottery` experiment (plus branches) and the truth its files encode."""

    model: str = "cifar_resnet_20"
    dataset: str = "cifar10"
    batch_size: int = 128
    lr: str = "0.1"
    training_steps: str = "160ep"
    rewinding_steps: str | None = None
    levels: int = 3
    replicates: tuple[int, ...] = (1, 2)
    prunable: int = 271_962
    branches: tuple[str, ...] = ()          # branch names run at every level (OpenLTH: --levels=0-N)
    unfinished_levels: tuple[int, ...] = ()  # levels whose training has not ended (no logger yet)
    extra_training: dict[str, str] = field(default_factory=lambda: {
        "momentum": "0.9", "milestone_steps": "80ep,120ep", "gamma": "0.1", "weight_decay": "0.0001"})

    # ------------------------------------------------------------------------------------- arithmetic
    @property
    def per_epoch(self) -> int:
        return math.ceil(TRAIN.get(self.dataset, 50_000) / self.batch_size)

    def steps(self, text: str) -> int:
        ep, _, it = text.partition("ep")
        if not it and text.endswith("it"):
            return int(text[:-2])
        return int(ep) * self.per_epoch + (int(it[:-2]) if it else 0)

    @property
    def end(self) -> int:
        return self.steps(self.training_steps)

    @property
    def rewind(self) -> int:
        return self.steps(self.rewinding_steps) if self.rewinding_steps else 0

    def unpruned(self, level: int) -> int:
        left = self.prunable
        for _ in range(level):
            left -= math.ceil(0.2 * left)
        return left

    def sparsity(self, level: int) -> float:
        return 1 - self.unpruned(level) / self.prunable

    @staticmethod
    def accuracy(rep: int, level: int, kind: str, iteration: int, end: int) -> float:
        """A made-up but deterministic test accuracy (a fraction, as OpenLTH logs it): n / 10000."""
        salt = int(hashlib.md5(f"{rep}-{level}-{kind}".encode()).hexdigest()[:6], 16) % 400
        progress = iteration / end
        n = int(1000 + 8000 * progress ** 0.5) + salt - 500 * (progress > 0.95) * (level % 2)
        return n / 10_000

    @property
    def hashname(self) -> str:
        return "lottery_" + hashlib.md5(repr(self.hparams_log()).encode()).hexdigest()

    # ---------------------------------------------------------------------------------------- writing
    def hparams_log(self) -> str:
        def section(name: str, items: list[tuple[str, str]]) -> str:
            return name + "\n" + "\n".join(f"    * {k} => {v}" for k, v in items)

        data = [("dataset_name", self.dataset), ("batch_size", str(self.batch_size))]
        model = [("model_name", self.model), ("model_init", "kaiming_normal"), ("batchnorm_init", "uniform")]
        order = ("momentum", "milestone_steps", "gamma", "warmup_steps", "weight_decay")
        training = [("optimizer_name", "sgd"), ("lr", self.lr), ("training_steps", self.training_steps)]
        training += [(k, self.extra_training[k]) for k in order if k in self.extra_training]
        pruning = [("pruning_strategy", "sparse_global"), ("pruning_fraction", "0.2"),
                   ("pruning_layers_to_ignore", "fc.weight")]
        parts = [section("Dataset Hyperparameters", data), section("Model Hyperparameters", model)]
        if self.rewinding_steps:
            pre = [(k, self.rewinding_steps if k == "training_steps" else v) for k, v in training]
            parts += [section("Pretraining Dataset Hyperparameters", data),
                      section("Pretraining Training Hyperparameters", pre)]
        parts += [section("Pruning Hyperparameters", pruning), section("Training Hyperparameters", training)]
        return "\n".join(parts)

    def logger(self, rep: int, level: int, kind: str, start: int, end: int) -> tuple[str, list[float]]:
        ipe = self.per_epoch
        its = sorted({e * ipe for e in range(start // ipe, end // ipe + 1) if start <= e * ipe <= end} | {start, end})
        lines, accs = [], []
        for it in its:
            acc = self.accuracy(rep, level, kind, it, self.end)
            accs.append(acc)
            lines += [f"test_loss,{it},{2.3 * (1 - acc) + 0.05}", f"test_accuracy,{it},{acc}",
                      f"test_examples,{it},10000.0"]
        return "\n".join(lines), accs

    def _run(self, folder: Path, rep: int, level: int, kind: str, start: int, end: int, finished: bool = True,
             sparsity_level: int | None = None) -> None:
        folder.mkdir(parents=True)
        if sparsity_level is not None:
            (folder / "mask.pth").write_bytes(b"")
            report = {"total": float(self.prunable), "unpruned": float(self.unpruned(sparsity_level))}
            (folder / "sparsity_report.json").write_text(json.dumps(report, indent=4))
        ipe = self.per_epoch
        (folder / f"model_ep{start // ipe}_it{start % ipe}.pth").write_bytes(b"")
        (folder / "checkpoint.pth").write_bytes(b"")
        if finished:
            (folder / f"model_ep{end // ipe}_it{end % ipe}.pth").write_bytes(b"")
            (folder / "logger").write_text(self.logger(rep, level, kind, start, end)[0])

    def write(self, root: Path) -> Path:
        """Write the tree under `root` (OpenLTH's data root); returns the experiment folder."""
        exp = root / self.hashname
        for rep in self.replicates:
            rfolder = exp / f"replicate_{rep}"
            if self.rewind:
                self._run(rfolder / "level_pretrain" / "main", rep, -1, "pretrain", 0, self.rewind)
            for level in range(self.levels + 1):
                main = rfolder / f"level_{level}" / "main"
                self._run(main, rep, level, "main", self.rewind, self.end, level not in self.unfinished_levels,
                          sparsity_level=level)
                if level == 0:
                    (main / "hparams.log").write_text(self.hparams_log())
                for name in self.branches:
                    digest = hashlib.md5(f"{self.hashname}-{name}".encode()).hexdigest()
                    branch = rfolder / f"level_{level}" / f"lottery_branch_{name}_{digest}"
                    self._run(branch, rep, level, name, self.rewind, self.end, sparsity_level=level)
        return exp

    def best(self, rep: int, level: int, kind: str) -> float:
        accs = self.logger(rep, level, kind, self.rewind, self.end)[1]
        if level == 0 and kind == "main" and self.rewind:
            accs += self.logger(rep, -1, "pretrain", 0, self.rewind)[1]
        return 100 * max(accs)

    def final(self, rep: int, level: int, kind: str) -> float:
        return 100 * self.accuracy(rep, level, kind, self.end, self.end)
