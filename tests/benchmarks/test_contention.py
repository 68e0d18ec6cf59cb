"""benchmarks/contention.py: what it times, the busy process, and the workers seam."""

from __future__ import annotations

import os
import time

import pytest

from lth_audit.demo import DemoGrid


def test_slices_of_the_demo_grid(script):
    c = script("contention")
    grid = DemoGrid()
    pre = c.slice_grid(grid, "pretrain")
    assert pre.settings == ("pretrain",) and pre.sparsities == () and pre.lrs == grid.lrs and pre.epochs == grid.epochs
    assert c.runs_of(pre) == len(grid.lrs) * len(grid.seeds)
    assert c.slice_grid(grid, "demo", epochs=3) == DemoGrid(epochs=3)
    with pytest.raises(ValueError, match="unknown slice"):
        c.slice_grid(grid, "lt-imp")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads CPU time from /proc")
def test_busy_process_spins_and_is_gone_after(script):
    c = script("contention")

    def cpu_seconds(pid: int) -> float:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    with c.busy_process("python") as proc:
        time.sleep(1.0)
        assert proc.poll() is None and cpu_seconds(proc.pid) > 0.3
    assert proc.poll() is not None


def test_ways_and_their_arguments(script, monkeypatch):
    c = script("contention")
    monkeypatch.setattr("lth_audit.backend.workers.usable_cores", lambda: 4)
    assert c.way_args("default") == [] and c.way_args("unpinned") == []
    assert c.way_args("one-process") == ["--workers", "1", "--threads", "4", "--max-group", "100000"]
    with pytest.raises(ValueError, match="unknown way"):
        c.way_args("threads")
    with pytest.raises(SystemExit):
        c.main(["--ways", "default,fast"])


def test_ratios_are_best_of_rounds(script, monkeypatch, capsys):
    c = script("contention")
    walls = iter([10.0, 16.0, 8.0, 30.0, 9.0, 14.0, 12.0, 28.0])   # quiet/contended, default then one process
    monkeypatch.setattr(c, "timed_run", lambda grid, args, launcher: next(walls))
    monkeypatch.setattr("lth_audit.backend.data.load_dataset", lambda name: None)
    assert c.main(["--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "contended/quiet (demo): 1.56×" in out                 # 14 / 9
    assert "contended/quiet (demo, one process): 3.50×" in out    # 28 / 8
    assert "quiet default/one-process (demo): 1.12×" in out       # 9 / 8


@pytest.mark.slow
def test_one_real_round(script, monkeypatch, capsys):
    c = script("contention")
    monkeypatch.setattr(c, "DemoGrid", lambda: DemoGrid(lrs=DemoGrid().lrs[:1], seeds=(0, 1)))
    # in-process (no worker start-up): this checks the benchmark's plumbing, not the executor
    assert c.main(["--epochs", "1", "--rounds", "1", "--ways", "default", "--run-arg=--workers", "--run-arg=1"]) == 0
    out = capsys.readouterr().out
    assert "load average before" in out and "runs·epochs/s" in out
    assert float(out.split("contended/quiet (demo): ")[1].split("×")[0]) > 0.2


def test_the_unpinned_launcher_is_lth_audit_with_pinning_replaced(script):
    import subprocess

    c = script("contention")
    done = subprocess.run([*c.UNPINNED, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("lth-audit ")
    assert "w.pinned_cores = lambda workers: None" in c.UNPINNED[-1]
