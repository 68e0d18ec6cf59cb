"""Experiment files (SPEC §5): the YAML that `lth-audit run` trains, parsed into a pydantic model.

Every problem is reported with the file, the line and the field (`InputError` of `Problem`s). Relative
paths (`out`, `data_root`) are taken relative to the experiment file's folder, like claim files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..records import Fraction, InputError, Problem, Setting
from ..strict import Boolean, Number
from ..yamlfile import YamlDoc, load_yaml, parse_yaml
from .recipes import PRESETS, Recipe, arch_preset
from .settings import SETTING_RULES

PositiveFloat = Annotated[float, Number, Field(gt=0.0, allow_inf_nan=False)]
Count = Annotated[int, Number, Field(ge=1)]
Flag = Annotated[bool, Boolean]
SEED_MAX = 2**32 - 1
"""Largest seed: torch.manual_seed takes < 2**64, and the trainer derives seeds from it (seed * 1_000_003 + epoch)."""
Seed = Annotated[int, Number, Field(ge=0, le=SEED_MAX)]

DEFAULT_RECIPE = {"cifar10": "cifar", "cifar100": "cifar", "tiny-imagenet": "tiny-imagenet",
                  "imagenet": "imagenet", "mnist1d": "mnist1d", "mnist1d-10k": "mnist1d"}
_RECIPE_KEYS = ("epochs", "batch_size", "momentum", "weight_decay", "schedule", "milestones", "gamma",
                "warmup_epochs", "nesterov", "imp_rate", "init", "label_smoothing", "mixup")
_RESOLVED_IN_HASH = ("init", "label_smoothing", "mixup")
"""Keys that enter `config_hash` by what they resolve to, not as written (see `config_hash`)."""
NOT_TRAINING = frozenset({"name", "out", "source", "data_root", "download", "lrs", "seeds", "settings", "sparsities",
                          "trajectory_every", "in_memory", "loader_workers", "instability"})
"""Keys that choose which runs exist, where files go or how data is read, never how one run trains: left out
of `Experiment.training_config()`. Every other key counts, including one added later (listing it here is a decision)."""


class Experiment(BaseModel):
    """One experiment: one arch on one data set, a grid of learning rates x seeds x settings x sparsities."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    arch: str
    dataset: str
    data_root: str = "~/data"
    download: Flag = False
    recipe: str | None = None            # default: the data set's preset
    epochs: Count | None = None
    batch_size: Count | None = None
    momentum: Annotated[float, Number, Field(ge=0.0, lt=1.0, allow_inf_nan=False)] | None = None
    weight_decay: Annotated[float, Number, Field(ge=0.0, allow_inf_nan=False)] | None = None
    schedule: Literal["step", "cosine", "constant"] | None = None
    milestones: list[Annotated[float, Number, Field(gt=0.0, lt=1.0)]] | None = None
    gamma: PositiveFloat | None = None
    warmup_epochs: Annotated[int, Number, Field(ge=0)] | None = None
    nesterov: Flag | None = None
    imp_rate: Annotated[float, Number, Field(gt=0.0, lt=1.0)] | None = None
    init: Literal["paper", "pytorch"] | None = None          # default: the preset's ("paper")
    label_smoothing: Annotated[float, Number, Field(ge=0.0, lt=1.0)] | None = None
    mixup: Annotated[float, Number, Field(ge=0.0, allow_inf_nan=False)] | None = None   # Beta(α, α); 0: none
    lrs: Annotated[list[PositiveFloat], Field(min_length=1)]
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0, 1, 2]
    settings: Annotated[list[Setting], Field(min_length=1)]
    sparsities: list[Fraction] = []
    rewind_epoch: Count | None = None
    out: Annotated[str, Field(min_length=1)]
    ignore: list[str] | None = None      # layers left dense (module names / globs); default: the arch's
    prune_from: Literal["last", "best"] = "last"
    augment: Literal["none", "crop-flip", "shift"] | None = None
    width: PositiveFloat = 1.0
    trajectory_every: Count | None = None   # keep every run's weights every k epochs
    instability: Flag = False            # train each ticket run's twin and record its instability (SPEC §6)
    in_memory: Flag | None = None        # default: stream the data sets that stream (imagenet)
    loader_workers: Annotated[int, Number, Field(ge=0)] | None = None   # streaming: DataLoader workers

    # Set by load_experiment: where the file is (relative paths resolve against it).
    source: str | None = Field(default=None, exclude=True)

    # ------------------------------------------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        return Path(self.source).resolve().parent if self.source else Path.cwd()

    def _resolve(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def out_path(self) -> Path:
        return self._resolve(self.out)

    @property
    def data_path(self) -> Path:
        return self._resolve(self.data_root)

    @property
    def ckpt_root(self) -> Path:
        """`<out>.ckpt/`: one folder per training configuration, and the runs' claims (`claims/`)."""
        return self.out_path.with_name(self.out_path.name + ".ckpt")

    @property
    def ckpt_dir(self) -> Path:
        """The checkpoints of this training configuration: `<out>.ckpt/<training key>/`. A changed
        configuration gets a folder of its own, so no weight or mask is ever reused across configurations."""
        return self.ckpt_root / self.training_key()

    @property
    def preset(self) -> str:
        return self.recipe or DEFAULT_RECIPE[self.dataset]

    @property
    def recipe_obj(self) -> Recipe:
        """The preset, with its fields for this arch (Table C.1's VGG-16 warmup), then this file's keys."""
        changes = {**arch_preset(self.preset, self.arch),
                   **{k: getattr(self, k) for k in _RECIPE_KEYS if getattr(self, k) is not None}}
        if self.rewind_epoch is not None:
            changes["rewind_epoch"] = self.rewind_epoch
        return PRESETS[self.preset].override(**changes)

    @property
    def epochs_total(self) -> int:
        return self.recipe_obj.epochs

    @property
    def rewind(self) -> int:
        return self.recipe_obj.rewind_epoch

    @property
    def data_in_memory(self) -> bool:
        """Load the data set into memory (TensorData), or stream it from disk (StreamData)?"""
        from .data import DATASETS

        if self.in_memory is not None:
            return self.in_memory
        return not (self.dataset in DATASETS and DATASETS[self.dataset].streams)

    def setting_set(self) -> set[Setting]:
        return set(self.settings)

    def training_config(self) -> dict[str, Any]:
        """What trains every run of this experiment, resolved: the recipe's fields after preset, per-arch
        fields and the file's keys (named as in the file: `momentum`, `epochs`, ...), the init scheme drawn,
        the layers left dense, the augmentation, whether the data streams, the arch's registry version, and
        every other key not in NOT_TRAINING (arch, dataset, width, prune_from, ...). Records keep it in
        `meta.config`; a recorded run whose configuration differs is *changed* (docs/backend.md, Resume)."""
        from .data import DATASETS
        from .models import entry, init_scheme

        body = self.model_dump(mode="json", exclude=set(NOT_TRAINING) | set(_RECIPE_KEYS)
                               | {"recipe", "rewind_epoch", "ignore", "augment"})
        recipe = asdict(self.recipe_obj)
        body.update({k: v for k, v in recipe.items() if k != "init"})
        body["milestones"] = list(recipe["milestones"])
        body["init"] = init_scheme(self.arch, self.recipe_obj.init).name
        body["ignore"] = list(self.ignore) if self.ignore is not None else list(entry(self.arch).dense)
        body["augment"] = self.augment or DATASETS[self.dataset].augment
        body["stream"] = not self.data_in_memory
        body["arch_version"] = entry(self.arch).version
        return dict(sorted(body.items()))

    def training_key(self) -> str:
        """12 hex digits of `training_config()`: the name of this configuration's checkpoint folder."""
        return hashlib.sha256(json.dumps(self.training_config(), sort_keys=True).encode()).hexdigest()[:12]

    def config_hash(self) -> str:
        """A hash of what trains: the file's keys, plus what the code resolves differently from the baseline
        every earlier hash assumed (PyTorch's init, no label smoothing, no mixup, the presets' common
        fields, registry version 1). Keys that leave training unchanged keep existing files' hashes.

        - trajectory_every only adds checkpoints; instability only adds a twin beside a run (resume asks for
          it record by record); loader_workers does not change training (streamed augmentation is seeded per
          sample): all left out. in_memory counts only as what it resolves to,
          and only when that is streaming.
        - init, label_smoothing, mixup count by what they resolve to, and only where that trains
          differently from the baseline: `init: paper` on an arch whose paper scheme draws something
          (its scheme's name), a non-zero label smoothing or mixup (the imagenet preset's).
        - A per-arch preset field the file leaves unset counts as if written (vgg16 on cifar: 75 warmup
          epochs); an arch's registry version above 1 counts too (vgg16 and resnet32: architecture and
          default dense layers now those of the paper's code).

        So `init: pytorch` gives an image-model experiment written before `init` existed its old hash back
        (except vgg16 and resnet32, whose networks changed).
        """
        from .models import entry, init_scheme

        body = self.model_dump(mode="json", exclude={"source", "trajectory_every", "in_memory", "loader_workers",
                                                     "instability", *_RESOLVED_IN_HASH})
        if not self.data_in_memory:
            body["stream"] = True
        r = self.recipe_obj
        scheme = init_scheme(self.arch, r.init)
        if not scheme.is_default:
            body["init"] = scheme.name
        for key in ("label_smoothing", "mixup"):
            if getattr(r, key):
                body[key] = getattr(r, key)
        for key, value in arch_preset(self.preset, self.arch).items():
            if body.get(key) is None:
                body[key] = value
        if entry(self.arch).version > 1:
            body["arch_version"] = entry(self.arch).version
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def _semantic_problems(exp: Experiment, doc: YamlDoc) -> list[Problem]:
    from .data import DATASETS
    from .models import REGISTRY
    from .pruning import imp_round

    probs: list[Problem] = []

    def bad(loc: tuple, reason: str) -> None:
        probs.append(doc.problem(loc, reason))

    if exp.dataset not in DATASETS:
        bad(("dataset",), f"unknown dataset {exp.dataset!r}; known: {', '.join(DATASETS)}")
    if exp.arch not in REGISTRY:
        bad(("arch",), f"unknown arch {exp.arch!r}; `lth-audit models` lists: {', '.join(REGISTRY)}")
    elif exp.dataset in DATASETS and REGISTRY[exp.arch].kind != DATASETS[exp.dataset].kind:
        bad(("arch",), f"arch {exp.arch!r} takes {REGISTRY[exp.arch].kind} data, {exp.dataset!r} is "
                       f"{DATASETS[exp.dataset].kind}")
    if exp.recipe is not None and exp.recipe not in PRESETS:
        bad(("recipe",), f"unknown recipe {exp.recipe!r}; presets: {', '.join(PRESETS)}")
    if probs:
        return probs
    if exp.in_memory is False and exp.dataset not in ("tiny-imagenet", "imagenet"):
        bad(("in_memory",), f"only ImageFolder data sets (tiny-imagenet, imagenet) stream; {exp.dataset!r} "
                            "is always in memory")
    if not exp.data_in_memory and exp.augment is not None:
        bad(("augment",), "streamed data uses its own transforms (RandomResizedCrop + flip for imagenet, "
                          "crop-flip for tiny-imagenet); `augment:` needs `in_memory: true`")
    r = exp.recipe_obj
    for i, s in enumerate(exp.sparsities):
        try:
            imp_round(s, r.imp_rate)
        except ValueError as exc:
            bad(("sparsities", i), str(exc))
    for i, setting in enumerate(exp.settings):
        if setting not in SETTING_RULES:
            bad(("settings", i), f"`lth-audit run` does not train {setting.value} runs yet; it trains "
                                 f"{', '.join(s.value for s in SETTING_RULES)}")
    if len(set(exp.lrs)) != len(exp.lrs):
        bad(("lrs",), "learning rates repeat")
    if len(set(exp.seeds)) != len(exp.seeds):
        bad(("seeds",), "seeds repeat")
    if exp.instability and not any(SETTING_RULES[s].ticket for s in exp.settings if s in SETTING_RULES):
        bad(("instability",), "instability: true measures ticket runs, and no lt-* or wr-* setting is asked for")
    needs_mask = {s for s in exp.settings if s.method is not None} | ({Setting.SDT} & set(exp.settings))
    if needs_mask and not exp.sparsities:
        bad(("sparsities",), f"settings {sorted(s.value for s in needs_mask)} need at least one sparsity")
    if any(s.value.startswith("wr-") for s in exp.settings) and not 1 <= r.rewind_epoch < r.epochs:
        bad(("rewind_epoch",), f"rewind epoch {r.rewind_epoch} must be in [1, epochs={r.epochs})")
    if exp.ignore is not None:
        _ignore_problems(exp, bad)
    return probs


def _ignore_problems(exp: Experiment, bad) -> None:
    """`ignore:` entries must each leave some layer dense, and together leave some layer prunable."""
    from .models import build_model
    from .pruning import prunable_names

    model = build_model(exp.arch, exp.dataset, exp.width, device="meta")
    every = prunable_names(model)
    for i, entry in enumerate(exp.ignore or ()):
        if set(prunable_names(model, [entry])) == set(every):
            bad(("ignore", i), f"{entry!r} matches no prunable layer of {exp.arch}; its conv and linear "
                               f"layers are {', '.join(n.removesuffix('.weight') for n in every)}")
    if every and not prunable_names(model, exp.ignore or ()):
        bad(("ignore",), f"leaves no layer of {exp.arch} to prune (every conv and linear layer is ignored)")


def _experiment(doc: YamlDoc) -> Experiment:
    if not isinstance(doc.data, dict):
        raise InputError([Problem(doc.path, 1, None, "an experiment file is a YAML mapping")])
    exp = doc.validate(Experiment, {**doc.data, "source": doc.path})
    probs = _semantic_problems(exp, doc)
    if probs:
        raise InputError(probs)
    return exp


def parse_experiment(text: str | bytes, path: str = "<experiment>") -> Experiment:
    return _experiment(parse_yaml(text, path))


def load_experiment(path: str | Path) -> Experiment:
    return _experiment(load_yaml(path, "experiment file"))
