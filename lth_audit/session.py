"""One audit of some paths: every claim file found, loaded, audited; the engine the CLI, the pytest
plugin's report and the demo share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .audit import ClaimResult, audit_file
from .claims import ClaimFile, find_claim_files, load_claim_file
from .guideline import GuidelineResult, check_file
from .inputfiles import InputLimits
from .records import InputError, Problem
from .thresholds import ThresholdOverrides


@dataclass
class AuditRun:
    """Everything one audit of some paths produced."""

    results: list[ClaimResult] = field(default_factory=list)
    guideline: list[GuidelineResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[ClaimFile] = field(default_factory=list)


def audit_paths(paths: Sequence[str], overrides: ThresholdOverrides | None = None,
                limits: InputLimits | None = None) -> AuditRun:
    """Audit every claim file under `paths`; bad files are returned as problems, the rest still audited."""
    run = AuditRun()
    files = find_claim_files(paths, limits)
    for f in files:
        if not f.exists():
            run.problems.append(Problem(str(f), None, None, "no such file or folder"))
            continue
        try:
            loaded = load_claim_file(f, overrides, limits)
        except InputError as exc:
            run.problems.extend(exc.problems)
            continue
        run.files.append(loaded)
        run.results.extend(audit_file(loaded))
        run.guideline.extend(check_file(loaded))
    if not files:
        run.problems.append(Problem(", ".join(paths), None, None, "no claim file (*.lth.yaml) found"))
    return run
