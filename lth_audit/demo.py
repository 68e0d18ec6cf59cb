"""`lth-audit demo`: the paper's whole sanity check on real MNIST-1D, trained on this machine, audited.

1. Writes an experiment file for MNIST-1D into its work folder (`results/demo/`) and runs it there (batched
   training; resumes when re-run).
2. Writes the claim file `<work>/<name>.lth.yaml` stating what the run found, beside the run's records.
3. Audits the claims, writes `reports/demo.html` and `reports/demo.json`, prints the Table 3 summary, and
   compares the run with the copy shipped in `checks/demo/` (which `pytest checks/` audits): same records,
   same verdicts, or what differs. It never writes into `checks/`: the clone stays as it was.

`--quick` (3 epochs) works in `results/demo-quick/` and says that it is a smoke test of the pipeline, not an
audit.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from .scaffold import EXPECT

TICKET_SPARSITIES = (0.832, 0.866, 0.914)
"""Where the demo judges tickets: sparsities whose verdicts are decided beyond the seed noise (docs/demo.md).
At 0.59 this MLP's tickets sit on ④'s cut-off, and their verdicts change with the float order."""


@dataclass(frozen=True)
class DemoGrid:
    """The experiment the demo trains: every field lands in the experiment file as written."""

    name: str = "mnist1d-demo"
    arch: str = "mlp"
    dataset: str = "mnist1d-10k"   # 10,000 test examples: a binomial SE of 0.45 pp at 71 % (1,000: 1.4 pp)
    recipe: str = "mnist1d"
    epochs: int = 40
    batch_size: int = 100
    lrs: tuple[float, ...] = (0.05, 0.1, 0.2)  # 0.2 is the best pretraining lr of this range (docs/demo.md)
    seeds: tuple[int, ...] = (0, 1, 2, 3)      # 12 (lr, seed) pairs a stage: two units of six for two workers
    settings: tuple[str, ...] = ("pretrain", "lt-imp", "rr-imp", "lt-omp", "rr-omp", "sdt")
    sparsities: tuple[float, ...] = TICKET_SPARSITIES
    thresholds: dict[str, float] = field(default_factory=lambda: {"similar": 1.0, "gap": 0.5})

    def experiment(self, out: str) -> dict:
        exp = {k: v for k, v in asdict(self).items() if k != "thresholds"}
        exp.update(lrs=list(self.lrs), seeds=list(self.seeds), settings=list(self.settings),
                   sparsities=list(self.sparsities), out=out)
        return exp


QUICK = DemoGrid(name="mnist1d-quick", dataset="mnist1d", epochs=3, lrs=(0.02, 0.1), seeds=(0, 1), sparsities=(0.59,))
"""A tiny grid for CI: the same path end to end in well under a minute."""


def _results(records) -> list[dict]:
    """What a run found, without its provenance (`meta`: wall time, device), for comparing two stores."""
    return sorted((r.model_dump(mode="json", exclude={"meta"}) for r in records), key=lambda d: d["run_id"])


def claim_file(grid: DemoGrid, records: str, verdicts: dict[tuple[str, float], str]) -> str:
    """The claim file stating what the run found: each ticket expects the prize it was graded."""
    claims = [{"id": f"{grid.name}-{setting}-s{s:g}", "arch": grid.arch, "dataset": grid.dataset,
               "setting": setting, "sparsity": s, "expect": EXPECT[verdicts[(setting, s)]]}
              for (setting, s) in sorted(verdicts)]
    body = {"records": [records], "profile": "rigorous", "metric": "top1",
            "thresholds": {**grid.thresholds, "sufficient_epochs": grid.epochs}, "claims": claims}
    head = (f"# Written by `lth-audit demo` from its own run ({grid.arch} on {grid.dataset}, {grid.epochs} epochs,\n"
            f"# lrs {list(grid.lrs)}, seeds {list(grid.seeds)}). MNIST-1D is not in SPEC §2's table: the\n"
            f"# thresholds below are ours (similar 1.0 pp as for CIFAR-100, gap 0.5 pp, T = the demo's epochs).\n")
    return head + yaml.safe_dump(body, sort_keys=False)


TICKETS = ("lt-imp", "lt-omp")


def audit_tickets(grid: DemoGrid, records) -> dict:
    """{(setting, sparsity): ClaimResult} of each LT ticket of `grid` in `records`, judged by the demo's
    thresholds with the grid's epochs as sufficient (what the demo writes into its claim file)."""
    from .audit import audit_claim
    from .claims import Claim
    from .thresholds import ThresholdOverrides, resolve

    th = resolve(grid.dataset, ThresholdOverrides(**grid.thresholds, sufficient_epochs=grid.epochs))
    return {(setting, s): audit_claim(Claim(id=f"{grid.name}-{setting}-s{s:g}", arch=grid.arch, dataset=grid.dataset,
                                            setting=setting, sparsity=s, expect="none"), records, th)
            for setting in TICKETS for s in grid.sparsities}


def run_demo(grid: DemoGrid = DemoGrid(), work: Path = Path("results/demo"), shipped: Path | None = Path("checks/demo"),
             reports: Path = Path("reports"), device: str = "auto", quiet: bool = False, smoke: bool = False,
             workers: int | None = None) -> int:
    """Train, write claims, audit, report, compare with the shipped copy in `shipped` (None: no comparison).
    `smoke`: a grid too short to audit anything (`--quick`): say so instead of comparing. `workers`: processes
    on the CPU (None: the usable cores). Returns the audit's exit status."""
    from .audit import audit_file
    from .backend.experiment import load_experiment
    from .backend.scheduler import run_experiment
    from .claims import load_claim_file
    from .exitcodes import EXIT_FAILED, EXIT_OK
    from .records import atomic_write_text, load_records
    from .report.html import write_html
    from .report.json_report import write_json
    from .report.summary import format_table3, table3

    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    exp_path = work / f"{grid.name}.yaml"
    atomic_write_text(exp_path, yaml.safe_dump(grid.experiment(f"{grid.name}.jsonl"), sort_keys=False))
    summary = run_experiment(load_experiment(exp_path), device=device, quiet=quiet, batched=True, workers=workers)
    print(f"trained {len(summary.trained)} networks ({summary.skipped} already done, "
          f"{len(summary.diverged)} diverged) in {summary.wall_s:.1f} s")

    store = work / f"{grid.name}.jsonl"
    records = load_records([store]).raise_on_problems()
    verdicts = {key: result.verdict for key, result in audit_tickets(grid, records).items()}
    claims_path = work / f"{grid.name}.lth.yaml"
    atomic_write_text(claims_path, claim_file(grid, store.name, verdicts))

    results = audit_file(load_claim_file(claims_path))
    reports.mkdir(parents=True, exist_ok=True)
    html, js = reports / "demo.html", reports / "demo.json"
    write_html(html, results, [], records=records)
    write_json(js, results)
    print()
    print(format_table3(table3(results)))
    print()
    for r in results:
        print(f"  {r.id:<32} verdict {r.verdict:<20} witness lr {r.witness_lr}")
    print(f"\nclaims: {claims_path}\nreport: {html.resolve()}\njson:   {js}")
    if smoke:
        print(f"\nThis was a smoke test: {grid.epochs} epochs check that training, claims, audit and report work "
              f"end to end. It is not an audit: networks trained {grid.epochs} epochs say nothing about lottery "
              f"tickets on MNIST-1D. `lth-audit demo` (without --quick) trains the real grid.")
    elif shipped is not None:
        print()
        print(compare_with_shipped(grid, records, verdicts, shipped, claims_path))
    print(f"demo wall time: {time.perf_counter() - t0:.1f} s")
    return EXIT_FAILED if any(r.outcome == "failed" for r in results) else EXIT_OK


def compare_with_shipped(grid: DemoGrid, records, verdicts: dict[tuple[str, float], str], shipped: Path,
                         claims_path: Path) -> str:
    """Words on how this run compares with the copy shipped in `shipped` (records and claims of the same name)."""
    from .claims import load_claim_file
    from .records import InputError, load_records

    store, claims = shipped / f"{grid.name}.jsonl", shipped / f"{grid.name}.lth.yaml"
    if not (store.exists() and claims.exists()):
        return f"no shipped copy to compare with ({store} and {claims} not both there)"
    try:
        theirs = load_records([store]).raise_on_problems()
        stated = {(c.setting.value, c.sparsity): str(c.expect) for c in load_claim_file(claims).claims}
    except InputError as exc:
        return f"the shipped copy in {shipped} does not load: {exc.problems[0]}"
    ours = {(setting, s): EXPECT[v] for (setting, s), v in verdicts.items()}
    mine, shipped_runs = ({d["run_id"]: d for d in _results(rs)} for rs in (records, theirs))
    other = sum(mine[k] != shipped_runs.get(k) for k in mine) + len(set(shipped_runs) - set(mine))
    differ = [f"{setting} s={s:g}: " + (f"shipped expects {stated[(setting, s)]}" if (setting, s) in stated
                                         else "the shipped copy has no claim on it") + f", this run found {v}"
              for (setting, s), v in sorted(ours.items()) if stated.get((setting, s)) != v]
    head = (f"compared with the shipped copy in {shipped}: "
            + ("identical records (all but provenance in `meta`)" if not other else
               f"the records differ ({other} of {len(set(mine) | set(shipped_runs))} runs not the same)"))
    if not differ:
        return f"{head}; the same {len(ours)} verdicts."
    return (f"{head}; {len(differ)} of {len(ours)} verdicts differ:\n" + "\n".join(f"  {d}" for d in differ)
            + f"\n(nothing in {shipped} was changed; to adopt this run: copy {claims_path.name} and "
            f"{grid.name}.jsonl from {claims_path.parent} into {shipped})")
