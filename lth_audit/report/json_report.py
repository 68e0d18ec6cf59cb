"""The machine-readable report, SPEC §4 `lth-audit.report/1`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from ..audit import ClaimResult
from ..guideline import GuidelineResult
from ..records import atomic_write_text

SCHEMA = "lth-audit.report/1"


def claim_entry(r: ClaimResult) -> dict[str, Any]:
    """SPEC §4's fields first, then what a reader of the JSON needs to rebuild the table."""
    return {
        "id": r.id, "expect": r.expect, "verdict": r.verdict, "outcome": r.outcome, "witness_lr": r.witness_lr,
        "conditions": [{"id": c.id, "status": c.status.value, "margin": c.margin, "observed": c.observed,
                        "threshold": c.threshold, "best_lr": c.best_lr, "band": c.band,
                        "within_noise": c.within_noise, "noise": c.noise, "seeds_needed": c.seeds_needed,
                        "advice": c.advice, "reference_lr": c.reference_lr, "evidence": c.evidence,
                        "ignored": c.ignored, "note": c.note} for c in r.conditions],
        "missing": r.missing,
        "file": r.file, "arch": r.arch, "dataset": r.dataset, "setting": r.setting, "sparsity": r.sparsity,
        "profile": r.profile, "metric": r.metric, "grades": {k: v.value for k, v in r.grades.items()},
        "grades_within_noise": {k: v.value for k, v in r.rescued.items()}, "hint": r.hint,
        "observations": r.observations.model_dump(mode="json"),
    }


def report_dict(results: Sequence[ClaimResult], errors: Sequence[str] = (),
                guideline: Sequence[GuidelineResult] = ()) -> dict[str, Any]:
    return {"schema": SCHEMA, "claims": [claim_entry(r) for r in results],
            "guideline": [g.model_dump(mode="json") for g in guideline], "errors": list(errors)}


def write_json(path: str | os.PathLike[str], results: Sequence[ClaimResult], errors: Sequence[str] = (),
               guideline: Sequence[GuidelineResult] = ()) -> None:
    atomic_write_text(path, json.dumps(report_dict(results, errors, guideline), indent=1) + "\n")
