"""What a record store says about the runs of a plan: done, to train, or *changed*.

A run is identified by its run id *and* the configuration that trained it. Every record the backend writes
keeps that configuration (`Experiment.training_config()`) in `meta.config`, so a resume compares field by
field: a recorded run whose configuration differs from the experiment's is *changed*, and `lth-audit run`
refuses to go on (exit 2) until the user says which way out (a new `out`, or `--rerun-changed`: the changed
runs' records are moved to a dated file beside the store and the runs trained again). The store never holds
two configurations of one run, so no cell mixes them silently.

Records written before `meta.config` existed carry only `meta.config_hash` (`Experiment.config_hash()`):
equal to the experiment's, the run is the same; different, it is changed and the fields cannot be named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..exitcodes import CommandError
from ..records import RunRecord
from .experiment import Experiment
from .plan import Plan

SHOWN_FIELDS = 6
SHOWN_RUNS = 3


@dataclass(frozen=True)
class Change:
    """How one recorded run differs from the experiment: the fields, or why they cannot be named."""

    run_id: str
    fields: tuple[tuple[str, Any, Any], ...] = ()    # (field, recorded, now)
    unnamed: str = ""                                # set when the fields cannot be named

    @property
    def what(self) -> str:
        if self.unnamed:
            return self.unnamed
        shown = ", ".join(f"{k} {_show(old)} -> {_show(new)}" for k, old, new in self.fields[:SHOWN_FIELDS])
        more = len(self.fields) - SHOWN_FIELDS
        return shown + (f" and {more} more field(s)" if more > 0 else "")


def _show(value: Any) -> str:
    return "(not set)" if value is _MISSING else repr(value)


_MISSING = object()


def diff(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
    """(field, recorded value, current value) for every field that differs, in name order."""
    keys = sorted(set(recorded) | set(now))
    return tuple((k, recorded.get(k, _MISSING), now.get(k, _MISSING)) for k in keys
                 if recorded.get(k, _MISSING) != now.get(k, _MISSING))


def change_of(rec: RunRecord, config: Mapping[str, Any], config_hash: str) -> Change | None:
    """None when `rec` was trained as the experiment trains now, else how it differs."""
    meta = rec.meta if isinstance(rec.meta, dict) else {}
    recorded = meta.get("config")
    if isinstance(recorded, dict):
        fields = diff(recorded, config)
        return Change(rec.run_id, fields) if fields else None
    old = meta.get("config_hash")
    if old == config_hash:
        return None
    if old is None:
        return Change(rec.run_id, unnamed="its record holds no configuration (no meta.config, no "
                                          "meta.config_hash): it was not written by `lth-audit run`")
    return Change(rec.run_id, unnamed=f"recorded before records kept their configuration (meta.config): its "
                                      f"config_hash is {old}, this experiment's is {config_hash}, so the changed "
                                      f"fields cannot be named (that hash also moves with lrs, seeds, settings "
                                      f"and sparsities)")


def changes(plan: Plan, records: Iterable[RunRecord]) -> dict[str, Change]:
    """The planned runs whose record was trained under another configuration, by run id. A ticket run that
    should carry its instability (`instability: true`) and does not counts as changed too: its twin must train
    beside it again (`instability` leaves the training configuration alone)."""
    exp = plan.experiment
    planned = plan.by_id()
    config, config_hash = exp.training_config(), exp.config_hash()
    out = {}
    for rec in records:
        if rec.run_id in planned:
            change = change_of(rec, config, config_hash)
            if change is None and planned[rec.run_id].twin and rec.instability is None:
                change = Change(rec.run_id, unnamed="recorded without its instability, which `instability: true` "
                                                    "measures beside a twin trained with the run")
            if change is not None:
                out[rec.run_id] = change
    return out


def summary(changed: Mapping[str, Change]) -> str:
    """One line per distinct difference: what changed and for how many runs (with examples)."""
    groups: dict[str, list[str]] = {}
    for c in changed.values():
        groups.setdefault(c.what, []).append(c.run_id)
    lines = []
    for what, ids in groups.items():
        eg = ", ".join(ids[:SHOWN_RUNS]) + (", ..." if len(ids) > SHOWN_RUNS else "")
        lines.append(f"  {len(ids)} run(s) ({eg}): {what}")
    return f"{len(changed)} recorded run(s) were trained under another configuration:\n" + "\n".join(lines)


def aside_path(out: Path, now: datetime | None = None) -> Path:
    """Where `--rerun-changed` moves the records of changed runs: `<out>.changed-<UTC time>` beside the store
    (not `*.jsonl`, so no claim file's glob picks it up by accident)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return out.with_name(f"{out.name}.changed-{stamp}")


class ChangedRuns(CommandError):
    """Recorded runs of the plan were trained under another configuration (exit 2): what changed, the ways out."""

    def __init__(self, exp: Experiment, changed: Mapping[str, Change]):
        self.changed = dict(changed)
        super().__init__(
            f"{exp.out_path}: {summary(changed)}\n"
            f"Nothing was trained. Either give the experiment a new `out:` (both configurations kept apart), or "
            f"run again with --rerun-changed to train these {len(changed)} run(s) again under the experiment's "
            f"configuration (their records are moved to {exp.out_path.name}.changed-<UTC time> beside the "
            f"store, never deleted).")


def states(plan: Plan, records: Sequence[RunRecord], changed: Mapping[str, Change]) -> dict[str, str]:
    """run_id -> "done" or "changed" for every planned run with a record (the others are to train)."""
    planned = plan.by_id()
    return {r.run_id: ("changed" if r.run_id in changed else "done") for r in records if r.run_id in planned}
