"""Build run records and claims for tests without writing JSON by hand."""

from __future__ import annotations

from lth_audit.claims import Claim
from lth_audit.records import RunRecord, Setting
from lth_audit.thresholds import Thresholds, resolve

SPARSITY = 0.832


def rec(setting: str, lr: float, top1: float, seed: int = 0, *, sparsity: float | None = None,
        epochs: int = 160, arch: str = "netA", dataset: str = "cifar10", **extra) -> RunRecord:
    s = Setting(setting)
    if s is Setting.PRETRAIN or sparsity is None:
        sparsity = 0.0 if s is Setting.PRETRAIN else SPARSITY
    rid = f"{arch}-{dataset}-{setting}-s{sparsity}-lr{lr}-e{epochs}-seed{seed}"
    return RunRecord.model_validate({"schema": "lth-audit.run/1", "run_id": rid, "arch": arch, "dataset": dataset,
                                     "setting": setting, "sparsity": sparsity, "lr": lr, "epochs": epochs,
                                     "seed": seed, "top1": top1, **extra})


def grid(values: dict[tuple[str, float], float | list[float]], **kw) -> list[RunRecord]:
    """Records from {(setting, lr): accuracy or per-seed accuracies}."""
    out = []
    for (setting, lr), v in values.items():
        for seed, top1 in enumerate(v if isinstance(v, list) else [v]):
            out.append(rec(setting, lr, top1, seed, **kw))
    return out


def two_seeds(values: dict) -> dict:
    """Every single accuracy as two seeds of that accuracy: a noise estimate of exactly 0 (the band is its floor).
    One run per cell would have no noise estimate at all (SPEC §2 revision 2)."""
    return {k: (v if isinstance(v, list) else [v, v]) for k, v in values.items()}


def claim(expect: str = "jackpot", setting: str = "lt-imp", sparsity: float = SPARSITY, arch: str = "netA",
          dataset: str = "cifar10") -> Claim:
    return Claim(id="t", arch=arch, dataset=dataset, setting=setting, sparsity=sparsity, expect=expect)


def cifar10(**overrides) -> Thresholds:
    return resolve("cifar10").model_copy(update=overrides)


JACKPOT = {("pretrain", 0.02): 91.0, ("pretrain", 0.2): 92.0, ("lt-imp", 0.02): 91.9, ("lt-imp", 0.2): 91.0,
           ("rr-imp", 0.02): 90.5, ("rr-imp", 0.2): 90.8, ("sdt", 0.02): 89.0, ("sdt", 0.2): 89.5}
"""A clean jackpot at lr 0.02 (conformance c01 with one seed): margins ② +1.9 ③ +0.6 ④ +1.4 ⑤ +0.4."""


def extended_records(rp: float, instability: list[float | None] | None = (0.5, 0.5)) -> list[RunRecord]:
    """JACKPOT with two seeds per cell, plus random-pruning (rp-imp) runs at `rp` (lr 0.02; 80.0 at 0.2) and
    each lt-imp seed's `instability` (None: not recorded), for the `extended` profile (SPEC §6)."""
    values = two_seeds({**JACKPOT, ("rp-imp", 0.02): rp, ("rp-imp", 0.2): 80.0})
    records = []
    for (setting, lr), seeds in values.items():
        for seed, top1 in enumerate(seeds):
            extra = {}
            if setting == "lt-imp" and instability is not None and instability[seed] is not None:
                extra["instability"] = instability[seed]
            records.append(rec(setting, lr, top1, seed, **extra))
    return records
