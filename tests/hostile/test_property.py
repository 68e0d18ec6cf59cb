"""Property: any byte string given as a record store, a claim file or an experiment file ends in exit 0,
1 or 2 with no traceback, in bounded time (`lth_audit.cli.main` in-process: audit/validate, plan).

Inputs are raw bytes, and valid files mutated by byte edits and by splicing in fragments that broke the
loaders before (aliases, bad bytes, deep nesting, U+2028, strings where numbers belong, paths that
walk far)."""

from __future__ import annotations

import io
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lth_audit.backend.models  # noqa: F401 - torch imported here, not inside the first timed example
from lth_audit.cli import main

from .cases import CASE, EXPERIMENT, numbered

FRAGMENTS = [
    b"&a [*a]", b"&a", b"*a", b"<<: *a", b"&b {x: *a}", b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\x00", b"\x1b",
    "\u2028".encode(), "\u0085".encode(), b"\r", b"\t", b"\n", b"[" * 300, b"{" * 300, b'{"a":' * 300,
    b"!!python/object/apply:os.system [ls]", b"!!binary", b"!!set", b"!!timestamp 2024-13-45", b"!!float", b"? [a]",
    b"1e20", b"100000000000000000000", b"9" * 5000, b"-1", b"0x1F", b".nan", b"NaN", b"-Infinity", b"true", b"yes",
    b'"52.5"', b"null", b"~", b"''", b'"\\ud83c"', b"---", b"...", b"%YAML 1.1", b"- ", b": ", b"#", b"|", b">",
    b"/dev/zero", b"/proc/self/mem", b"/**/*.jsonl", b"../../**", b"**", b"~root/", b"*.jsonl", b"claims:",
    b"records:", b"ignore: ['*']", b"seeds: [1e20]", b'"top1": "52.5"', b'"diverged": "yes"', b'"lr": true',
]


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "fragment", "duplicate"]))
        if edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif edit == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif edit == "fragment":
            data[at:at] = draw(st.sampled_from(FRAGMENTS))
        else:
            data[at:at] = bytes(data[at:at + draw(st.integers(1, 200))])
    return bytes(data)


def inputs(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), mutated(valid),
                     st.lists(st.sampled_from(FRAGMENTS), max_size=12).map(b" ".join))


STORE = CASE.with_suffix(".jsonl").read_bytes()
CLAIMS = CASE.with_suffix(".lth.yaml").read_bytes().replace(b"c01-jackpot.jsonl", b"c01.jsonl")
SETTINGS = settings(max_examples=80, deadline=timedelta(seconds=20),  # the deadline is the "bounded time"
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LIMITS = ["--max-files", "20"]  # a pattern that walks the whole disk stops after 2,000 entries


def exit_status(argv: list[str]) -> int:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        status = main(argv)
    assert status in (0, 1, 2), err.getvalue()
    assert "Traceback" not in err.getvalue()
    return status


@SETTINGS
@given(inputs(STORE + numbered(0) + b"\n"))
def test_any_bytes_as_a_record_store(data: bytes):
    with tempfile.TemporaryDirectory() as d:
        Path(d, "c01.jsonl").write_bytes(data)
        Path(d, "c01.lth.yaml").write_bytes(CLAIMS)
        exit_status(["audit", str(Path(d, "c01.lth.yaml")), *LIMITS])
        exit_status(["validate", str(Path(d, "c01.jsonl")), *LIMITS])


@SETTINGS
@given(inputs(CLAIMS))
def test_any_bytes_as_a_claim_file(data: bytes):
    with tempfile.TemporaryDirectory() as d:
        Path(d, "c01.jsonl").write_bytes(STORE)
        Path(d, "c.lth.yaml").write_bytes(data)
        exit_status(["audit", str(Path(d, "c.lth.yaml")), *LIMITS])
        exit_status(["validate", d, *LIMITS])


@SETTINGS
@given(inputs(EXPERIMENT.encode()))
def test_any_bytes_as_an_experiment_file(data: bytes):
    with tempfile.TemporaryDirectory() as d:
        Path(d, "e.yaml").write_bytes(data)
        exit_status(["plan", str(Path(d, "e.yaml"))])
