"""`lth-audit`: a thin face over the audit engine (and, lazily, the training backend)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .analysis.commands import register as register_analysis
from .backend.commands import register as register_backend
from .audit import audit_file
from .claims import CLAIM_SUFFIXES, ClaimFile, is_claim_file, load_claim_file, merged_landscapes, merged_records
from .exitcodes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, run_guarded
from .inputfiles import Unreadable, walk_files
from .options import add_limit_options, add_threshold_options, limits_from, overrides_from
from .records import InputError, Problem, load_records
from .session import audit_paths


DEBUG_HELP = "show the traceback of an input or environment error (they are one-line messages otherwise)"


def _cmd_audit(args: argparse.Namespace) -> int:
    from .report.json_report import write_json
    from .report.table import explain, explain_guideline, table

    run = audit_paths(args.paths, overrides_from(args), limits_from(args))
    if run.results:
        print(table(run.results))
        for r in run.results:
            if r.outcome != "passed":
                print()
                print(explain(r))
    if run.guideline:
        print("\nguideline (paper Section 3.2):")
        for g in run.guideline:
            print(explain_guideline(g))
    for p in run.problems:
        print(f"error: {p}", file=sys.stderr)
    errors = [str(p) for p in run.problems]
    if args.json:
        write_json(args.json, run.results, errors, run.guideline)
        print(f"\nJSON report: {args.json}")
    if args.html:
        from .report.html import write_html

        write_html(args.html, run.results, errors, guideline=run.guideline, records=merged_records(run.files),
                   landscapes=merged_landscapes(run.files))
        print(f"HTML report: {args.html}")
    outcomes = [r.outcome for r in run.results] + [g.outcome for g in run.guideline]
    counts = {o: outcomes.count(o) for o in ("passed", "boundary", "failed", "not-applicable")}
    print(f"\n{len(outcomes)} claims: {counts['passed']} passed, {counts['boundary']} boundary, "
          f"{counts['failed']} failed" + (f", {counts['not-applicable']} not applicable" if counts['not-applicable']
                                          else "")
          + (f", {len(run.problems)} input problems" if run.problems else ""))
    if run.problems:
        return EXIT_BAD_INPUT
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _check_claims(cf: ClaimFile) -> tuple[list[Problem], list[str]]:
    """Claims checked against their records: a claim with no record of its ticket is a problem (it cannot be
    audited as written: the hint names what the records have); runs a condition misses are noted."""
    from .report.table import missing_words

    problems, notes = [], []
    for i, r in enumerate(audit_file(cf)):
        line = cf.lines.get(r.id)
        if r.hint:
            problems.append(Problem(str(cf.path), line, f"claims.{i}", f"claim {r.id!r} has no evidence: {r.hint}"))
        elif r.missing:
            notes.append(f"{cf.path}:{line}: claim {r.id!r} misses runs: {missing_words(r.missing)}")
    return problems, notes


def _validated(name: str) -> bool:
    return name.endswith((".jsonl", *CLAIM_SUFFIXES))


def _cmd_validate(args: argparse.Namespace) -> int:
    limits = limits_from(args)
    problems: list[Problem] = []
    notes: list[str] = []
    n_records = n_claims = 0
    for p in map(Path, args.paths):
        if not p.exists():
            problems.append(Problem(str(p), None, None, "no such file or folder"))
            continue
        try:
            files = walk_files(p, limits, _validated) if p.is_dir() else [p]
        except Unreadable as exc:
            problems.append(Problem(str(p), None, None, f"cannot walk the folder: {exc}"))
            continue
        for f in files:
            if is_claim_file(f):
                try:
                    cf = load_claim_file(f, limits=limits)
                except InputError as exc:
                    problems.extend(exc.problems)
                    continue
                n_claims += len(cf.claims)
                found, noted = _check_claims(cf)
                problems.extend(found)
                notes.extend(noted)
            elif f.suffix == ".jsonl":
                loaded = load_records([f], limits)
                n_records += len(loaded.records)
                problems.extend(loaded.problems)
    problems = list(dict.fromkeys(problems))   # a store named by a claim file and walked itself: once
    for prob in problems:
        print(prob)
    for note in notes:
        print(f"note: {note}")
    print(f"{n_records} good records, {n_claims} claims, {len(problems)} problems"
          + (f", {len(notes)} claims with missing runs" if notes else ""))
    return EXIT_BAD_INPUT if problems else EXIT_OK


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lth-audit", description=__doc__)
    ap.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="audit claim files (or folders of them) and print the verdicts")
    a.add_argument("paths", nargs="+", help="*.lth.yaml files or folders")
    a.add_argument("--json", metavar="FILE", help="write the lth-audit.report/1 JSON here")
    a.add_argument("--html", metavar="FILE", help="write the self-contained HTML report here")
    add_threshold_options(a.add_argument)
    add_limit_options(a.add_argument)
    a.set_defaults(func=_cmd_audit)
    v = sub.add_parser("validate", help="check record stores (*.jsonl) and claim files, listing every problem")
    v.add_argument("paths", nargs="+", help="files or folders")
    add_limit_options(v.add_argument)
    v.set_defaults(func=_cmd_validate)
    d = sub.add_parser("demo", help="train the MNIST-1D sanity-check grid, write its claims, audit, report")
    d.add_argument("--quick", action="store_true", help="a tiny grid (2 lrs, 2 seeds, 3 epochs, s=0.59) for CI")
    d.add_argument("--work", default="results/demo", help="experiment file, records and checkpoints")
    d.add_argument("--checks", default="checks/demo", help="where the claim file and its records go")
    d.add_argument("--reports", default="reports", help="where demo.html and demo.json go")
    d.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_cmd_demo)
    register_backend(sub)
    register_analysis(sub)
    for command in sub.choices.values():  # `lth-audit audit --debug ...` works as well as before the command
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return ap


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import QUICK, DemoGrid, run_demo

    return run_demo(QUICK if args.quick else DemoGrid(), Path(args.work), Path(args.checks), Path(args.reports),
                    device=args.device, quiet=args.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status of one command (docs/input.md): 0 ok, 1 a claim failed, 2 bad input or environment,
    3 a bug, 130 interrupted; problems are one-line messages, tracebacks only with `--debug`."""
    args = parser().parse_args(argv)
    return run_guarded(lambda: args.func(args), debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
