"""The pattern expansion behind `records:` matches what `glob.glob(..., recursive=True)` matches, except
that it stops: at a folder loop, past --max-files matches, past its budget of directory entries."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from lth_audit.inputfiles import InputLimits, Unreadable, expand, read_bounded, walk_files

FILES = ["x.jsonl", "y.txt", ".hidden.jsonl", "a/x.jsonl", "a/b/x.jsonl", "a/b/c/y.jsonl", "a/.h/x.jsonl",
         "b/x.jsonl", "[x]/x.jsonl", "ab/x.jsonl"]
PATTERNS = ["*.jsonl", "a/*.jsonl", "**/*.jsonl", "a/**/x.jsonl", "a/**/*.jsonl", "[ab]/*.jsonl", "?/x.jsonl",
            "a/.h/*.jsonl", "**/.h*", "a/.*/x.jsonl", "*/b/*", "a/**", "nothing/**/*.jsonl", "x.jsonl", "**"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for f in FILES:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("{}\n")
    return tmp_path


@pytest.mark.parametrize("pattern", PATTERNS)
def test_matches_what_glob_matches(tree, pattern):
    want = sorted(Path(p) for p in glob.glob(os.path.join(tree, pattern), recursive=True) if not p.endswith(os.sep))
    assert expand(pattern, tree, InputLimits()) == want


def test_a_loop_is_an_error_naming_the_link_and_a_second_link_is_walked_once(tree):
    (tree / "a" / "b" / "again").symlink_to(tree / "b")          # another way into b: not a loop
    assert Path(tree, "b", "x.jsonl") in expand("**/x.jsonl", tree, InputLimits())
    (tree / "a" / "b" / "up").symlink_to("..")
    with pytest.raises(Unreadable, match=r"folder loop: .*a/b/up leads back to .*/a, which contains it"):
        expand("**/*.jsonl", tree, InputLimits())
    with pytest.raises(Unreadable, match="folder loop"):
        walk_files(tree, InputLimits(), lambda name: True)
    assert expand("a/b/up/*.jsonl", tree, InputLimits()) == [tree / "a" / "b" / "up" / "x.jsonl"]  # no `**`: fine


def test_limits_on_matches_and_on_entries_walked(tree):
    with pytest.raises(Unreadable, match="matches more than 3 files"):
        expand("**/*.jsonl", tree, InputLimits(max_files=3))
    for i in range(100):
        (tree / "a" / f"f{i}").touch()
    with pytest.raises(Unreadable, match="walks more than 100 directory entries"):
        expand("**/nothing", tree, InputLimits(max_files=1))
    jsonl = sorted(tree / f for f in FILES if f.endswith(".jsonl"))   # hidden ones too
    assert walk_files(tree, InputLimits(max_files=len(jsonl)), lambda name: name.endswith(".jsonl")) == jsonl
    with pytest.raises(Unreadable, match=f"holds more than {len(jsonl) - 1} such files"):
        walk_files(tree, InputLimits(max_files=len(jsonl) - 1), lambda name: name.endswith(".jsonl"))


def test_read_bounded_refuses_what_is_not_a_small_regular_file(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 100)
    assert read_bounded(tmp_path / "f", 100) == b"x" * 100
    with pytest.raises(Unreadable, match="larger than 99 bytes"):
        read_bounded(tmp_path / "f", 99)
    os.mkfifo(tmp_path / "pipe")
    for path, kind in ((tmp_path / "pipe", "a named pipe"), (tmp_path, "a folder"), ("/dev/zero", "a character")):
        with pytest.raises(Unreadable, match=kind):
            read_bounded(path, 10)
    with pytest.raises(Unreadable, match="No such file"):
        read_bounded(tmp_path / "missing", 10)
