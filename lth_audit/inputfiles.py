"""Reading files that someone else wrote: regular files only, bounded in size, and globs and folder
walks that always end (docs/input.md).

Errors are `Unreadable` with a message that names the file and says what to change; callers turn
them into `Problem`s with the line of the claim file that named the file.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_FILES = 10_000
"""Files one claim file's `records:` (or `landscapes:`) patterns may match, and `validate` may find."""
MAX_STORE_BYTES = 256 * 2**20
"""Largest record store read (a real grid of thousands of runs is a few MB)."""
ENTRIES_PER_FILE = 100
"""A pattern or folder walk looks at no more than this many directory entries per allowed file."""
FILES_SETTING = "--max-files; pytest: --lth-max-files"
BYTES_SETTING = "raise the limit with --max-store-bytes; pytest: --lth-max-store-bytes"


@dataclass(frozen=True)
class InputLimits:
    """How much one claim file (or one `validate` argument) may make the audit read."""

    max_files: int = MAX_FILES
    max_store_bytes: int = MAX_STORE_BYTES

    @property
    def max_entries(self) -> int:
        return ENTRIES_PER_FILE * self.max_files


class Unreadable(Exception):
    """A file or pattern the audit refuses to read, with the reason and the fix."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(device, inode) of `path` (symlinks followed: one key per real file); Unreadable unless a regular file."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from exc
    if not stat.S_ISREG(st.st_mode):
        raise Unreadable(f"{_kind(st.st_mode)}, not a file")
    return st.st_dev, st.st_ino


def read_bounded(path: str | os.PathLike[str], limit: int, setting: str = BYTES_SETTING) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; `setting` says where the limit comes from.

    Opened non-blocking, so a named pipe is refused instead of waited on; the size is counted while
    reading, so a file that lies about its size (/proc) cannot exceed the limit either."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Unreadable(f"{_kind(st.st_mode)}, not a file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, max(st.st_size + 1 - size, 1 << 16)))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)
    if size > limit:
        raise Unreadable(f"larger than {limit:,} bytes ({setting})")
    return b"".join(chunks)


class _Walk:
    """Directory listing with a budget of entries, each real folder entered once, loops detected."""

    def __init__(self, limits: InputLimits):
        self.left = limits.max_entries
        self.limits = limits

    def scan(self, folder: str) -> list[os.DirEntry]:
        try:
            with os.scandir(folder) as it:
                entries = []
                for e in it:
                    self.left -= 1
                    if self.left < 0:
                        raise Unreadable(f"walks more than {self.limits.max_entries:,} directory entries "
                                         f"({ENTRIES_PER_FILE} per allowed file: {FILES_SETTING}); narrow it")
                    entries.append(e)
        except (NotADirectoryError, FileNotFoundError, PermissionError):
            return []
        return sorted(entries, key=lambda e: e.name)

    def tree(self, top: str, hidden: bool) -> Iterator[tuple[str, list[os.DirEntry]]]:
        """(folder, its entries) for `top` and every folder below it (symlinks to folders followed), each
        real folder once. A symlink back to a folder that contains it is a loop: Unreadable."""
        try:
            st = os.stat(top)
        except OSError:
            return
        seen = {(st.st_dev, st.st_ino)}
        stack = [(top, ((st.st_dev, st.st_ino),))]
        while stack:
            folder, ancestors = stack.pop()
            entries = [e for e in self.scan(folder) if hidden or not e.name.startswith(".")]
            yield folder, entries
            subs = []
            for e in entries:
                try:
                    if not e.is_dir():
                        continue
                    st = e.stat()
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    raise Unreadable(f"folder loop: {os.path.normpath(e.path)} leads back to "
                                     f"{os.path.realpath(e.path)}, which contains it; remove the link or narrow "
                                     f"the pattern")
                if key not in seen:
                    seen.add(key)
                    subs.append((e.path, (*ancestors, key)))
            stack.extend(reversed(subs))


def expand(pattern: str, base: Path, limits: InputLimits) -> list[Path]:
    """The paths `pattern` (relative to `base`, `~` expanded, glob syntax with `**`) matches, sorted.

    Like `glob.glob(..., recursive=True)`, except that a pattern stops with Unreadable when it
    matches more than `limits.max_files` paths or walks more than `limits.max_entries` entries, and
    that a folder loop under `**` is an error instead of an endless walk."""
    full = os.path.join(base, os.path.expanduser(pattern))
    if not glob.has_magic(full):
        return [Path(full)] if os.path.lexists(full) else []
    drive, rest = os.path.splitdrive(full)
    parts = rest.split(os.sep)
    first = next(i for i, p in enumerate(parts) if glob.has_magic(p))
    root = drive + (os.sep.join(parts[:first]) or (os.curdir if parts[0] else os.sep))
    walk = _Walk(limits)
    found: list[str] = []

    def add(path: str) -> None:
        found.append(path)
        if len(found) > limits.max_files:
            raise Unreadable(f"matches more than {limits.max_files:,} files (raise the limit with "
                             f"{FILES_SETTING}); narrow it")

    def match(folder: str, segs: list[str]) -> None:
        seg, more = segs[0], segs[1:]
        if seg == "**":
            for sub, entries in walk.tree(folder, hidden=False):
                if more:
                    match(sub, more)
                    continue
                if sub != folder:
                    add(sub)
                for e in entries:  # `x/**` also matches the files in every folder below x
                    if not e.is_dir():
                        add(e.path)
            return
        if not glob.has_magic(seg):
            path = os.path.join(folder, seg)
            if not more:
                if os.path.lexists(path):
                    add(path)
            elif os.path.isdir(path):
                match(path, more)
            return
        for e in walk.scan(folder):
            if e.name.startswith(".") and not seg.startswith("."):
                continue
            if not fnmatch.fnmatchcase(e.name, seg):
                continue
            if not more:
                add(e.path)
            elif e.is_dir():
                match(e.path, more)

    match(root, parts[first:])
    return [Path(p) for p in sorted(set(found), key=lambda p: p.split(os.sep))]  # the order of sorted Paths


def walk_files(top: Path, limits: InputLimits, wanted: Callable[[str], bool]) -> list[Path]:
    """Every regular file under the folder `top` (hidden ones too) whose name is `wanted`, sorted; at
    most `limits.max_files` of them, and at most `limits.max_entries` directory entries looked at."""
    walk = _Walk(limits)
    files = []
    for _, entries in walk.tree(str(top), hidden=True):
        for e in entries:
            try:
                if not (wanted(e.name) and e.is_file()):
                    continue
            except OSError:
                continue
            files.append(Path(e.path))
            if len(files) > limits.max_files:
                raise Unreadable(f"holds more than {limits.max_files:,} such files (raise the limit with "
                                 f"{FILES_SETTING}); name fewer folders")
    return sorted(files)
