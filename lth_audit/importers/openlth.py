"""OpenLTH (facebookresearch/open_lth) output trees into run records (docs/own-runs.md#openlth).

The layout read, as OpenLTH writes it under its data root:

    lottery_<hash>/replicate_<r>/level_<k>/main/           one network of the IMP trunk
        hparams.log            (level_0 only) the experiment's hyperparameters, section by section
        logger                 lines `name,iteration,value`; `test_accuracy` is a fraction
        sparsity_report.json   {"total": prunable weights, "unpruned": weights kept}
    lottery_<hash>/replicate_<r>/level_<k>/lottery_branch_<name>_<hash>/   a branch at level k
    lottery_<hash>/replicate_<r>/level_pretrain/main/     the first piece of a rewinding experiment

Training lengths are `160ep`, `62560it` or `5ep100it`; one epoch is ceil(training examples ×
subsample_fraction / batch_size) iterations, with OpenLTH's training-set sizes (or `train_sizes`).

Mapping: level 0 → pretrain; level k ≥ 1 → lt-imp, or wr-imp when the experiment rewinds
(`rewinding_steps`: its level 0, trained through `level_pretrain` and then `level_0`, is one pretrain
record of the whole length); a `randomly_reinitialize` branch at level k ≥ 1 → rr-imp; a
`randomly_prune` branch is kept in the `meta.randomly_prune` list of the trunk record of its level,
or, with `randomly_prune="rp-imp"`, becomes an rp-imp record (SPEC §6). OpenLTH writes no branch
arguments into its tree, so that is the user's statement that the branches used OpenLTH's default
strategy `layerwise` and start point `rewind`, which is θ0 only when the experiment does not rewind:
branches of a rewinding experiment stay in meta either way.
Epochs are whole: the training length rounds down, a rewind point to the nearest epoch, and the
exact iterations stay in `meta.openlth`. Seed = replicate. Run ids carry the experiment hash.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ..records import Problem, RunRecord, problems_from_validation

TRAIN_EXAMPLES = {"cifar10": 50_000, "mnist": 60_000, "imagenet": 1_281_167}
"""Training-set sizes of the data sets OpenLTH ships (its `num_train_examples`)."""

# Why a folder is left out (ImportResult.left_out): not an error, the records would not be SPEC §1 settings.
PRETRAINED = "pretrained with hyperparameters of its own (--pretrain), not a setting of SPEC §1"
UNFINISHED = "not finished (OpenLTH writes the logger when a run ends)"
DENSE_BRANCH = "branch of the dense level 0, not a sparse setting"
OTHER_BRANCH = "branch that is not a setting of SPEC §1"
NOT_LOTTERY = "not a lottery experiment"

_EXPERIMENT = re.compile(r"lottery_([0-9a-f]{32})")
_BRANCH = re.compile(r"lottery_branch_(.+)_([0-9a-f]{32})")
_STEPS = re.compile(r"(?:(\d+)ep)?(?:(\d+)it)?")
_ENTRY = re.compile(r"\s+\* (\w+) => (.*)")


@dataclass
class ImportResult:
    records: list[RunRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    left_out: dict[str, list[str]] = field(default_factory=dict)   # why -> folders (relative to the root)

    def leave_out(self, why: str, folder: Path, root: Path) -> None:
        self.left_out.setdefault(why, []).append(str(folder.relative_to(root)))


class _Bad(Exception):
    """One problem that stops the current experiment or run (collected, never raised to the caller)."""

    def __init__(self, problem: Problem):
        self.problem = problem


def steps(text: str, per_epoch: int, where: str, key: str) -> int:
    """Iterations of an OpenLTH step string: `160ep`, `62560it` or `5ep100it`."""
    m = _STEPS.fullmatch(text.strip())
    if not text.strip() or m is None or (m.group(1) is None and m.group(2) is None):
        raise _Bad(Problem(where, None, key, f"{text!r} is not a step count like 160ep, 62560it or 5ep100it"))
    return int(m.group(1) or 0) * per_epoch + int(m.group(2) or 0)


def read_hparams(path: Path) -> dict[str, dict[str, str]]:
    """hparams.log: a header line per section, then `    * name => value` lines."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        entry = _ENTRY.fullmatch(line)
        if entry and current is not None:
            current[entry.group(1)] = entry.group(2)
        elif not line[0].isspace():
            current = sections.setdefault(line.strip(), {})
        else:
            raise _Bad(Problem(str(path), no, None, f"expected a section name or `    * name => value`, got {line!r}"))
    return sections


def read_logger(path: Path) -> dict[str, dict[int, float]]:
    """logger: `name,iteration,value` a line -> {name: {iteration: value}}."""
    out: dict[str, dict[int, float]] = {}
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            if len(parts) != 3:
                raise ValueError
            out.setdefault(parts[0], {})[int(parts[1])] = float(parts[2])
        except ValueError:
            raise _Bad(Problem(str(path), no, None, f"expected `name,iteration,value`, got {line!r}")) from None
    return out


def read_sparsity(path: Path) -> float:
    """sparsity_report.json: 1 - unpruned / total."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        total, unpruned = float(report["total"]), float(report["unpruned"])
        if not 0 <= unpruned <= total or total <= 0:
            raise ValueError(f"unpruned {unpruned} of total {total}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _Bad(Problem(str(path), None, None, f"cannot read the sparsity report: {exc}")) from None
    return 1.0 - unpruned / total


@dataclass(frozen=True)
class _Experiment:
    """What hparams.log says, in the units the records need."""

    dataset: str
    arch: str
    lr: float
    per_epoch: int        # iterations per epoch
    end: int              # training_steps in iterations
    rewind: int           # rewinding_steps in iterations (0: no rewinding)
    hparams: dict[str, dict[str, str]]

    def epochs_from(self, start: int) -> int:
        """Whole epochs trained from iteration `start` to the end: the length down, the start to nearest."""
        return self.end // self.per_epoch - round(start / self.per_epoch)


def _section(sections: dict[str, dict[str, str]], name: str, where: str, keys: tuple[str, ...]) -> dict[str, str]:
    if name not in sections:
        raise _Bad(Problem(where, None, None, f"no `{name}` section"))
    missing = [k for k in keys if k not in sections[name]]
    if missing:
        raise _Bad(Problem(where, None, name, f"missing {', '.join(missing)}"))
    return sections[name]


def _per_epoch(data: dict[str, str], where: str, train_sizes: dict[str, int]) -> int:
    name = data["dataset_name"]
    if name not in train_sizes:
        raise _Bad(Problem(where, None, "dataset_name",
                           f"{name!r} is not a data set OpenLTH ships ({', '.join(TRAIN_EXAMPLES)}): give its "
                           f"training-set size, e.g. --train-size {name}=50000"))
    try:
        examples = train_sizes[name] * float(data.get("subsample_fraction") or 1.0)
        return math.ceil(examples / int(data["batch_size"]))
    except ValueError as exc:
        raise _Bad(Problem(where, None, None, f"batch_size or subsample_fraction: {exc}")) from None


def _experiment(path: Path, train_sizes: dict[str, int]) -> _Experiment | None:
    """The experiment of one hparams.log; None when it pretrained with hyperparameters of its own."""
    where = str(path)
    sections = read_hparams(path)
    data = _section(sections, "Dataset Hyperparameters", where, ("dataset_name", "batch_size"))
    model = _section(sections, "Model Hyperparameters", where, ("model_name",))
    training = _section(sections, "Training Hyperparameters", where, ("lr", "training_steps"))
    per_epoch = _per_epoch(data, where, train_sizes)
    rewind = 0
    pre = sections.get("Pretraining Training Hyperparameters")
    if pre is not None:
        same_data = sections.get("Pretraining Dataset Hyperparameters") == data
        same_training = {k: v for k, v in pre.items() if k != "training_steps"} == \
                        {k: v for k, v in training.items() if k != "training_steps"}
        if not (same_data and same_training and "training_steps" in pre):
            return None
        rewind = steps(pre["training_steps"], per_epoch, where, "Pretraining Training Hyperparameters.training_steps")
    try:
        lr = float(training["lr"])
    except ValueError:
        raise _Bad(Problem(where, None, "lr", f"not a number: {training['lr']!r}")) from None
    end = steps(training["training_steps"], per_epoch, where, "Training Hyperparameters.training_steps")
    return _Experiment(data["dataset_name"], model["model_name"], lr, per_epoch, end, rewind, sections)


@dataclass(frozen=True)
class _Run:
    """One trained network's outcome, read from its folder's logger."""

    folder: Path
    start: int
    top1: float
    best: float | None
    diverged: bool
    accuracies: tuple[float, ...]


def _read_run(folder: Path, exp: _Experiment) -> _Run | None:
    """The run in `folder`; None when it has not finished (OpenLTH writes its logger at the end)."""
    logger = folder / "logger"
    if not logger.exists():
        return None
    log = read_logger(logger)
    acc = log.get("test_accuracy")
    if not acc:
        raise _Bad(Problem(str(logger), None, "test_accuracy", "no test_accuracy line"))
    end = max(acc)
    if end != exp.end:
        raise _Bad(Problem(str(logger), None, "test_accuracy",
                           f"last evaluation at iteration {end}, but training_steps is {exp.end} iterations "
                           f"({exp.per_epoch} per epoch)"))
    loss = log.get("test_loss", {}).get(end)
    values = tuple(100.0 * acc[i] for i in sorted(acc))
    best = max(values) if len(values) > 2 else None   # only a start and an end evaluation: no best epoch known
    return _Run(folder, min(acc), 100.0 * acc[end], best, loss is not None and not math.isfinite(loss), values)


def _record(exp: _Experiment, run: _Run, run_id: str, setting: str, sparsity: float, seed: int, root: Path,
            extra: dict[str, Any]) -> RunRecord:
    rewind_epoch = round(exp.rewind / exp.per_epoch) if setting.startswith("wr-") else 0
    epochs = exp.epochs_from(run.start)
    data = {"run_id": run_id, "arch": exp.arch, "dataset": exp.dataset, "setting": setting,
            "sparsity": round(sparsity, 6), "lr": exp.lr, "epochs": epochs, "rewind_epoch": rewind_epoch,
            "seed": seed, "top1": round(run.top1, 6),
            "best_top1": None if run.best is None else round(run.best, 6), "diverged": run.diverged,
            "mask_lr": exp.lr if setting != "pretrain" else None,
            "meta": {"source": "openlth", "openlth": {
                "folder": str(run.folder.relative_to(root)), "iterations_per_epoch": exp.per_epoch,
                "start_iteration": run.start, "end_iteration": exp.end, "rewind_iteration": exp.rewind,
                "hparams": exp.hparams}, **extra}}
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        raise _Bad(problems_from_validation(str(run.folder), None, exc)[0]) from None


def _numbered(folder: Path, prefix: str) -> list[tuple[int, Path]]:
    out = []
    for p in folder.iterdir():
        m = re.fullmatch(rf"{prefix}_(\d+)", p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def _replicate(rep: int, folder: Path, digest: str, root: Path, train_sizes: dict[str, int],
               result: ImportResult, as_rp: bool) -> None:
    hparams = folder / "level_0" / "main" / "hparams.log"
    if not hparams.exists():
        result.problems.append(Problem(str(hparams), None, None, "missing: OpenLTH writes it when level 0 starts"))
        return
    exp = _experiment(hparams, train_sizes)
    if exp is None:
        result.leave_out(PRETRAINED, folder, root)
        return
    base = f"openlth-{digest[:12]}-r{rep}"
    setting = "wr-imp" if exp.rewind else "lt-imp"
    for level, lfolder in _numbered(folder, "level"):
        try:
            trunk = _read_run(lfolder / "main", exp)
            rr: list[RunRecord] = []
            prune_meta: list[dict[str, Any]] = []
            for branch in sorted(p for p in lfolder.iterdir() if p.is_dir() and p.name != "main"):
                _branch(branch, level, rep, base, exp, root, result, rr, prune_meta, as_rp)
            if trunk is None:
                result.leave_out(UNFINISHED, lfolder / "main", root)
                if prune_meta:
                    result.leave_out("randomly_prune branch whose level's trunk run has not finished", lfolder, root)
            else:
                if trunk.start != exp.rewind:
                    raise _Bad(Problem(str(trunk.folder / "logger"), None, "test_accuracy",
                                       f"first evaluation at iteration {trunk.start}, expected {exp.rewind}"))
                extra: dict[str, Any] = {"randomly_prune": prune_meta} if prune_meta else {}
                if level == 0:
                    run = trunk
                    if exp.rewind:  # the first piece of the dense run lives in level_pretrain
                        values = _read_run_piece(folder / "level_pretrain" / "main", exp.rewind) + trunk.accuracies
                        run = _Run(trunk.folder, 0, trunk.top1, max(values), trunk.diverged, values)
                    result.records.append(_record(exp, run, f"{base}-L0", "pretrain", 0.0, rep, root, extra))
                else:
                    result.records.append(_record(exp, trunk, f"{base}-L{level}", setting,
                                                  read_sparsity(trunk.folder / "sparsity_report.json"), rep,
                                                  root, extra))
            result.records.extend(rr)
        except _Bad as bad:
            result.problems.append(bad.problem)


def _read_run_piece(folder: Path, end: int) -> tuple[float, ...]:
    """Accuracies (percent) of the pretraining piece of a rewinding experiment, which ends at `end`."""
    logger = folder / "logger"
    if not logger.exists():
        raise _Bad(Problem(str(logger), None, None, "missing, though level 0 trained on from it"))
    acc = read_logger(logger).get("test_accuracy", {})
    if not acc or max(acc) != end:
        raise _Bad(Problem(str(logger), None, "test_accuracy",
                           f"the pretraining piece must end at the rewinding step, iteration {end}"))
    return tuple(100.0 * acc[i] for i in sorted(acc))


def _branch(folder: Path, level: int, rep: int, base: str, exp: _Experiment, root: Path, result: ImportResult,
            rr: list[RunRecord], prune_meta: list[dict[str, Any]], as_rp: bool) -> None:
    m = _BRANCH.fullmatch(folder.name)
    if m is None or m.group(1) not in ("randomly_reinitialize", "randomly_prune"):
        result.leave_out(OTHER_BRANCH, folder, root)
        return
    name, digest = m.groups()
    if level == 0:
        result.leave_out(DENSE_BRANCH, folder, root)
        return
    run = _read_run(folder, exp)
    if run is None:
        result.leave_out(UNFINISHED, folder, root)
        return
    sparsity = read_sparsity(folder / "sparsity_report.json")
    if name == "randomly_reinitialize":
        rr.append(_record(exp, run, f"{base}-L{level}-rr-{digest[:8]}", "rr-imp", sparsity, rep, root, {}))
    elif as_rp and not exp.rewind:
        rr.append(_record(exp, run, f"{base}-L{level}-rp-{digest[:8]}", "rp-imp", sparsity, rep, root,
                          {"randomly_prune": "strategy layerwise and start rewind, as stated by the importer's user"}))
    else:
        prune_meta.append({"branch": folder.name, "sparsity": round(sparsity, 6), "top1": round(run.top1, 6),
                           "best_top1": None if run.best is None else round(run.best, 6),
                           "epochs": exp.epochs_from(run.start), "start_iteration": run.start,
                           "diverged": run.diverged})


def import_openlth(root: str | Path, train_sizes: dict[str, int] | None = None,
                   randomly_prune: Literal["meta", "rp-imp"] = "meta") -> ImportResult:
    """Every finished run under `root` (OpenLTH's data root, or one `lottery_<hash>` folder) as a record;
    `randomly_prune` says what its randomly_prune branches become (see the module docstring)."""
    root = Path(root)
    sizes = {**TRAIN_EXAMPLES, **(train_sizes or {})}
    result = ImportResult()
    if not root.is_dir():
        result.problems.append(Problem(str(root), None, None, "no such folder"))
        return result
    candidates = [root] if _EXPERIMENT.fullmatch(root.name) else sorted(p for p in root.iterdir() if p.is_dir())
    experiments = [p for p in candidates if _EXPERIMENT.fullmatch(p.name)]
    for p in candidates:
        if not _EXPERIMENT.fullmatch(p.name) and p.name.startswith("train_"):
            result.leave_out(NOT_LOTTERY, p, root)
    if not experiments:
        result.problems.append(Problem(str(root), None, None, "no OpenLTH experiment folder (lottery_<hash>) here"))
    for exp_dir in experiments:
        digest = _EXPERIMENT.fullmatch(exp_dir.name).group(1)
        base = root.parent if exp_dir == root else root
        replicates = _numbered(exp_dir, "replicate")
        if not replicates:
            result.problems.append(Problem(str(exp_dir), None, None, "no replicate_<r> folder"))
        for rep, folder in replicates:
            try:
                _replicate(rep, folder, digest, base, sizes, result, randomly_prune == "rp-imp")
            except _Bad as bad:
                result.problems.append(bad.problem)
    return result
