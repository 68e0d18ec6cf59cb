"""`lth-audit`: a thin face over the audit engine (and, lazily, the training backend)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .analysis.commands import register as register_analysis
from .audit import audit_file
from .backend.commands import register as register_backend
from .backend.commands import at_least_one, requires_train
from .claims import CLAIM_SUFFIXES, ClaimFile, is_claim_file, load_claim_file, merged_landscapes, merged_records
from .conditions import PROFILES
from .exitcodes import EXIT_BAD_INPUT, EXIT_BUG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CommandError, run_guarded
from .inputfiles import Unreadable, walk_files
from .options import add_limit_options, add_threshold_options, limits_from, overrides_from
from .records import InputError, Problem, atomic_write_text, load_records
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


def _exit_codes(*codes: tuple[int, str]) -> str:
    return "exit status:\n" + "\n".join(f"  {code:<4}{text}" for code, text in codes)


AUDIT_EXITS = _exit_codes((EXIT_OK, "every claim passed or was boundary"),
                          (EXIT_FAILED, "a claim failed (the evidence contradicts it)"),
                          (EXIT_BAD_INPUT, "bad input (a claim file, a record store, an option) or environment"),
                          (EXIT_BUG, "a bug in lth-audit (with its traceback)"),
                          (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"))
INPUT_EXITS = _exit_codes((EXIT_OK, "done, no problem found"),
                          (EXIT_BAD_INPUT, "bad input: every problem is listed (file, line, field, reason)"),
                          (EXIT_BUG, "a bug in lth-audit (with its traceback)"),
                          (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"))


def _command(sub, name: str, summary: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=textwrap.fill(description, 88), epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lth-audit", description=__doc__)
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    ap.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    a = _command(sub, "audit", "audit claim files (or folders of them) and print the verdicts",
                 "Audit every claim of the claim files (*.lth.yaml) named or found under the folders: a table of "
                 "verdicts and outcomes, then, for each claim that did not pass, its witness, conditions, margins "
                 "and missing runs (SPEC §2, §4).", AUDIT_EXITS)
    a.add_argument("paths", nargs="+", help="*.lth.yaml files or folders")
    a.add_argument("--json", metavar="FILE", help="write the lth-audit.report/1 JSON here")
    a.add_argument("--html", metavar="FILE", help="write the self-contained HTML report here")
    add_threshold_options(a.add_argument)
    add_limit_options(a.add_argument)
    a.set_defaults(func=_cmd_audit)
    v = _command(sub, "validate", "check record stores (*.jsonl) and claim files, listing every problem",
                 "Load every record store (*.jsonl) and claim file named or found under the folders and list every "
                 "problem at once: file, line, field and reason.", INPUT_EXITS)
    v.add_argument("paths", nargs="+", help="files or folders")
    add_limit_options(v.add_argument)
    v.set_defaults(func=_cmd_validate)
    c = _command(sub, "claims", "write a claim-file scaffold: one claim per ticket found in record stores",
                 "Write a claim file naming RECORDS with one claim per ticket in them: every (arch, dataset, "
                 "ticket setting, sparsity) the profile judges. Each claim's `expect` is left as null for you to "
                 "state (the file does not load until you do), or, with --expect-current, set to what the records "
                 "show today. Data sets outside SPEC §2's table get a commented thresholds block to fill in.",
                 INPUT_EXITS)
    c.add_argument("records", nargs="+", metavar="RECORDS", help="record stores (*.jsonl)")
    c.add_argument("-o", "--out", required=True, metavar="FILE", help="the claim file to write (*.lth.yaml)")
    c.add_argument("--profile", default="rigorous", choices=sorted(PROFILES),
                   help="rigorous and original judge lt-* tickets, rewinding wr-* tickets (default: rigorous)")
    c.add_argument("--metric", default="top1", choices=["top1", "best_top1"])
    c.add_argument("--expect-current", action="store_true", help="state today's verdicts as the claims")
    c.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_threshold_options(c.add_argument)
    c.set_defaults(func=_cmd_claims)
    i = _command(sub, "import", "turn another tool's output tree into run records",
                 "Read the output tree of another lottery-ticket tool and append one run record per finished "
                 "network to FILE (docs/own-runs.md).", INPUT_EXITS)
    tools = i.add_subparsers(dest="tool", required=True, metavar="TOOL")
    o = _command(tools, "openlth", "OpenLTH's data root, or one lottery_<hash> folder",
                 "Import OpenLTH (facebookresearch/open_lth) lottery experiments: level 0 -> pretrain, level k -> "
                 "lt-imp (wr-imp with --rewinding_steps), randomly_reinitialize branches -> rr-imp, "
                 "randomly_prune branches kept in the meta of their level's record (or rp-imp records with "
                 "--randomly-prune-as rp-imp). Records already in FILE are "
                 "left as they are; nothing is written when a problem is found.", INPUT_EXITS)
    o.add_argument("dir", metavar="DIR", help="OpenLTH's data root (e.g. ~/open_lth_data) or a lottery_<hash> folder")
    o.add_argument("-o", "--out", required=True, metavar="FILE", help="record store to append to (*.jsonl)")
    o.add_argument("--train-size", action="append", default=[], metavar="DATASET=N",
                   help="training-set size of a data set OpenLTH does not ship (for iterations per epoch)")
    o.add_argument("--randomly-prune-as", choices=["meta", "rp-imp"], default="meta",
                   help="rp-imp: state that the randomly_prune branches used OpenLTH's default strategy `layerwise` "
                        "(OpenLTH does not write it down) and record them as rp-imp (SPEC §6); branches of a "
                        "rewinding experiment start at θt, not θ0, and stay in meta")
    o.set_defaults(func=_cmd_import_openlth)
    d = _command(sub, "demo", "train the MNIST-1D sanity-check grid, write its claims, audit, report",
                 "Train the paper's sanity checks on MNIST-1D on this machine (pretraining, IMP, OMP, random "
                 "reinitialisation, small-dense), write the claims the run found beside its records, audit them, "
                 "write reports/demo.html and compare with the copy shipped in checks/demo (docs/demo.md). Writes "
                 "nothing into checks/. Needs the [train] extra.", AUDIT_EXITS)
    d.add_argument("--quick", action="store_true",
                   help="a smoke test of the pipeline for CI (2 lrs, 2 seeds, 3 epochs, s=0.59), not an audit")
    d.add_argument("--work", default=None,
                   help="experiment file, records, checkpoints and claim file (default: results/demo, with "
                        "--quick results/demo-quick)")
    d.add_argument("--shipped", default="checks/demo",
                   help="the shipped claims and records to compare the run with (read, never written)")
    d.add_argument("--reports", default="reports", help="where demo.html and demo.json go")
    d.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    d.add_argument("--workers", type=int, default=None,
                   help="worker processes on the CPU (default: the usable cores); the verdicts do not depend on it")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=requires_train(_cmd_demo))
    register_backend(sub)
    register_analysis(sub)
    for command in sub.choices.values():  # `lth-audit audit --debug ...` works as well as before the command
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return ap


def _cmd_claims(args: argparse.Namespace) -> int:
    from .scaffold import scaffold

    out = Path(args.out)
    if out.exists() and not args.force:
        raise CommandError(f"{out} exists (give --force to overwrite it)")
    records = load_records(args.records).raise_on_problems()
    result = scaffold(records, [Path(r) for r in args.records], out, args.profile, args.metric,
                      overrides_from(args), args.expect_current)   # MissingThresholds: exit 2, what to give
    for setting, n in sorted(result.left_out.items()):
        print(f"note: {n} {setting} ticket(s) left out: profile {args.profile} does not judge {setting} "
              f"(rewinding judges wr-*, rigorous and original lt-*)", file=sys.stderr)
    if not result.tickets:
        raise CommandError(f"no ticket for profile {args.profile} in {', '.join(args.records)}")
    atomic_write_text(out, result.text)
    todo = "" if args.expect_current else "; state each `expect:` before auditing"
    print(f"{out}: {len(result.tickets)} claims{todo}")
    return EXIT_OK


def _cmd_import_openlth(args: argparse.Namespace) -> int:
    from .importers.openlth import import_openlth
    from .store import RecordWriter

    sizes: dict[str, int] = {}
    for item in args.train_size:
        name, _, n = item.partition("=")
        if not name or not n.isdigit() or int(n) < 1:
            raise CommandError(f"--train-size {item!r}: expected DATASET=N with N a positive whole number")
        sizes[name] = int(n)
    result = import_openlth(args.dir, sizes, args.randomly_prune_as)
    for why, folders in result.left_out.items():
        print(f"note: not imported, {why}: {len(folders)} folder(s), e.g. {folders[0]}", file=sys.stderr)
    out = Path(args.out)
    existing = load_records([out]) if out.exists() else None
    problems = list(result.problems) + (existing.problems if existing else [])
    old = {r.run_id: r for r in existing.records} if existing else {}
    for r in result.records:
        if r.run_id in old and old[r.run_id].model_dump(exclude={"meta"}) != r.model_dump(exclude={"meta"}):
            problems.append(Problem(str(out), None, "run_id", f"{r.run_id} is already recorded with other values"))
    if problems:
        print(f"nothing written to {out}: {len(problems)} problems", file=sys.stderr)
        raise InputError(problems)
    new = [r for r in result.records if r.run_id not in old]
    RecordWriter(out, check_percent=False).write_all(new)  # accuracies were converted from fractions here
    counts = {s: sum(r.setting.value == s for r in new) for s in dict.fromkeys(r.setting.value for r in new)}
    what = ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"
    print(f"{out}: {len(new)} records imported ({what}), {len(result.records) - len(new)} already there, "
          f"{sum(map(len, result.left_out.values()))} folders not imported")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .backend.workers import WorkersOnCuda
    from .demo import QUICK, DemoGrid, run_demo

    at_least_one(args, "workers")
    work = Path(args.work or ("results/demo-quick" if args.quick else "results/demo"))
    try:
        return run_demo(QUICK if args.quick else DemoGrid(), work, Path(args.shipped), Path(args.reports),
                        device=args.device, quiet=args.quiet, smoke=args.quick, workers=args.workers)
    except WorkersOnCuda as exc:
        raise CommandError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status of one command (docs/input.md): 0 ok, 1 a claim failed, 2 bad input or environment,
    3 a bug, 130 interrupted; problems are one-line messages, tracebacks only with `--debug`."""
    args = parser().parse_args(argv)
    return run_guarded(lambda: args.func(args), debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
