"""Claim files (SPEC §4): `*.lth.yaml`, each naming record stores and the tickets it claims."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .conditions import PROFILES, ProfileName
from .inputfiles import FILES_SETTING, InputLimits, Unreadable, check_regular, expand, walk_files
from .records import DatasetName, InputError, Problem, RunRecord, Setting, load_records
from .strict import Boolean, Number
from .thresholds import MissingThresholds, ThresholdOverrides, Thresholds, resolve
from .yamlfile import YamlDoc, load_yaml

CLAIM_SUFFIXES = (".lth.yaml", ".lth.yml")
Expect = Literal["jackpot", "secondary", "none"]
Metric = Literal["top1", "best_top1"]


class Claim(BaseModel):
    """One ticket a claim file asserts something about."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1)]
    arch: Annotated[str, Field(min_length=1)]
    dataset: DatasetName
    setting: Setting
    sparsity: Annotated[float, Number, Field(gt=0.0, lt=1.0, allow_inf_nan=False)]
    expect: Expect

    @field_validator("setting")
    @classmethod
    def _ticket(cls, v: Setting) -> Setting:
        if not v.is_ticket:
            raise ValueError("a ticket's setting is one of lt-omp, lt-imp, wr-omp, wr-imp")
        return v


RuleName = Literal["imp-over-omp", "small-lr", "capacity-sparsity", "large-lr-init"]
RULE_NEEDS = {"imp-over-omp": ("sparsity", "residual"), "small-lr": ("sparsity", "residual"),
              "capacity-sparsity": ("smaller",), "large-lr-init": ("sparsity",)}


class GuidelineClaim(BaseModel):
    """One `guideline:` entry of a claim file: a rule asserted for one network on one data set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1)]
    rule: RuleName
    arch: Annotated[str, Field(min_length=1)]
    dataset: DatasetName
    sparsity: Annotated[float, Number, Field(gt=0.0, lt=1.0, allow_inf_nan=False)] | None = None
    setting: Setting = Setting.LT_IMP
    residual: Annotated[bool, Boolean] | None = None            # rules 1 and 2: does `arch` have residual connections?
    smaller: str | None = None              # rule 3: the less redundant network to compare with

    @model_validator(mode="after")
    def _needs(self) -> GuidelineClaim:
        for name in RULE_NEEDS[self.rule]:
            if getattr(self, name) is None:
                raise ValueError(f"rule {self.rule!r} needs `{name}`")
        return self


class ClaimFileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    records: Annotated[list[str], Field(min_length=1)]
    profile: ProfileName = "rigorous"
    metric: Metric = "top1"
    thresholds: ThresholdOverrides | None = None
    claims: list[Claim] = []
    guideline: list[GuidelineClaim] = []
    landscapes: list[str] = []          # `lth-audit landscape` sidecars (.json) the report draws; globs allowed

    @model_validator(mode="after")
    def _something(self) -> ClaimFileModel:
        if not self.claims and not self.guideline:
            raise ValueError("a claim file needs at least one entry under `claims:` or `guideline:`")
        return self

    @field_validator("records", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


@dataclass(frozen=True)
class ClaimFile:
    """A loaded, validated claim file together with the records it names."""

    path: Path
    model: ClaimFileModel
    records: tuple[RunRecord, ...]
    store_paths: tuple[Path, ...]
    landscapes: tuple[Path, ...]
    thresholds: dict[str, Thresholds]   # per claim or guideline id
    lines: dict[str, int]               # claim or guideline id -> line of its `- id:` entry

    @property
    def claims(self) -> list[Claim]:
        return self.model.claims

    @property
    def guideline(self) -> list[GuidelineClaim]:
        return self.model.guideline


def _resolve(path: Path, key: str, patterns: list[str], doc: YamlDoc,
             limits: InputLimits) -> tuple[list[Path], list[Problem]]:
    """The files `patterns` (relative to the claim file, globs allowed) name, each real file once (symlinks
    and hard links resolved, first name kept); a pattern matching nothing, or something that is not a
    file, is a problem."""
    files: list[Path] = []
    real: set[tuple[int, int]] = set()
    problems = []
    for i, pattern in enumerate(patterns):
        try:
            found = expand(pattern, path.parent, limits)
        except Unreadable as exc:
            problems.append(doc.problem((key, i), f"{pattern!r}: {exc}"))
            continue
        if not found:
            problems.append(doc.problem((key, i), f"no file matches {pattern!r} (relative to {path.parent})"))
        for p in found:
            try:
                target = check_regular(p)
            except Unreadable as exc:
                problems.append(doc.problem((key, i), f"{p}: {exc}"))
                continue
            if target not in real:
                real.add(target)
                files.append(p)
        if len(files) > limits.max_files:
            problems.append(doc.problem((key,), f"the patterns match more than {limits.max_files:,} files (raise "
                                                f"the limit with {FILES_SETTING})"))
            return [], problems
    return files, problems


def load_claim_file(path: str | os.PathLike[str], overrides: ThresholdOverrides | None = None,
                    limits: InputLimits | None = None) -> ClaimFile:
    """Parse, validate and load one claim file and its records; every problem is raised at once."""
    path = Path(path)
    limits = limits or InputLimits()
    doc = load_yaml(path, "claim file")
    if not isinstance(doc.data, dict):
        raise InputError([Problem(str(path), 1, None, "expected a mapping with `records:` and `claims:`")])
    model = doc.validate(ClaimFileModel)
    lines = doc.lines

    problems: list[Problem] = []
    seen: set[str] = set()
    thresholds: dict[str, Thresholds] = {}
    profile = PROFILES[model.profile]
    merged = (model.thresholds or ThresholdOverrides()).merged(overrides)
    entries = [("claims", i, c) for i, c in enumerate(model.claims)]
    entries += [("guideline", i, g) for i, g in enumerate(model.guideline)]
    for key, i, entry in entries:
        if entry.id in seen:
            problems.append(Problem(str(path), lines.get((key, i, "id")), f"{key}.{i}.id",
                                    f"duplicate claim id {entry.id!r}"))
        seen.add(entry.id)
        if key == "claims" and entry.setting not in profile.ticket_settings:
            allowed = ", ".join(sorted(s.value for s in profile.ticket_settings))
            judges = [name for name, p in PROFILES.items() if entry.setting in p.ticket_settings]
            problems.append(Problem(str(path), lines.get((key, i, "setting")), f"{key}.{i}.setting",
                                    f"profile {profile.name!r} judges tickets of setting {allowed}, "
                                    f"not {entry.setting.value!r}; a {entry.setting.value} ticket is judged under "
                                    f"`profile: {' or '.join(judges)}`"))
        try:
            thresholds[entry.id] = resolve(entry.dataset, merged)
        except MissingThresholds as exc:
            problems.append(Problem(str(path), lines.get((key, i, "dataset")), f"{key}.{i}.dataset", str(exc)))
    stores, store_problems = _resolve(path, "records", model.records, doc, limits)
    landscapes, landscape_problems = _resolve(path, "landscapes", model.landscapes, doc, limits)
    problems.extend(store_problems + landscape_problems)
    loaded = load_records(stores, limits)
    problems.extend(loaded.problems)
    if model.metric == "best_top1":
        problems.extend(Problem(str(path), lines.get(("metric",)), "metric",
                                f"metric best_top1, but record {r.run_id!r} has no best_top1")
                        for r in loaded.records if r.best_top1 is None)
    if problems:
        raise InputError(problems)
    claim_lines = {e.id: lines.get((key, i), 0) for key, i, e in entries}
    return ClaimFile(path, model, tuple(loaded.records), tuple(stores), tuple(landscapes), thresholds, claim_lines)


def is_claim_file(path: Path) -> bool:
    return path.name.endswith(CLAIM_SUFFIXES)


def find_claim_files(paths: Iterable[str | os.PathLike[str]], limits: InputLimits | None = None) -> list[Path]:
    """Claim files named directly, and every claim file under the folders named, in sorted order (a folder
    walk that meets a loop or passes the limits is an InputError)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            try:
                found.extend(walk_files(p, limits or InputLimits(), lambda name: name.endswith(CLAIM_SUFFIXES)))
            except Unreadable as exc:
                raise InputError([Problem(str(p), None, None, f"cannot walk the folder: {exc}")]) from None
        else:
            found.append(p)
    return found


def merged_records(files: Iterable[ClaimFile]) -> list[RunRecord]:
    """The records of several claim files, each run once (the first file naming a run id wins)."""
    runs: dict[str, RunRecord] = {}
    for cf in files:
        for r in cf.records:
            runs.setdefault(r.run_id, r)
    return list(runs.values())


def merged_landscapes(files: Iterable[ClaimFile]) -> list[Path]:
    return list(dict.fromkeys(p for cf in files for p in cf.landscapes))
