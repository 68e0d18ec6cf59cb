"""Contention: the demo's training timed on its own and beside one competing busy process.

    python benchmarks/contention.py [--slice pretrain|demo] [--epochs E]
                                    [--ways default,unpinned,one-process] [--rounds 2]
                                    [--busy python|numpy] [--run-arg ARG ...]

Each timed call is a fresh `lth-audit run FILE --batched --quiet` (what `lth-audit demo` trains: the demo's
grid, `lth_audit.demo.DemoGrid`, batched) in a new temporary folder, so start-up, data loading and
training are all in the figure, as a user waits for them. `--slice pretrain` (default) is the grid's
first stage (every lr x seed of the demo, dense); `--slice demo` the whole grid.

Quiet and contended calls take turns, `--rounds` times, for each way; each figure is the best of its
rounds (a shared machine's other work only ever slows a call down). A contended call runs while one busy
process (`--busy python`: a pure-Python loop; `numpy`: a loop of one-thread numpy products) spins on its
own, pinned to no core, started before the call and ended after it.

`--ways` lists what to compare:
  default      `lth-audit run` as shipped: worker processes on the usable cores, one thread each, units of
               at most 8 runs, each worker pinned to its own core when they use every core (docs/backend.md)
  unpinned     the same with the workers left to the kernel's placement (`workers.pinned_cores` replaced by
               one that pins nothing, in the `lth-audit run` process)
  one-process  `--workers 1 --threads C --max-group 100000` with C the usable cores: one process using
               every core inside each matmul, whole stages as units (how lth-audit trained before workers)
`--run-arg ARG` (repeatable) passes anything else to every call.

Prints the load average before and after, every call's wall time, the quiet throughput (runs x epochs
per second), per way the line `contended/quiet (demo[, way]): R×`, and beside the default
`quiet default/<way> (demo): R×` (wall time ratio, below 1 when the default is faster).
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


CLI = [sys.executable, "-m", "lth_audit.cli"]
UNPINNED = [sys.executable, "-c", "import sys\nimport lth_audit.backend.workers as w\nfrom lth_audit.cli import main\n"
                                  "w.pinned_cores = lambda workers: None\nsys.exit(main(sys.argv[1:]))"]
"""`lth-audit` as installed, and the same with workers the kernel places (the cores are chosen in the parent)."""


def timed_run(grid: DemoGrid, args: Sequence[str], launcher: Sequence[str] = CLI) -> float:
    """Wall seconds of one fresh `lth-audit run` of `grid` (new folder, nothing to resume) with `args`."""
    with tempfile.TemporaryDirectory(prefix="lth-contention-") as tmp:
        exp = Path(tmp) / f"{grid.name}.yaml"
        exp.write_text(yaml.safe_dump(grid.experiment(f"{grid.name}.jsonl"), sort_keys=False))
        cmd = [*launcher, "run", str(exp), "--batched", "--quiet", *args]
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with status {done.returncode}:\n{done.stderr[-2000:]}")
    return wall


WAYS = ("default", "unpinned", "one-process")


def way_args(way: str) -> list[str]:
    """`lth-audit run` arguments of a way (module docstring)."""
    from lth_audit.backend.workers import usable_cores

    if way in ("default", "unpinned"):
        return []
    if way == "one-process":
        return ["--workers", "1", "--threads", str(usable_cores()), "--max-group", "100000"]
    raise ValueError(f"unknown way {way!r}; known: {', '.join(WAYS)}")


def label(way: str) -> str:
    return "demo" if way == "default" else f"demo, {way.replace('-', ' ')}"


def measure(grid: DemoGrid, ways: Sequence[str], rounds: int, busy: str, extra: Sequence[str]
            ) -> dict[str, dict[str, list[float]]]:
    """Wall seconds of every call: {way: {"quiet": [...], "contended": [...]}}, quiet and contended
    taking turns."""
    walls: dict[str, dict[str, list[float]]] = {s: {"quiet": [], "contended": []} for s in ways}
    for r in range(rounds):
        for s in ways:
            args, launcher = [*way_args(s), *extra], UNPINNED if s == "unpinned" else CLI
            walls[s]["quiet"].append(timed_run(grid, args, launcher))
            with busy_process(busy):
                walls[s]["contended"].append(timed_run(grid, args, launcher))
            print(f"  round {r + 1}, {label(s)}: quiet {walls[s]['quiet'][-1]:.1f} s, "
                  f"contended {walls[s]['contended'][-1]:.1f} s", flush=True)
    return walls


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slice", default="pretrain", choices=["pretrain", "demo"])
    ap.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the demo's)")
    ap.add_argument("--ways", default="default,one-process", help=f"comma-separated, of: {', '.join(WAYS)}")
    ap.add_argument("--run-arg", action="append", default=[], help="another argument for `lth-audit run`")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--busy", default="python", choices=sorted(BUSY))
    args = ap.parse_args(argv)
    ways = [s.strip() for s in args.ways.split(",") if s.strip()]
    if not ways or any(s not in WAYS for s in ways) or args.rounds < 1:
        ap.error(f"--ways takes {', '.join(WAYS)} (got {args.ways!r}); --rounds >= 1")
    extra = list(args.run_arg)

    grid = slice_grid(DemoGrid(), args.slice, args.epochs)
    from lth_audit.backend.data import load_dataset

    load_dataset(grid.dataset)   # generate and cache the data set now, not inside the first timed call
    n = runs_of(grid)
    print(f"load average before: {load()}  ({os.cpu_count()} CPUs)")
    print(f"{args.slice} slice of {grid.name}: {grid.arch} on {grid.dataset}, {n} runs x {grid.epochs} epochs, "
          f"`lth-audit run --batched --quiet {' '.join(extra)}`, busy process: {args.busy}", flush=True)
    walls = measure(grid, ways, args.rounds, args.busy, extra)
    print(f"load average after: {load()}")
    for s in ways:
        quiet, contended = min(walls[s]["quiet"]), min(walls[s]["contended"])
        print(f"{label(s)}: quiet {quiet:.1f} s ({n * grid.epochs / quiet:.1f} runs·epochs/s), "
              f"contended {contended:.1f} s (best of {args.rounds})")
    for s in ways:
        print(f"contended/quiet ({label(s)}): {min(walls[s]['contended']) / min(walls[s]['quiet']):.2f}×")
    for other in ("unpinned", "one-process"):
        if {"default", other} <= set(ways):
            ratio = min(walls["default"]["quiet"]) / min(walls[other]["quiet"])
            print(f"quiet default/{other} (demo): {ratio:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
