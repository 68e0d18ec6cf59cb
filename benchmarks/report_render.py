"""Render time and size of the HTML report for many synthetic claims (a measurement, not a test).

    python benchmarks/report_render.py [--claims 1000] [--tickets 100] [--workers W] [--out /tmp/bench.html]

Synthetic records: `--tickets` distinct tickets (arch × dataset × setting × sparsity, each with a
5-lr sweep, 3 seeds, pretrain/LT/RR/SDT), and `--claims` claims spread over them (claims on the same
ticket — e.g. the same ticket claimed by several papers or expects — share their plots). Prints the
audit time, the render time (wall), the file size, the number of distinct plots and whether they were
packed, and the CPU seconds of the render: in this process and spent drawing plots (all worker
processes), which unlike the wall time does not depend on what else the machine runs. With
`--tickets` equal to `--claims` every claim has its own plot (the worst case). `--workers 1` draws
in-process.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lth_audit.audit import audit_claim  # noqa: E402
from lth_audit.claims import Claim  # noqa: E402
from lth_audit.records import RunRecord  # noqa: E402
from lth_audit.report import plots  # noqa: E402
from lth_audit.report.html import render_html  # noqa: E402
from lth_audit.thresholds import resolve  # noqa: E402

LRS = (0.005, 0.01, 0.05, 0.1, 0.2)
SPARSITIES = (0.59, 0.832, 0.914, 0.945, 0.956)


def synthetic(n_claims: int, n_tickets: int, seed: int = 0):
    rng = random.Random(seed)
    tickets = []
    for t in range(n_tickets):
        arch = f"net{t // (len(SPARSITIES) * 2)}"
        sparsity = SPARSITIES[t % len(SPARSITIES)]
        setting = ("lt-imp", "lt-omp")[(t // len(SPARSITIES)) % 2]
        tickets.append((arch, "cifar10", setting, sparsity))
    records: dict[tuple, list[RunRecord]] = {}
    pretrain: dict[str, list[RunRecord]] = {}
    for arch, dataset, setting, s in tickets:
        method = setting.split("-")[1]
        if arch not in pretrain:
            pretrain[arch] = [RunRecord(run_id=f"{arch}-pre-{lr}-{k}", arch=arch, dataset=dataset, setting="pretrain",
                                        sparsity=0.0, lr=lr, epochs=160, seed=k,
                                        top1=91 + 1.2 * (lr > 0.02) + rng.gauss(0, 0.2))
                              for lr in LRS for k in range(3)]
        recs = list(pretrain[arch])
        for st, base in ((setting, 91.2), (f"rr-{method}", 90.4), ("sdt", 89.5)):
            recs += [RunRecord(run_id=f"{arch}-{st}-{s}-{lr}-{k}", arch=arch, dataset=dataset, setting=st,
                               sparsity=s, lr=lr, epochs=160, seed=k,
                               top1=base + rng.gauss(0, 0.6) - 0.5 * (lr > 0.05))
                     for lr in LRS for k in range(3)]
        records[(arch, dataset, setting, s)] = recs
    th = resolve("cifar10")
    results = []
    for i in range(n_claims):
        arch, dataset, setting, s = tickets[i % n_tickets]
        claim = Claim(id=f"claim-{i:04d}", arch=arch, dataset=dataset, setting=setting, sparsity=s,
                      expect=("jackpot", "secondary", "none")[i % 3])
        results.append(audit_claim(claim, records[(arch, dataset, setting, s)], th, file="bench.lth.yaml"))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=1000)
    ap.add_argument("--tickets", type=int, default=100)
    ap.add_argument("--out", default="/tmp/lth-report-bench.html")
    ap.add_argument("--workers", type=int, default=None, help="processes drawing the plots (default: the cores)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = synthetic(args.claims, args.tickets)
    t1 = time.perf_counter()
    cpu = time.process_time()
    html = render_html(results, workers=args.workers)
    cpu = time.process_time() - cpu
    t2 = time.perf_counter()
    Path(args.out).write_text(html, encoding="utf-8")
    distinct = len(set(re.findall(r'<use href="#((?:acc|rp)[0-9a-f]+)"', html)))
    packed = html.count("<template id=")
    print(f"claims {len(results)}, distinct tickets {args.tickets}, distinct plots {distinct}"
          f" ({f'packed in {packed} blocks' if packed else 'plain SVG'})")
    print(f"audit {t1 - t0:.2f} s, render {t2 - t1:.2f} s, size {len(html.encode()) / 1e6:.2f} MB -> {args.out}")
    print(f"render CPU: {cpu:.2f} s in this process + {plots.stats['cpu_s']:.2f} s drawing "
          f"({plots.stats['workers'] or 'no'} worker processes); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
