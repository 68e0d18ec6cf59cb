"""Claim files (SPEC §4): `*.lth.yaml`, each naming record stores and the tickets it claims."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .conditions import PROFILES, ProfileName
from .records import DatasetName, InputError, Problem, RunRecord, Setting, load_records, problems_from_validation
from .thresholds import MissingThresholds, ThresholdOverrides, Thresholds, resolve

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
    sparsity: Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False)]
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
    sparsity: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    setting: Setting = Setting.LT_IMP
    residual: bool | None = None            # rules 1 and 2: does `arch` have residual connections?
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


def _line_map(node: yaml.Node, loc: tuple = ()) -> Iterator[tuple[tuple, int]]:
    """(pydantic-style location, 1-based line) for every node of a composed YAML document."""
    yield loc, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield (*loc, key.value), key.start_mark.line + 1
            yield from ((k, v) for k, v in _line_map(value, (*loc, key.value)) if k != (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _line_map(item, (*loc, i))


def _resolve(path: Path, key: str, patterns: list[str], lines: dict[tuple, int]) -> tuple[list[Path], list[Problem]]:
    """The files `patterns` (relative to the claim file, globs allowed) name; a pattern matching none is a problem."""
    files: list[Path] = []
    problems = []
    for i, pattern in enumerate(patterns):
        full = os.path.join(path.parent, os.path.expanduser(pattern))
        found = sorted(Path(p) for p in glob.glob(full, recursive=True))
        if not found:
            problems.append(Problem(str(path), lines.get((key, i)), f"{key}.{i}",
                                    f"no file matches {pattern!r} (relative to {path.parent})"))
        files.extend(p for p in found if p not in files)
    return files, problems


def load_claim_file(path: str | os.PathLike[str], overrides: ThresholdOverrides | None = None) -> ClaimFile:
    """Parse, validate and load one claim file and its records; every problem is raised at once."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(str(path), None, None, f"cannot read claim file: {exc}")]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError([Problem(str(path), mark.line + 1 if mark else None, None,
                                  f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    lines = dict(_line_map(node)) if node is not None else {}
    if not isinstance(data, dict):
        raise InputError([Problem(str(path), 1, None, "expected a mapping with `records:` and `claims:`")])
    try:
        model = ClaimFileModel.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_from_validation(str(path), None, exc, lines)) from exc

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
    stores, store_problems = _resolve(path, "records", model.records, lines)
    landscapes, landscape_problems = _resolve(path, "landscapes", model.landscapes, lines)
    problems.extend(store_problems + landscape_problems)
    loaded = load_records(stores)
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


def find_claim_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Claim files named directly, and every claim file under the folders named, in sorted order."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.is_file() and is_claim_file(q)))
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
