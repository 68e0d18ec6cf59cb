"""`lth-audit claims`: a claim-file scaffold with one claim per ticket found in record stores.

A ticket is (arch, dataset, setting, sparsity) for a ticket setting the profile judges (SPEC §2);
records whose measured sparsities lie within `SPARSITY_TOLERANCE` of each other are one ticket. The
author states each claim's `expect`: the scaffold writes `expect: null` with the choices in a comment,
which the claim loader reports (file, line) until it is replaced. `expect_current=True` writes today's
verdicts instead, so the file audits as it stands. Data sets outside SPEC §2's table get a commented
`thresholds:` block to fill in (a missing threshold is an error, never a guess).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .conditions import PROFILES
from .evidence import SPARSITY_TOLERANCE, same_sparsity
from .records import RunRecord, Setting
from .thresholds import TABLE, MissingThresholds, ThresholdOverrides, resolve

EXPECT = {"jackpot": "jackpot", "jackpot-boundary": "jackpot", "secondary": "secondary",
          "secondary-boundary": "secondary", "none": "none", "insufficient-evidence": "none"}
"""The `expect` that states a verdict (a boundary verdict still claims its prize)."""

NEEDED = ("similar", "gap", "sufficient_epochs")
HINTS = {"similar": "pp for ④ ⑤ (SPEC §2: 0.5 on CIFAR-10, 1.0 on CIFAR-100, 1.5 on ImageNet)",
         "gap": "pp for ② ③ (SPEC §2: 0.5)",
         "sufficient_epochs": "epochs for ① (SPEC §2: 160 on CIFAR, 90 on ImageNet)"}


@dataclass(frozen=True)
class Ticket:
    arch: str
    dataset: str
    setting: Setting
    sparsity: float
    runs: tuple[RunRecord, ...]

    @property
    def id(self) -> str:
        return f"{self.arch}-{self.dataset}-{self.setting.value}-s{self.sparsity:g}"


def _grid_value(values: Sequence[float]) -> float:
    """The sparsity a claim names for measured values: their mean to 3 decimals when that matches them all."""
    mean = math.fsum(values) / len(values)
    for digits in (3, 4, 6):
        if all(same_sparsity(v, round(mean, digits)) for v in values):
            return round(mean, digits)
    return mean


def find_tickets(records: Sequence[RunRecord]) -> list[Ticket]:
    """Every (arch, dataset, ticket setting, sparsity) in `records`, sparsities clustered within tolerance."""
    groups: dict[tuple[str, str, Setting], list[RunRecord]] = {}
    for r in records:
        if r.setting.is_ticket and r.sparsity > 0:
            groups.setdefault((r.arch, r.dataset, r.setting), []).append(r)
    tickets = []
    for (arch, dataset, setting), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2].value)):
        runs.sort(key=lambda r: r.sparsity)
        cluster: list[RunRecord] = []
        for r in [*runs, None]:
            if cluster and (r is None or r.sparsity - cluster[0].sparsity > SPARSITY_TOLERANCE):
                value = _grid_value([c.sparsity for c in cluster])
                tickets.append(Ticket(arch, dataset, setting, value, tuple(cluster)))
                cluster = []
            if r is not None:
                cluster.append(r)
    return tickets


def _yaml(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n...\n").strip()


@dataclass
class Scaffold:
    text: str
    tickets: list[Ticket]
    left_out: dict[str, int]       # ticket setting the profile does not judge -> tickets left out
    unknown_datasets: list[str]    # data sets outside SPEC §2's table whose thresholds were not all given


def scaffold(records: Sequence[RunRecord], stores: Sequence[Path], out: Path, profile: str = "rigorous",
             metric: str = "top1", overrides: ThresholdOverrides | None = None,
             expect_current: bool = False) -> Scaffold:
    """The claim file's text. With `expect_current`, every data set needs its thresholds (MissingThresholds)."""
    from .audit import audit_claim
    from .claims import Claim

    prof = PROFILES[profile]
    overrides = overrides or ThresholdOverrides()
    found = find_tickets(records)
    tickets = [t for t in found if t.setting in prof.ticket_settings]
    left_out: dict[str, int] = {}
    for t in found:
        if t.setting not in prof.ticket_settings:
            left_out[t.setting.value] = left_out.get(t.setting.value, 0) + 1
    given = overrides.model_dump(exclude_none=True)
    datasets = sorted({t.dataset for t in tickets})
    unknown = [d for d in datasets if d not in TABLE and not all(k in given for k in NEEDED)]
    if expect_current and unknown:
        raise MissingThresholds(f"data set(s) {', '.join(unknown)} are not in SPEC §2's table: give "
                                f"--similar, --gap and --sufficient-epochs to audit them with --expect-current")

    rel = [os.path.relpath(Path(s).resolve(), out.resolve().parent) for s in stores]
    lines = [f"# Claim file written by `lth-audit claims` from {len(records)} records: one claim per ticket found.",
             "# A claim states what the evidence should show (SPEC §4): expect jackpot | secondary | none."]
    if not expect_current:
        lines.append("# Every `expect: null` below is yours to state; until then the file does not load.")
    lines += ["", "records:", *(f"  - {_yaml(r)}" for r in rel), f"profile: {profile}", f"metric: {metric}"]
    if given:
        lines.append(f"thresholds: {_yaml(given)}")
    for d in unknown:
        longest = max(r.total_epochs for r in records if r.dataset == d)
        lines += ["", f"# {d} is not in SPEC §2's table: state its thresholds (and drop the #) before auditing."]
        if len(datasets) > 1:
            lines.append(f"# They apply to every claim of this file: claims on {', '.join(datasets)} are better "
                         f"kept in files of their own.")
        lines.append("# thresholds:")
        for k in NEEDED:
            hint = HINTS[k] + (f"; these records train up to {longest} epochs" if k == "sufficient_epochs" else "")
            lines.append(f"#   {k}: {given.get(k, '')}    # {hint}")
    lines += ["", "claims:"]
    for t in tickets:
        settings = sorted({r.setting.value for r in records if r.arch == t.arch and r.dataset == t.dataset})
        lrs = sorted({r.lr for r in t.runs})
        if expect_current:
            th = resolve(t.dataset, overrides)
            probe = Claim(id=t.id, arch=t.arch, dataset=t.dataset, setting=t.setting, sparsity=t.sparsity,
                          expect="none")
            result = audit_claim(probe, records, th, profile, metric)
            expect = f"{EXPECT[result.verdict]}    # today's verdict: {result.verdict}"
            if result.witness_lr is not None:
                expect += f" (witness lr {result.witness_lr:g})"
        else:
            expect = "null    # state it: jackpot | secondary | none (or rerun with --expect-current)"
        lines += [f"  - id: {_yaml(t.id)}", f"    arch: {_yaml(t.arch)}", f"    dataset: {_yaml(t.dataset)}",
                  f"    setting: {t.setting.value}", f"    sparsity: {_yaml(t.sparsity)}",
                  f"    # {len(t.runs)} {t.setting.value} runs at lr {', '.join(f'{lr:g}' for lr in lrs)}; "
                  f"settings recorded for {t.arch}/{t.dataset}: {', '.join(settings)}",
                  f"    expect: {expect}"]
    return Scaffold("\n".join(lines) + "\n", tickets, left_out, unknown)
