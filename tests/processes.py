"""Killing a real `lth-audit run` in the middle, for the resume tests of both executors."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from lth_audit.store import RecordStore

ROOT = Path(__file__).resolve().parents[1]


def children_of(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux /proc; empty elsewhere)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    """`pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def sigkill_after_first_record(cmd: list[str], out: Path, timeout: float, children_exit: bool = True) -> list[str]:
    """Start `cmd`, SIGKILL it once `out` holds a record, return the store's lines at that moment. With
    `children_exit`, the processes it started (its workers) must be gone within 10 s: no orphans."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and len(RecordStore(out).load()) >= 1:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    children = children_of(proc.pid) if children_exit else set()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if alive(c)], "processes of the killed run are still running"
    return out.read_text().splitlines()
