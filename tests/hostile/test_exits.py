"""One place maps exceptions to exit statuses: one-line messages for input and environment problems (2),
Ctrl-C (130) and a full disk, each saying what was kept; a traceback only with --debug; a bug says so (3)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lth_audit import cli
from lth_audit.cli import main
from lth_audit.records import load_records
from lth_audit.store import RecordStore

from .cases import EXPERIMENT, ROOT, jackpot

GRID = EXPERIMENT.replace("lrs: [0.1]", "lrs: [0.05, 0.1, 0.2]").replace("seeds: [0]", "seeds: [0, 1]")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_input_errors_are_one_line_each_and_debug_adds_the_traceback(tmp_path, capsys):
    claim, _ = jackpot(tmp_path)
    claim.write_text(claim.read_text().replace("expect: jackpot", "expect: jackpot\n    expect: none"))
    assert main(["audit", str(claim)]) == 2
    err = capsys.readouterr().err
    assert "duplicate key 'expect'" in err and "Traceback" not in err
    assert main(["plan", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.yaml'}: cannot read experiment file: " \
                                      "No such file or directory\n"
    for argv in (["--debug", "plan", str(tmp_path / "missing.yaml")], ["plan", "--debug", str(tmp_path / "m.yaml")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: ")


def test_a_bug_shows_its_traceback_and_says_it_is_a_bug(tmp_path, capsys, monkeypatch):
    def broken(args):
        return 1 / 0

    monkeypatch.setattr(cli, "_cmd_validate", broken)
    assert main(["validate", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "a bug in lth-audit (not in your input)" in err


@pytest.mark.slow
def test_a_full_disk_while_appending_a_record_keeps_the_records_already_there(tmp_path, capsys, monkeypatch):
    (tmp_path / "e.yaml").write_text(GRID)
    real = RecordStore.append
    calls = []

    def append(self, records):
        calls.append(records)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, records)

    monkeypatch.setattr(RecordStore, "append", append)
    assert main(["run", str(tmp_path / "e.yaml"), "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: disk full (No space left on device): free some space")
    assert f"the records already in {tmp_path / 'e.jsonl'} are kept" in err
    assert len(load_records([tmp_path / "e.jsonl"]).raise_on_problems()) == 1


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs `unshare -rm` to mount a small tmpfs (a real full disk)")
def test_a_real_full_disk_while_writing_a_checkpoint(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    (tmp_path / "e.yaml").write_text(GRID.replace("out: e.jsonl", f"out: {disk}/e.jsonl"))
    script = f"mount -t tmpfs -o size=16k tmpfs {disk} && exec {sys.executable} -m lth_audit.cli run " \
             f"{tmp_path / 'e.yaml'} --quiet --device cpu"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: disk full writing '{disk}/e.jsonl.ckpt/")
    assert "(No space left on device): free some space and run again; the records already in" in proc.stderr


@pytest.mark.slow
def test_ctrl_c_exits_130_saying_what_was_kept(tmp_path):
    (tmp_path / "e.yaml").write_text(GRID)
    store = tmp_path / "e.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "lth_audit.cli", "run", str(tmp_path / "e.yaml"), "--quiet",
                             "--device", "cpu"], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (store.exists() and store.read_bytes().count(b"\n") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err == f"interrupted (Ctrl-C); the records already in {store} are kept, the run(s) in flight are " \
                  "lost; the same command resumes where they stopped\n"
    kept = load_records([store]).raise_on_problems()
    assert 1 <= len(kept) < 12


def test_main_maps_keyboard_interrupt_without_a_store(tmp_path, capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_validate", interrupted)
    assert main(["validate", str(Path(tmp_path))]) == 130
    assert capsys.readouterr().err == "interrupted (Ctrl-C)\n"
