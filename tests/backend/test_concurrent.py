"""Several `lth-audit run` processes on one store (two terminals, two Slurm jobs): they share the runs, each run
trained once and recorded once; a process killed in the middle of writing a record leaves a store that loads
and that the next run repairs and completes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lth_audit.backend.experiment import load_experiment
from lth_audit.backend.scheduler import run_experiment
from lth_audit.cli import main
from lth_audit.records import load_records
from lth_audit.store import RecordStore

ROOT = Path(__file__).resolve().parents[2]
GRID = dict(lrs=[0.05, 0.1], epochs=4, settings=["pretrain", "lt-imp", "lt-omp", "sdt"])
N_GRID = 2 * (1 + 2 + 1 + 1)   # per lr: pretrain, IMP rounds 1-2 (s = 0.2, 0.36), lt-omp, sdt

# `lth-audit` in a child process that imports everything, says "ready", and starts when the gate file appears
GATED = textwrap.dedent("""
    import os, sys, time
    from lth_audit.cli import main
    import lth_audit.backend.scheduler, lth_audit.backend.data, torch
    gate = sys.argv[1]
    print("ready", flush=True)
    while not os.path.exists(gate):
        time.sleep(0.005)
    sys.exit(main(sys.argv[2:]))
""")

# `lth-audit` in a child process whose second record write stops half way and hangs (to be SIGKILLed there)
TEARS = textwrap.dedent("""
    import os, sys, time
    real, records = os.write, []
    def write(fd, data):
        if bytes(data[:10]).startswith(b'{"schema"'):
            records.append(fd)
            if len(records) == 2:
                n = real(fd, bytes(data[: len(data) // 2]))
                print("torn", flush=True)
                time.sleep(300)
                return n
        return real(fd, data)
    os.write = write
    from lth_audit.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _trained(stdout: str) -> tuple[int, int]:
    """(trained, trained by another process) from a closing line."""
    m = re.search(r"trained (\d+) runs, \d+ already done(?:, (\d+) trained by another process)?", stdout)
    assert m, stdout
    return int(m.group(1)), int(m.group(2) or 0)


@pytest.mark.slow
def test_two_processes_on_one_experiment_give_the_records_of_one_run(tmp_path, write_exp, mnist1d):
    path = write_exp(tmp_path, **GRID)
    gate = tmp_path / "go"
    cmd = [sys.executable, "-c", GATED, str(gate), "run", str(path), "--quiet", "--device", "cpu"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    gate.touch()                                          # both start at once
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]

    recs = load_records([tmp_path / "tiny.jsonl"]).raise_on_problems()
    ids = [r.run_id for r in recs]
    assert len(ids) == len(set(ids)) == N_GRID            # every run recorded once
    trained = [_trained(out) for out, _ in outs]
    assert sum(t for t, _ in trained) == N_GRID           # ... and trained once: the runs were shared
    assert all(t >= 1 for t, _ in trained)                # both did some of the work
    assert all("trained again" not in out and "also trained" not in out for out, _ in outs)

    # the same records as one process alone (bit-identical accuracies on the CPU)
    alone = tmp_path / "alone"
    alone.mkdir()
    run_experiment(load_experiment(write_exp(alone, **GRID)), device="cpu", quiet=True)
    ref = {r.run_id: (r.top1, r.best_top1, r.r_p) for r in load_records([alone / "tiny.jsonl"]).records}
    assert {r.run_id: (r.top1, r.best_top1, r.r_p) for r in recs} == ref


@pytest.mark.slow
def test_sigkill_while_a_record_is_written_leaves_a_store_that_loads(tmp_path, write_exp, capsys, mnist1d):
    path = write_exp(tmp_path, **GRID)
    store = tmp_path / "tiny.jsonl"
    child = subprocess.Popen([sys.executable, "-c", TEARS, "run", str(path), "--quiet", "--device", "cpu"], cwd=ROOT,
                             env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while child.stdout.readline().strip() != "torn":
            assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
    finally:
        child.kill()                                     # SIGKILL, half a record written, holding the lock
        child.wait()
    assert not store.read_bytes().endswith(b"\n")

    loaded = load_records([store])                       # the audit side: the good line, the torn one named
    assert len(loaded.records) == 1
    (problem,) = loaded.problems
    assert problem.line == 2 and "incomplete last line" in problem.reason

    with pytest.warns(RuntimeWarning, match="incomplete"):
        assert len(RecordStore(store).load()) == 1     # the backend's read repairs it, as a writer would
    assert (tmp_path / "tiny.jsonl.torn").read_bytes().endswith(b"\n")

    assert main(["run", str(path), "--quiet", "--device", "cpu"]) == 0   # and the next run completes
    assert f"trained {N_GRID - 1} runs, 1 already done" in capsys.readouterr().out
    ids = [r.run_id for r in load_records([store]).raise_on_problems()]
    assert len(ids) == len(set(ids)) == N_GRID
