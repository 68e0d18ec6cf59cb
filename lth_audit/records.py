"""Run records (SPEC §3): one trained network per JSON line, and the loader that reads a store."""

from __future__ import annotations

import codecs
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

from .inputfiles import InputLimits, Unreadable, read_bounded
from .strict import Boolean, Number

SCHEMA = "lth-audit.run/1"
MAX_DEPTH = 64
"""JSON nested deeper than this in one record line is a problem of that line (a real record is 3 deep)."""


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


Percent = Annotated[float, Number, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
Fraction = Annotated[float, Number, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
Unit = Annotated[float, Number, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
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
    p: Annotated[float, Number, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
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
    lr: Annotated[float, Number, Field(gt=0.0, allow_inf_nan=False)]
    epochs: Annotated[int, Number, Field(ge=1)]
    seed: Annotated[int, Number]
    top1: Percent
    rewind_epoch: Annotated[int, Number, Field(ge=0)] = 0
    best_top1: Percent | None = None
    diverged: Annotated[bool, Boolean] = False
    params: Annotated[int, Number, Field(ge=0)] | None = None
    mask_lr: Annotated[float, Number, Field(gt=0.0, allow_inf_nan=False)] | None = None
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


SHOWN = 60
"""Characters of a bad value shown in a problem."""


def _shown(value: Any) -> str:
    """A bad value as JSON (what a store line says), cut to SHOWN characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


MAX_REPORTED = 50
"""Problems listed from one validation error; the rest are counted (an alias can repeat one mistake)."""


def line_of(lines: dict[tuple, int] | None, loc: tuple, default: int | None = None) -> int | None:
    """The line of `loc`, or of its nearest enclosing location that has one."""
    return next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), default) if lines else default


def problems_from_validation(path: str, line: int | None, err: ValidationError,
                             lines: dict[tuple, int] | None = None,
                             source: Callable[[tuple], str | None] | None = None) -> list[Problem]:
    """Turn a pydantic error into Problems; `lines` maps a location tuple to a source line, `source` to
    the text written there (shown instead of the value, which may be an expanded YAML alias)."""
    out = []
    errors = err.errors(include_url=False)
    for e in errors[:MAX_REPORTED]:
        loc = tuple(e["loc"])
        fld = ".".join(str(x) for x in loc) or None
        reason = e["msg"].removeprefix("Value error, ")
        if "input" in e and e["type"] not in ("missing",) and not isinstance(e["input"], dict):
            got = source(loc) if source else None
            reason += f" (got {got if got is not None else _shown(e['input'])})"
        out.append(Problem(path, line_of(lines, loc, line), fld, reason))
    if len(errors) > MAX_REPORTED:
        out.append(Problem(path, line, None, f"... and {len(errors) - MAX_REPORTED} more problems"))
    return out


@dataclass
class LoadResult:
    records: list[RunRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def raise_on_problems(self) -> list[RunRecord]:
        if self.problems:
            raise InputError(self.problems)
        return self.records


class _DuplicateKey(Exception):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return out


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return True
            stack.extend((x, depth + 1) for x in (v.values() if isinstance(v, dict) else v))
    return False


class _Unparsed(str):
    """A reason that says the line does not parse at all (what a torn last line looks like)."""


def _line_problem(raw: bytes) -> tuple[Any, str | None, str | None]:
    """(the JSON object, None, None) of one physical line, or (None, field, reason)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, None, _Unparsed(f"not UTF-8: byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line")
    try:
        data = json.loads(text, parse_constant=lambda c: math.nan, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        return None, None, _Unparsed(f"not valid JSON: {exc.msg} at column {exc.colno}")
    except ValueError as exc:  # an integer of more than 4300 digits
        return None, None, f"not valid JSON here: {str(exc).split(';')[0]}"
    except RecursionError:
        return None, None, f"JSON nested too deep (a record is at most {MAX_DEPTH} levels deep)"
    except _DuplicateKey as exc:
        return None, str(exc), "key given twice in one record (which one counts would be a guess)"
    if not isinstance(data, dict):
        return None, None, "expected a JSON object per line"
    if _too_deep(data):
        return None, None, f"JSON nested too deep (a record is at most {MAX_DEPTH} levels deep)"
    return data, None, None


Seen = dict[str, tuple[RunRecord, str, int]]
"""run_id -> (record, file, line) of its first line."""


def parse_lines(path: Path, data: bytes, result: LoadResult, seen: Seen, first_line: int = 1) -> None:
    """Parse `data`, the lines of `path` from line `first_line` on, into `result`; `seen` (the run ids of
    earlier lines) finds duplicates across calls. Physical lines end at b"\n" only (a U+2028 inside a JSON
    string is not a line end); each is decoded on its own, so a bad byte costs its line only. A last line
    without its newline that does not parse was torn by a writer that stopped: named as such, never merged
    or dropped."""
    if first_line == 1 and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    lines = data.split(b"\n")
    last = first_line + len(lines) - 1
    for no, raw in enumerate(lines, start=first_line):
        if not raw.strip():
            continue
        obj, fld, reason = _line_problem(raw)
        if reason is not None:
            if no == last and isinstance(reason, _Unparsed):
                reason = (f"incomplete last line (no newline at its end, and {reason}): a writer stopped in "
                          f"the middle of it; delete the line (`lth-audit run` retrains that run) or complete it")
            result.problems.append(Problem(str(path), no, fld, reason))
            continue
        try:
            rec = RunRecord.model_validate(obj)
        except ValidationError as exc:
            result.problems.extend(problems_from_validation(str(path), no, exc))
            continue
        if rec.run_id in seen:
            first, first_path, first_no = seen[rec.run_id]
            if first != rec:
                result.problems.append(Problem(str(path), no, "run_id",
                                               f"duplicate run_id {rec.run_id!r} with different content "
                                               f"(first at {first_path}:{first_no})"))
            continue
        seen[rec.run_id] = (rec, str(path), no)
        result.records.append(rec)


FRACTION_MAX = 1.0
"""A top1 at or below this looks like a fraction when percent is meant (SPEC §3)."""
PERCENT_MIN = 10.0


def _unit_problems(seen: Seen) -> list[Problem]:
    """SPEC §3: accuracies are in percent. Per (arch, dataset): all top1 <= 1.0 (with at least one
    run that did not diverge) is an error; so is a non-diverged top1 <= 1.0 among records above 10."""
    groups: dict[tuple[str, str], list[tuple[RunRecord, str, int]]] = {}
    for entry in seen.values():
        groups.setdefault((entry[0].arch, entry[0].dataset), []).append(entry)
    out = []
    for (arch, dataset), entries in groups.items():
        recs = [r for r, _, _ in entries]
        live = [e for e in entries if not e[0].diverged]
        if live and all(r.top1 <= FRACTION_MAX for r in recs):
            _, path, no = min(live, key=lambda e: (e[1], e[2]))
            out.append(Problem(path, no, "top1", f"every record of ({arch}, {dataset}) has top1 <= {FRACTION_MAX:g} "
                                                 f"({len(recs)} records): accuracies look like fractions; top1 is "
                                                 f"in percent (87.4, not 0.874)"))
        elif any(r.top1 > PERCENT_MIN for r in recs):
            out.extend(Problem(path, no, "top1", f"top1 {r.top1:g} <= {FRACTION_MAX:g} among records of ({arch}, "
                                                 f"{dataset}) above {PERCENT_MIN:g}: looks like a fraction; give it "
                                                 f"in percent, or mark the run `diverged: true`")
                       for r, path, no in sorted(live, key=lambda e: (e[1], e[2])) if r.top1 <= FRACTION_MAX)
    return out


def load_records(paths: Iterable[str | os.PathLike[str]], limits: InputLimits | None = None,
                 check_units: bool = True) -> LoadResult:
    """Read one or many JSONL stores. Bad lines are collected as problems; good lines are kept.
    `check_units`: apply SPEC §3's percent rule across them (`_unit_problems`)."""
    limits = limits or InputLimits()
    result = LoadResult()
    seen: Seen = {}
    for p in paths:
        path = Path(p)
        try:
            data = read_bounded(path, limits.max_store_bytes)
        except Unreadable as exc:
            result.problems.append(Problem(str(path), None, None, f"cannot read record store: {exc}"))
            continue
        parse_lines(path, data, result, seen)
    if check_units:
        result.problems.extend(_unit_problems(seen))
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

