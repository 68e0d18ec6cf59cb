"""Killing a real `lth-audit run` in the middle, for the resume tests of both executors."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from lth_audit.store import RecordStore

ROOT = Path(__file__).resolve().parents[1]


def sigkill_after_first_record(cmd: list[str], out: Path, timeout: float) -> list[str]:
    """Start `cmd`, SIGKILL it once `out` holds a record, return the store's lines at that moment."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and len(RecordStore(out).load()) >= 1:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return out.read_text().splitlines()
