"""Writing a record store (SPEC §3): the one locked, durable, append-only path every writer takes.

`RecordWriter(path).write(...)` validates a record when it is written (the `RunRecord` model, and
accuracies in percent), then appends it as one JSON line:

- **Locked.** An exclusive advisory lock (`fcntl.flock`) on the store file itself is held from reading
  the run ids already there to the end of the append, so several processes (or threads) can write one
  store: none loses a record, and a run id already in the store is refused, never written twice.
- **Durable.** The line goes out in append mode, is flushed and `fsync`ed before `write` returns.
- **Torn lines repaired.** A writer killed mid-write leaves a last line without its newline. The next
  writer, under the lock, moves those bytes to `<store>.torn` (and warns) before it appends, so the
  partial line is never merged into the next record and the store loads cleanly again. A last line
  that is complete JSON and only lacks its newline (a hand-edited file) is kept and terminated.

- **Replace-safe.** A writer that waited for the lock checks that the path still names the file it locked;
  if the store was replaced meanwhile (`RecordStore.move_aside`), it locks the new file instead.

`RecordStore` is the backend's view of a store on top of the same writer: a locked read (`load`, which also
repairs a torn last line, as a writer would), `new_records` (only the lines appended since its last read, so
a scheduler that polls a large store pays for what was appended, not for the store's size), append, and
`move_aside` (records of runs to train again go to a file beside the store, and the store is replaced by the
rest in one atomic step).
"""

from __future__ import annotations

import errno
import json
import os
import warnings
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .inputfiles import MAX_STORE_BYTES
from .records import (FRACTION_MAX, InputError, LoadResult, Problem, RunRecord, Seen, atomic_write, load_records,
                      parse_lines, problems_from_validation)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: reading and auditing work, writing needs POSIX locks
    fcntl = None  # type: ignore[assignment]

TORN_SUFFIX = ".torn"


class RecordRejected(ValueError):
    """A record the writer refused: invalid, or its run id is already in the store. Nothing was written."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def percent_problems(rec: RunRecord, where: str) -> list[Problem]:
    """SPEC §3's unit rule at write time: a run that trained has an accuracy above 1 %, so ≤ 1.0 is a fraction
    (`records.FRACTION_MAX`, the loader's rule, which can only judge a whole store)."""
    if rec.diverged:
        return []
    out = []
    for name in ("top1", "best_top1"):
        value = getattr(rec, name)
        if value is not None and value <= FRACTION_MAX:
            out.append(Problem(where, None, name,
                               f"accuracies are in percent (0-100): got {value!r}, did you mean {100 * value:g}? "
                               f"(a run that failed to train: set diverged=True)"))
    return out


class RecordWriter:
    """Appends validated run records to one JSON Lines store; safe to share between processes.

    >>> w = RecordWriter("results/runs.jsonl")
    >>> w.write(run_id="r1", arch="resnet20", dataset="cifar10", setting="pretrain", sparsity=0.0,
    ...         lr=0.1, epochs=160, seed=0, top1=91.7)

    `check_percent=False` skips the percent rule, for code that converts units itself and may record an
    honest accuracy at or below 1 % (the backend, the importers); everything else is always validated.
    """

    def __init__(self, path: str | os.PathLike[str], *, check_percent: bool = True):
        self.path = Path(path)
        self.check_percent = check_percent
        self._ids: set[str] = set()   # run ids of the complete lines read so far
        self._file: tuple[int, int] | None = None   # (device, inode) they were read from
        self._read_to = 0             # byte offset up to which lines were read

    # ------------------------------------------------------------------------------------ validation
    def validate(self, record: RunRecord | Mapping[str, Any] | None = None, **fields: Any) -> RunRecord:
        """The record `write` would append: `record` (a RunRecord or a mapping) updated with `fields`."""
        if isinstance(record, RunRecord):
            data: dict[str, Any] = record.model_dump(by_alias=True)
        elif record is None:
            data = {}
        elif isinstance(record, Mapping):
            data = dict(record)
        else:
            raise TypeError(f"write() takes a RunRecord or a mapping of fields, not {type(record).__name__}")
        data.update(fields)
        where = f"{self.path} (record {data.get('run_id')!r})"
        try:
            rec = RunRecord.model_validate(data)
        except ValidationError as exc:
            raise RecordRejected(problems_from_validation(where, None, exc)) from None
        problems = percent_problems(rec, where) if self.check_percent else []
        if problems:
            raise RecordRejected(problems)
        return rec

    # --------------------------------------------------------------------------------------- writing
    def write(self, record: RunRecord | Mapping[str, Any] | None = None, /, **fields: Any) -> RunRecord:
        """Validate one record and append it durably; returns the record as written."""
        rec = self.validate(record, **fields)
        self._append([rec])
        return rec

    def write_all(self, records: Iterable[RunRecord | Mapping[str, Any]]) -> list[RunRecord]:
        """Validate every record first, then append them all under one lock (all or none)."""
        recs = [self.validate(r) for r in records]
        self._append(recs)
        return recs

    def _append(self, recs: Sequence[RunRecord]) -> None:
        if not recs:
            return
        created = not self.path.exists()
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked_file(self.path) as fd:
            self._catch_up(fd)
            self._refuse_duplicates(recs)
            payload = "".join(r.to_json() + "\n" for r in recs).encode("utf-8")
            _write_all(fd, payload)
            os.fsync(fd)
            self._read_to += len(payload)
            self._ids.update(r.run_id for r in recs)
        if created:
            _fsync_dir(self.path.parent)

    def _refuse_duplicates(self, recs: Sequence[RunRecord]) -> None:
        seen: set[str] = set()
        problems = []
        for r in recs:
            if r.run_id in self._ids or r.run_id in seen:
                problems.append(Problem(str(self.path), None, "run_id", f"run_id already recorded: {r.run_id}"))
            seen.add(r.run_id)
        if problems:
            raise RecordRejected(problems)

    def _catch_up(self, fd: int) -> None:
        """Under the lock: repair a torn last line, then read the run ids of lines not read yet."""
        st = os.fstat(fd)
        if self._file != (st.st_dev, st.st_ino) or st.st_size < self._read_to:  # new or replaced file
            self._file, self._read_to, self._ids = (st.st_dev, st.st_ino), 0, set()
        data = os.pread(fd, st.st_size - self._read_to, self._read_to)
        end = data.rfind(b"\n") + 1       # bytes after the last newline: a torn or unterminated line
        if end < len(data):
            self._repair(fd, data[end:], self._read_to + end)
            data = os.pread(fd, os.fstat(fd).st_size - self._read_to, self._read_to)
            end = len(data)
        for line in data[:end].splitlines():
            run_id = _run_id(line)
            if run_id is not None:
                self._ids.add(run_id)
        self._read_to += end

    def _repair(self, fd: int, tail: bytes, at: int) -> None:
        if not tail.strip() or _is_json(tail):
            _write_all(fd, b"\n")          # a complete line that only lacked its newline
            os.fsync(fd)
            return
        torn = self.path.with_name(self.path.name + TORN_SUFFIX)
        with open(torn, "ab") as f:         # keep the bytes before they leave the store
            f.write(tail + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.ftruncate(fd, at)
        os.fsync(fd)
        warnings.warn(f"{self.path}: its last line was incomplete (a writer stopped mid-write): moved its "
                      f"{len(tail)} bytes to {torn}", RuntimeWarning, stacklevel=5)


@dataclass
class _Parsed:
    """How far a RecordStore has parsed its file: which file, up to which byte and line, the run ids seen."""

    file: tuple[int, int] | None = None
    offset: int = 0
    lines: int = 0
    seen: Seen = field(default_factory=dict)


class RecordStore:
    """One JSONL store as the backend uses it: read it under the lock, append and move records aside through
    the writer."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._writer = RecordWriter(self.path, check_percent=False)  # the backend measures in percent itself
        self._parsed = _Parsed()

    def load(self, repair: bool = True) -> list[RunRecord]:
        """Every record, read under the store's lock, so a writer in another process is never seen half
        way. With `repair`, a torn last line (a writer killed mid-write) is first moved to `<store>.torn`, as
        the next writer would; without it (or when this process may not write the store) the store is read
        under a shared lock and a torn line is reported by the loader (InputError)."""
        if not self.path.exists():
            return []
        # The trainer writes percent itself, and a short run on 1000 classes may well stay below 1 %.
        try:
            if repair:
                self._parsed = _Parsed()
                return self.new_records()
        except FileNotFoundError:
            return []
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
        try:
            with _locked_file(self.path, create=False, write=False):
                return load_records([self.path], check_units=False).raise_on_problems()
        except FileNotFoundError:
            return []

    def new_records(self) -> list[RunRecord]:
        """The records appended since this store object last read the file (`load`, `new_records`; all of
        them the first time, or when the file was replaced), under the lock, repairing a torn last line as
        `load` does. Only the bytes not read yet are parsed."""
        try:
            with _locked_file(self.path, create=False) as fd:
                self._writer._catch_up(fd)
                return self._parse_new(fd)
        except FileNotFoundError:
            return []

    def _parse_new(self, fd: int) -> list[RunRecord]:
        st = os.fstat(fd)
        if self._parsed.file != (st.st_dev, st.st_ino) or st.st_size < self._parsed.offset:
            self._parsed = _Parsed((st.st_dev, st.st_ino))
        done = self._parsed
        if st.st_size - done.offset > MAX_STORE_BYTES:
            raise InputError([Problem(str(self.path), None, None,
                                      f"cannot read record store: larger than {MAX_STORE_BYTES:,} bytes")])
        data = os.pread(fd, st.st_size - done.offset, done.offset)
        data = data[:data.rfind(b"\n") + 1]   # whole lines: `_catch_up` has just terminated or moved a torn one
        result = LoadResult()
        parse_lines(self.path, data, result, done.seen, first_line=done.lines + 1)
        if result.problems:
            self._parsed = _Parsed()   # read it all again next time, and report the same problems
            raise InputError(result.problems)
        done.offset += len(data)
        done.lines += data.count(b"\n")
        return result.records

    def run_ids(self) -> set[str]:
        return {r.run_id for r in self.load()}

    def append(self, records: Sequence[RunRecord]) -> None:
        """Append under the store's lock; RecordRejected (a ValueError) if a run id is already recorded."""
        self._writer.write_all(records)

    def move_aside(self, run_ids: Collection[str], to: str | os.PathLike[str]) -> int:
        """Move the records of `run_ids` out of the store, appending their lines to `to`; returns how many.

        Under the store's lock: the lines are appended to `to` and fsynced first, then the store is replaced
        (a temporary file, fsync, rename) by its other lines. A crash in between leaves the lines in both
        files, never in neither; writers waiting for the lock append to the new store."""
        if not self.path.exists():
            return 0
        wanted = set(run_ids)
        with _locked_file(self.path, create=False) as fd:
            self._writer._catch_up(fd)
            data = os.pread(fd, os.fstat(fd).st_size, 0)
            lines = data.splitlines(keepends=True)
            moved = [line for line in lines if _run_id(line) in wanted]
            if not moved:
                return 0
            kept = [line for line in lines if _run_id(line) not in wanted]
            aside = Path(to)
            with open(aside, "ab") as f:
                f.write(b"".join(moved))
                f.flush()
                os.fsync(f.fileno())
            atomic_write(self.path, lambda f: f.write(b"".join(kept)))
            _fsync_dir(self.path.parent)
        return len(moved)


# ------------------------------------------------------------------------------------------- helpers
@contextmanager
def _locked_file(path: Path, create: bool = True, write: bool = True) -> Iterator[int]:
    """An fd of `path` under an exclusive (`write`) or shared flock, opened for appending. After the lock is
    granted the path must still name the locked file: a store replaced meanwhile is opened and locked again."""
    if fcntl is None:  # pragma: no cover
        raise OSError(f"cannot lock {path}: writing a record store needs POSIX file locks (Linux, macOS)")
    flags = (os.O_RDWR | os.O_APPEND if write else os.O_RDONLY) | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    while True:
        fd = os.open(path, flags, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            st = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                if not create:
                    raise
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)   # replaced (or removed) while we waited: lock what the path names now
    try:
        yield fd
    finally:
        os.close(fd)   # closing the last fd releases the flock


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable too (best effort: not every file system allows it)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False
    return True


def _run_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("run_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
