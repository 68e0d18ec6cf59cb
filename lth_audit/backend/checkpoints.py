"""Checkpoints beside a record store: `<out>.ckpt/`.

Layout:
  init/seed<S>.pt                 θ0 of seed S (state dict; the same θ0 for every lr)
  runs/<run_id with / as __>/final.pt   θT of a pretrain or LT-IMP run (masks are derived from these)
  runs/<...>/best.pt              best-test-accuracy weights (only with `prune_from: best`)
  runs/<...>/rewind.pt            θt of a pretrain run (only when wr-* settings are asked)
  masks/<key>.pt                  {param name: 0/1 tensor}; key `omp-s0.59-lr0.1-seed0` or `imp-k4-lr0.1-seed0`

Every file is written to a temporary name and os.replace'd (a reader sees old or new, never half), and
read with torch.load(..., weights_only=True). A run's checkpoints are written before its record is
appended, so a record in the store means its checkpoints are there.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .data import atomic_torch_save


class Checkpoints:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, rel: str) -> Path:
        return self.root / rel

    @staticmethod
    def run_dir(run_id: str) -> str:
        return "runs/" + run_id.replace("/", "__")

    def init(self, seed: int) -> str:
        return f"init/seed{seed}.pt"

    def run_file(self, run_id: str, what: str) -> str:
        return f"{self.run_dir(run_id)}/{what}.pt"

    def mask(self, key: str) -> str:
        return f"masks/{key}.pt"

    def exists(self, rel: str) -> bool:
        return self._path(rel).is_file()

    def save(self, rel: str, obj) -> None:
        atomic_torch_save(obj, self._path(rel))

    def load(self, rel: str):
        return torch.load(self._path(rel), map_location="cpu", weights_only=True)
