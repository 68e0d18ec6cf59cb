"""`lth-audit`: a thin face over the audit engine (and, lazily, the training backend)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .audit import ClaimResult, audit_file
from .backend.commands import register as register_backend
from .claims import find_claim_files, is_claim_file, load_claim_file
from .records import InputError, Problem, load_records
from .thresholds import ThresholdOverrides

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def add_threshold_options(add) -> None:
    """The threshold overrides, shared by the CLI and the pytest plugin (`add` is add_argument/addoption)."""
    for name, kind, text in (("similar", float, "pp for ④ ⑤"), ("gap", float, "pp for ② ③"),
                             ("sufficient-epochs", int, "epochs for ①"), ("min-sparsity", float, "for ①"),
                             ("band-floor", float, "pp, smallest boundary half-width"),
                             ("band-se", float, "boundary half-width in standard errors")):
        add(f"--{name}", dest=f"lth_{name.replace('-', '_')}", type=kind, default=None,
            help=f"override the {name} threshold ({text}) of every claim")


def overrides_from(ns: object) -> ThresholdOverrides:
    keys = ("similar", "gap", "sufficient_epochs", "min_sparsity", "band_floor", "band_se")
    return ThresholdOverrides(**{k: getattr(ns, f"lth_{k}", None) for k in keys})


def run_audit(paths: Sequence[str], overrides: ThresholdOverrides | None = None
              ) -> tuple[list[ClaimResult], list[Problem]]:
    """Audit every claim file under `paths`; bad files are returned as problems, the rest still audited."""
    results: list[ClaimResult] = []
    problems: list[Problem] = []
    files = find_claim_files(paths)
    for f in files:
        if not f.exists():
            problems.append(Problem(str(f), None, None, "no such file or folder"))
            continue
        try:
            results.extend(audit_file(load_claim_file(f, overrides)))
        except InputError as exc:
            problems.extend(exc.problems)
    if not files:
        problems.append(Problem(", ".join(paths), None, None, "no claim file (*.lth.yaml) found"))
    return results, problems


def _cmd_audit(args: argparse.Namespace) -> int:
    from .report.json_report import write_json
    from .report.table import explain, table

    results, problems = run_audit(args.paths, overrides_from(args))
    if results:
        print(table(results))
        for r in results:
            if r.outcome != "passed":
                print()
                print(explain(r))
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if args.json:
        write_json(args.json, results, [str(p) for p in problems])
        print(f"\nJSON report: {args.json}")
    if args.html:
        from .report.html import write_html

        write_html(args.html, results, [str(p) for p in problems])
        print(f"HTML report: {args.html}")
    counts = {o: sum(r.outcome == o for r in results) for o in ("passed", "boundary", "failed")}
    print(f"\n{len(results)} claims: {counts['passed']} passed, {counts['boundary']} boundary, "
          f"{counts['failed']} failed" + (f", {len(problems)} input problems" if problems else ""))
    if problems:
        return EXIT_BAD_INPUT
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    problems: list[Problem] = []
    n_records = n_claims = 0
    for p in map(Path, args.paths):
        if not p.exists():
            problems.append(Problem(str(p), None, None, "no such file or folder"))
            continue
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            if is_claim_file(f):
                try:
                    n_claims += len(load_claim_file(f).claims)
                except InputError as exc:
                    problems.extend(exc.problems)
            elif f.suffix == ".jsonl":
                loaded = load_records([f])
                n_records += len(loaded.records)
                problems.extend(loaded.problems)
    for prob in problems:
        print(prob)
    print(f"{n_records} good records, {n_claims} claims, {len(problems)} problems")
    return EXIT_BAD_INPUT if problems else EXIT_OK


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lth-audit", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="audit claim files (or folders of them) and print the verdicts")
    a.add_argument("paths", nargs="+", help="*.lth.yaml files or folders")
    a.add_argument("--json", metavar="FILE", help="write the lth-audit.report/1 JSON here")
    a.add_argument("--html", metavar="FILE", help="write the self-contained HTML report here")
    add_threshold_options(a.add_argument)
    a.set_defaults(func=_cmd_audit)
    v = sub.add_parser("validate", help="check record stores (*.jsonl) and claim files, listing every problem")
    v.add_argument("paths", nargs="+", help="files or folders")
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
    return ap


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import QUICK, DemoGrid, run_demo

    return run_demo(QUICK if args.quick else DemoGrid(), Path(args.work), Path(args.checks), Path(args.reports),
                    device=args.device, quiet=args.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
