"""Run records (SPEC §3): one trained network per JSON line, and the store that reads and writes them."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

SCHEMA = "lth-audit.run/1"


class Setting(str, Enum):
    """The settings of SPEC §1 and §6 (random pruning). The value is the spelling in records and claim files."""

    PRETRAIN = "pretrain"
    LT_OMP = "lt-omp"
    LT_IMP = "lt-imp"
    RR_OMP = "rr-omp"
    RR_IMP = "rr-imp"
    SDT = "sdt"
    WR_OMP = "wr-omp"
    WR_IMP = "wr-imp"
    RP_OMP = "rp-omp"   # θ0 ⊙ a random mask with the OMP mask's per-layer sparsity (SPEC §6)
    RP_IMP = "rp-imp"

    @property
    def method(self) -> str | None:
        """The pruning method a setting's mask comes from (`omp` / `imp`), None for pretrain and sdt."""
        return self.value.split("-")[1] if "-" in self.value else None

    @property
    def is_ticket(self) -> bool:
        return self.value.startswith(("lt-", "wr-"))


Percent = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
DatasetName = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1)]
"""Data set names compare in lower case: records, claims and thresholds say `cifar10` whatever was typed."""


class CorrelationIndicator(BaseModel):
    """R_p of Appendix E for one run: overlap of the top-p weights of two weight sets, layer by layer.

    m is the run's mask, θ0 the ticket's init, θ'0 the random reinit, θT the run's own trained weights.
    Each field is optional; a record carries the ones that apply to its setting.

    - `init` (lt-*): R_p(θ0⊙m, θT⊙m), the ticket's init against its own trained weights (Appendix E).
    - `reinit` (rr-*): R_p(θ'0⊙m, θ'T⊙m), the reinit against its own trained weights (Appendix E).
    - `init_pretrained` (lt-*): R_p(θ0⊙m, θT_pre⊙m), against the pretrained network (θT_pre: the
      pretrain run's trained weights at the same lr and seed, the ones pruning used) under the mask:
      the pairing of Section 3.1 and Figure 4's caption.
    - `reinit_pretrained` (rr-*): R_p(θ'0⊙m, θT_pre⊙m), likewise.
    - `dense` (pretrain): R_p(θ0, θT) of the dense network (Appendix E).

    `init` and `reinit` mean what they meant before the other three fields existed (the own pairing).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    p: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
    init: Unit | None = None
    reinit: Unit | None = None
    init_pretrained: Unit | None = None
    reinit_pretrained: Unit | None = None
    dense: Unit | None = None


class RunRecord(BaseModel):
    """One trained network. Unknown keys are moved into `meta`, never dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    schema_: Literal["lth-audit.run/1"] = Field(SCHEMA, alias="schema")
    run_id: Annotated[str, Field(min_length=1)]
    arch: Annotated[str, Field(min_length=1)]
    dataset: DatasetName
    setting: Setting
    sparsity: Fraction
    lr: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    epochs: Annotated[int, Field(ge=1)]
    seed: int
    top1: Percent
    rewind_epoch: Annotated[int, Field(ge=0)] = 0
    best_top1: Percent | None = None
    diverged: bool = False
    params: Annotated[int, Field(ge=0)] | None = None
    mask_lr: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    r_p: CorrelationIndicator | None = None
    instability: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None   # pp, SPEC §6 (lt-*, wr-*)
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys_to_meta(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = {f.alias or name for name, f in cls.model_fields.items()}
        extra = {k: v for k, v in data.items() if k not in known}
        if not extra:
            return data
        kept = {k: v for k, v in data.items() if k in known}
        meta = kept.get("meta")
        kept["meta"] = {**extra, **(meta if isinstance(meta, dict) else {})}
        if meta is not None and not isinstance(meta, dict):
            kept["meta"] = meta  # let field validation report the bad meta
        return kept

    @model_validator(mode="after")
    def _consistent(self) -> RunRecord:
        if self.setting is Setting.PRETRAIN and self.sparsity != 0.0:
            raise ValueError("sparsity: a pretrain run is dense, sparsity must be 0")
        if self.rewind_epoch > 0 and not self.setting.value.startswith("wr-"):
            raise ValueError("rewind_epoch: > 0 is only meaningful for wr-omp / wr-imp")
        if self.instability is not None and not self.setting.is_ticket:
            raise ValueError("instability: measured for ticket runs (lt-*, wr-*) only")
        return self

    @property
    def total_epochs(self) -> int:
        """Epochs the weights have seen: for wr-* the rewind epoch counts (SPEC §2 ①)."""
        return self.epochs + self.rewind_epoch

    def metric(self, name: str) -> float:
        """The accuracy an audit reads: `top1` or `best_top1` (falls back to nothing: caller checks)."""
        value = self.top1 if name == "top1" else self.best_top1
        if value is None:
            raise KeyError(f"record {self.run_id!r} has no {name}")
        return value

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_defaults=False), sort_keys=False)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an input file: where, which field, and what was expected."""

    path: str
    line: int | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        what = f" [{self.field}]" if self.field else ""
        return f"{where}:{what} {self.reason}"


class InputError(Exception):
    """Raised with every problem found, never just the first."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def problems_from_validation(path: str, line: int | None, err: ValidationError,
                             lines: dict[tuple, int] | None = None) -> list[Problem]:
    """Turn a pydantic error into Problems; `lines` maps a location tuple to a source line."""
    out = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        fld = ".".join(str(x) for x in loc) or None
        reason = e["msg"]
        if "input" in e and e["type"] not in ("missing",) and not isinstance(e["input"], dict):
            reason += f" (got {e['input']!r})"
        at = line
        if lines is not None:
            for n in range(len(loc), -1, -1):
                if loc[:n] in lines:
                    at = lines[loc[:n]]
                    break
        out.append(Problem(path, at, fld, reason))
    return out


@dataclass
class LoadResult:
    records: list[RunRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def raise_on_problems(self) -> list[RunRecord]:
        if self.problems:
            raise InputError(self.problems)
        return self.records


def _parse_lines(path: Path, text: str, result: LoadResult, seen: dict[str, tuple[RunRecord, str]]) -> None:
    for no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw, parse_constant=lambda c: math.nan)
        except json.JSONDecodeError as exc:
            result.problems.append(Problem(str(path), no, None, f"not valid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(data, dict):
            result.problems.append(Problem(str(path), no, None, "expected a JSON object per line"))
            continue
        try:
            rec = RunRecord.model_validate(data)
        except ValidationError as exc:
            result.problems.extend(problems_from_validation(str(path), no, exc))
            continue
        where = f"{path}:{no}"
        if rec.run_id in seen:
            first, first_where = seen[rec.run_id]
            if first != rec:
                result.problems.append(Problem(str(path), no, "run_id",
                                               f"duplicate run_id {rec.run_id!r} with different content "
                                               f"(first at {first_where})"))
            continue
        seen[rec.run_id] = (rec, where)
        result.records.append(rec)


def load_records(paths: Iterable[str | os.PathLike[str]]) -> LoadResult:
    """Read one or many JSONL stores. Bad lines are collected as problems; good lines are kept."""
    result = LoadResult()
    seen: dict[str, tuple[RunRecord, str]] = {}
    for p in paths:
        path = Path(p)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            result.problems.append(Problem(str(path), None, None, f"cannot read record store: {exc}"))
            continue
        _parse_lines(path, text, result, seen)
    return result


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Write a file through `write(f)` so that a reader sees the old or the new content, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would make every report private to its writer
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


class RecordStore:
    """A single JSONL file that one writer appends to; every write replaces the file atomically."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def load(self) -> list[RunRecord]:
        if not self.path.exists():
            return []
        return load_records([self.path]).raise_on_problems()

    def run_ids(self) -> set[str]:
        return {r.run_id for r in self.load()}

    def append(self, records: Sequence[RunRecord]) -> None:
        existing = self.load()
        ids = {r.run_id for r in existing}
        clash = [r.run_id for r in records if r.run_id in ids]
        if clash:
            raise ValueError(f"{self.path}: run_id already recorded: {', '.join(clash)}")
        lines = [r.to_json() for r in [*existing, *records]]
        atomic_write_text(self.path, "".join(line + "\n" for line in lines))
