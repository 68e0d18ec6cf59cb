"""Wall time and peak memory of `lth-audit` on each malformed or hostile input (a measurement, not a test).

    python benchmarks/hostile_inputs.py [--only ID ...] [--stores 20000]

Each row of tests/hostile/cases.py (issue 16's table and the loader's own cases) is written into a fresh
temporary folder and run as `python -m lth_audit.cli ...` in a process of its own; the table shows the
exit status, the wall time, the peak resident memory of that process (from wait4) and the first line
of its message. `--stores N` adds the "claim file whose glob matches N stores" row at N (the tests use
10,001 to stay quick). Rows that import torch (`plan` on a file that gets past YAML and types) pay its
start-up (seconds, several hundred MB): that is torch, not the input.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hostile.cases import ROWS, Row, _many_stores  # noqa: E402


def measure(row: Row) -> tuple[int, float, float, str]:
    """(exit status, wall s, peak RSS MB, first message line) of one row in its own process."""
    with tempfile.TemporaryDirectory() as d:
        argv = row.build(Path(d))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        out = Path(d) / "_out.txt"
        with open(out, "w") as f:
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "lth_audit.cli", *argv], cwd=d, env=env, stdout=f,
                                    stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        lines = [line for line in out.read_text(errors="replace").splitlines() if line.strip()]
        named = [line for line in lines if line.startswith(("error:", "interrupted", d, "/"))]
        first = (named or lines[-1:] or [""])[0]
        return proc.returncode, wall, usage.ru_maxrss / 1024, first.replace(d, "{dir}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="row ids (default: all)")
    ap.add_argument("--stores", type=int, default=20_000, help="stores matched by one glob (0: skip that row)")
    args = ap.parse_args()
    rows = [r for r in ROWS if not args.only or r.id in args.only]
    if args.stores:
        rows.append(Row(f"glob-matches-{args.stores}-stores", _many_stores(args.stores, "--max-files",
                                                                           str(args.stores)), (), status=0))
    print(f"{'row':<36} {'exit':>4} {'wall s':>7} {'peak MB':>8}  message")
    for row in rows:
        status, wall, mb, first = measure(row)
        flag = "" if status == row.status else f" (expected {row.status})"
        print(f"{row.id:<36} {status:>4} {wall:>7.2f} {mb:>8.0f}  {first[:150]}{flag}", flush=True)


if __name__ == "__main__":
    main()
