"""Contention: the demo's training timed on its own and beside one competing busy process.

    python benchmarks/contention.py [--slice pretrain|demo] [--epochs E] [--threads default,1,2]
                                    [--workers N] [--rounds 2] [--busy python|numpy]

Each timed call is a fresh `lth-audit run FILE --batched --quiet` (what `lth-audit demo` trains: the demo's
grid, `lth_audit.demo.DemoGrid`, batched) in a new temporary folder, so start-up, data loading and
training are all in the figure, as a user waits for them. `--slice pretrain` (default) is the grid's
first stage (every lr x seed of the demo, dense); `--slice demo` the whole grid.

Quiet and contended calls take turns, `--rounds` times, for each thread setting; each figure is the
best of its rounds (a shared machine's other work only ever slows a call down). A contended call runs
while one busy process (`--busy python`: a pure-Python loop; `numpy`: a loop of one-thread numpy
products) spins on its own, pinned to no core, started before the call and ended after it.

`--threads` lists the settings to compare: `default` (lth-audit's own choice) and thread counts passed
as `lth-audit run --threads N` (torch.set_num_threads). `--workers N` passes `--workers N` to
`lth-audit run` (the multi-process executor of issue 13; refused with a clear message while
`lth-audit run --help` does not list it). `--run-arg ARG` (repeatable) passes anything else.

Prints the load average before and after, every call's wall time, the quiet throughput (runs x epochs
per second) and, per setting, the line `contended/quiet (demo): R×` (the default setting) or
`contended/quiet (demo, --threads N): R×`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from lth_audit.demo import DemoGrid

BUSY = {"python": "while True:\n    pass\n",
        "numpy": ("import os\nos.environ['OMP_NUM_THREADS'] = os.environ['OPENBLAS_NUM_THREADS'] = "
                  "os.environ['MKL_NUM_THREADS'] = '1'\nimport numpy as np\na = np.random.rand(200, 200)\n"
                  "while True:\n    a = np.tanh(a @ a)\n")}
"""The competing process: a loop that keeps one core busy until it is killed."""


def slice_grid(grid: DemoGrid, part: str, epochs: int | None = None) -> DemoGrid:
    """The part of the demo grid to time: `pretrain` (its first stage) or `demo` (all of it); `epochs`
    shortens every run (default: the demo's)."""
    if part not in ("pretrain", "demo"):
        raise ValueError(f"unknown slice {part!r}; known: pretrain, demo")
    if part == "pretrain":
        grid = dataclasses.replace(grid, settings=("pretrain",), sparsities=())
    return dataclasses.replace(grid, epochs=epochs) if epochs else grid


def runs_of(grid: DemoGrid) -> int:
    """How many networks the grid trains (`lth-audit plan`'s count, without importing torch here)."""
    from lth_audit.backend.experiment import parse_experiment
    from lth_audit.backend.plan import make_plan

    text = yaml.safe_dump(grid.experiment("runs.jsonl"), sort_keys=False)
    return len(make_plan(parse_experiment(text)).runs)


@contextlib.contextmanager
def busy_process(kind: str = "python") -> Iterator[subprocess.Popen]:
    """One process that keeps a core busy for as long as the block runs (no affinity: the OS places it)."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY[kind]], stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.5)   # let it reach its loop before the timed call starts
        if proc.poll() is not None:
            raise RuntimeError(f"the busy process ({kind}) exited with status {proc.returncode}")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def cli_supports(option: str) -> bool:
    """Does `lth-audit run --help` list `option`?"""
    out = subprocess.run([sys.executable, "-m", "lth_audit.cli", "run", "--help"], capture_output=True, text=True)
    return option in out.stdout


def timed_run(grid: DemoGrid, args: Sequence[str]) -> float:
    """Wall seconds of one fresh `lth-audit run` of `grid` (new folder, nothing to resume) with `args`."""
    with tempfile.TemporaryDirectory(prefix="lth-contention-") as tmp:
        exp = Path(tmp) / f"{grid.name}.yaml"
        exp.write_text(yaml.safe_dump(grid.experiment(f"{grid.name}.jsonl"), sort_keys=False))
        cmd = [sys.executable, "-m", "lth_audit.cli", "run", str(exp), "--batched", "--quiet", *args]
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with status {done.returncode}:\n{done.stderr[-2000:]}")
    return wall


def thread_args(setting: str) -> list[str]:
    return [] if setting == "default" else ["--threads", setting]


def label(setting: str) -> str:
    return "demo" if setting == "default" else f"demo, --threads {setting}"


def measure(grid: DemoGrid, settings: Sequence[str], rounds: int, busy: str, extra: Sequence[str]
            ) -> dict[str, dict[str, list[float]]]:
    """Wall seconds of every call: {setting: {"quiet": [...], "contended": [...]}}, quiet and contended
    taking turns."""
    walls: dict[str, dict[str, list[float]]] = {s: {"quiet": [], "contended": []} for s in settings}
    for r in range(rounds):
        for s in settings:
            args = [*thread_args(s), *extra]
            walls[s]["quiet"].append(timed_run(grid, args))
            with busy_process(busy):
                walls[s]["contended"].append(timed_run(grid, args))
            print(f"  round {r + 1}, {label(s)}: quiet {walls[s]['quiet'][-1]:.1f} s, "
                  f"contended {walls[s]['contended'][-1]:.1f} s", flush=True)
    return walls


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slice", default="pretrain", choices=["pretrain", "demo"])
    ap.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the demo's)")
    ap.add_argument("--threads", default="default",
                    help="comma-separated settings to compare: default, or thread counts (e.g. default,1,2)")
    ap.add_argument("--workers", type=int, default=None, help="passed to `lth-audit run --workers N`")
    ap.add_argument("--run-arg", action="append", default=[], help="another argument for `lth-audit run`")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--busy", default="python", choices=sorted(BUSY))
    args = ap.parse_args(argv)
    settings = [s.strip() for s in args.threads.split(",") if s.strip()]
    bad = [s for s in settings if s != "default" and not (s.isdigit() and int(s) > 0)]
    if bad or not settings or args.rounds < 1:
        ap.error(f"--threads takes `default` and positive counts (got {args.threads!r}); --rounds >= 1")
    extra = list(args.run_arg)
    if args.workers is not None:
        if not cli_supports("--workers"):
            print("lth-audit run has no --workers option yet (issue 13, the worker executor): "
                  "leave --workers out", file=sys.stderr)
            return 2
        extra += ["--workers", str(args.workers)]

    grid = slice_grid(DemoGrid(), args.slice, args.epochs)
    from lth_audit.backend.data import load_dataset

    load_dataset(grid.dataset)   # generate and cache the data set now, not inside the first timed call
    n = runs_of(grid)
    print(f"load average before: {load()}  ({os.cpu_count()} CPUs)")
    print(f"{args.slice} slice of {grid.name}: {grid.arch} on {grid.dataset}, {n} runs x {grid.epochs} epochs, "
          f"`lth-audit run --batched --quiet {' '.join(extra)}`, busy process: {args.busy}", flush=True)
    walls = measure(grid, settings, args.rounds, args.busy, extra)
    print(f"load average after: {load()}")
    for s in settings:
        quiet, contended = min(walls[s]["quiet"]), min(walls[s]["contended"])
        print(f"{label(s)}: quiet {quiet:.1f} s ({n * grid.epochs / quiet:.1f} runs·epochs/s), "
              f"contended {contended:.1f} s (best of {args.rounds})")
    for s in settings:
        print(f"contended/quiet ({label(s)}): {min(walls[s]['contended']) / min(walls[s]['quiet']):.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
