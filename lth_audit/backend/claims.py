"""Which process trains which run: one advisory lock per run, so that processes sharing a store share its work.

Before a unit is handed to an executor, the scheduler takes an exclusive, non-blocking `flock` on
`<out>.ckpt/claims/<run id>.lock` for each of its runs and holds it until the run's record is appended. A
run whose lock another process holds is skipped for now (that process is training it). The kernel drops the
locks of a process that dies, so a killed run is claimed and trained again by whoever comes next. The lock
files stay (empty): removing a lock file another process may be opening would let two processes hold "the"
lock at once.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - training with several processes on one store needs POSIX locks
    fcntl = None  # type: ignore[assignment]


class Claims:
    """The runs this process has claimed, by run id."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self._held: dict[str, int] = {}

    def path(self, run_id: str) -> Path:
        return self.folder / (run_id.replace("/", "__") + ".lock")

    def take(self, run_id: str) -> bool:
        """Claim `run_id`; False when another process holds it."""
        if run_id in self._held:
            return True
        if fcntl is None:  # pragma: no cover
            self._held[run_id] = -1
            return True
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(run_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._held[run_id] = fd
        return True

    def release(self, run_id: str) -> None:
        fd = self._held.pop(run_id, None)
        if fd is not None and fd >= 0:
            os.close(fd)   # closing the fd drops the lock

    def release_all(self) -> None:
        for run_id in list(self._held):
            self.release(run_id)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._held
