"""Each row of issue 16's table (cases.py): exit status, a message naming file, line and field, no
traceback. Rows that used to hang run in a process of their own under a generous timeout."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lth_audit.cli import main

from .cases import ROOT, ROWS, Row

HANG_GUARD_S = 60  # a guard against a hang, not a speed target (benchmarks/hostile_inputs.py measures)


def run_row(row: Row, folder, capsys) -> tuple[int, str]:
    argv = row.build(folder)
    if row.hangs:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, "-m", "lth_audit.cli", *argv], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=HANG_GUARD_S)
        return proc.returncode, proc.stdout + proc.stderr
    status = main(argv)
    out = capsys.readouterr()
    return status, out.out + out.err


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_row(row: Row, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, text = run_row(row, tmp_path, capsys)
    assert status == row.status, text
    for fragment in row.expect:
        assert fragment in text, text
    assert "Traceback" not in text
    assert len(text) < 20_000  # no expanded alias, no wall of repeated errors
