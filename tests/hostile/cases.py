"""The malformed and hostile inputs of issue 16, as data: each row writes its files into a folder and
says which `lth-audit` command to run, the exit status and what the message must say.

Shared by the tests (tests/hostile) and by benchmarks/hostile_inputs.py, which measures each row's wall
time and peak memory in a process of its own.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "data" / "conformance" / "c01-jackpot"   # a valid claim file and store (clean jackpot)
RECORD = {"schema": "lth-audit.run/1", "run_id": "x/netA-pretrain-lr0.1-seed0", "arch": "netA", "dataset": "cifar10",
          "setting": "pretrain", "sparsity": 0.0, "lr": 0.1, "epochs": 160, "seed": 0, "top1": 91.0}
EXPERIMENT = """name: e
arch: mlp
dataset: mnist1d
epochs: 2
lrs: [0.1]
seeds: [0]
settings: [pretrain, lt-omp]
sparsities: [0.59]
out: e.jsonl
"""


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs" document: 9 levels of 9 aliases each (9**9 strings once expanded), ~550 bytes."""
    text = 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n"
    return text


def jackpot(folder: Path) -> tuple[Path, Path]:
    """A copy of the conformance case c01 (claim file, store) in `folder`."""
    claim, store = folder / "c01.lth.yaml", folder / "c01.jsonl"
    store.write_bytes(CASE.with_suffix(".jsonl").read_bytes())
    claim.write_text(CASE.with_suffix(".lth.yaml").read_text().replace("c01-jackpot.jsonl", "c01.jsonl"))
    return claim, store


def claim_naming(folder: Path, *records: str) -> Path:
    """The c01 claim file with `records:` replaced (each entry written as JSON, i.e. a quoted YAML string)."""
    claim, _ = jackpot(folder)
    text = claim.read_text().replace("records: [c01.jsonl]", f"records: [{', '.join(map(json.dumps, records))}]")
    claim.write_text(text)
    return claim


def store_lines(folder: Path, *lines: bytes, end: bytes = b"\n") -> Path:
    store = folder / "s.jsonl"
    store.write_bytes(b"\n".join(lines) + end)
    return store


def record(**changes) -> bytes:
    return json.dumps({**RECORD, **changes}, ensure_ascii=False).encode()


def numbered(i: int, **changes) -> bytes:
    return record(**{"run_id": f"x/run{i}", "seed": i, **changes})


@dataclass(frozen=True)
class Row:
    """One hostile input: `build(folder)` writes it and returns the argv of `lth-audit`."""

    id: str
    build: Callable[[Path], list[str]]
    expect: tuple[str, ...]          # fragments of stdout + stderr; "{dir}" is the folder
    status: int = 2
    hangs: bool = False              # did it hang, or run out of memory, before issue 16?


def _bomb_claim(d: Path) -> list[str]:
    claim, _ = jackpot(d)
    claim.write_text(alias_bomb() + claim.read_text())
    return ["audit", str(claim)]


def _bomb_experiment(d: Path) -> list[str]:
    (d / "e.yaml").write_text(alias_bomb() + EXPERIMENT)
    return ["plan", str(d / "e.yaml")]


def _second_claims_block(d: Path) -> list[str]:
    claim, _ = jackpot(d)
    claim.write_text(claim.read_text() + "claims:\n  - {id: other, arch: netA, dataset: cifar10, setting: lt-imp, "
                                         "sparsity: 0.832, expect: none}\n")
    return ["audit", str(claim)]


def _epochs_twice(d: Path) -> list[str]:
    (d / "e.yaml").write_text(EXPERIMENT + "epochs: 160\n")
    return ["plan", str(d / "e.yaml")]


def _records(*patterns: str) -> Callable[[Path], list[str]]:
    return lambda d: ["audit", str(claim_naming(d, *patterns))]


def _fifo(d: Path) -> list[str]:
    os.mkfifo(d / "pipe.jsonl")
    return ["audit", str(claim_naming(d, "pipe.jsonl"))]


def _loop(d: Path) -> Path:
    sub = d / "results" / "sub"
    sub.mkdir(parents=True)
    shutil.copy(CASE.with_suffix(".jsonl"), sub / "c01.jsonl")
    (sub / "up").symlink_to("..")
    return d / "results"


def _glob_loop(d: Path) -> list[str]:
    _loop(d)
    return ["audit", str(claim_naming(d, "results/**/*.jsonl"))]


def _validate_loop(d: Path) -> list[str]:
    return ["validate", str(_loop(d))]


def _many_stores(n: int, *extra: str) -> Callable[[Path], list[str]]:
    def build(d: Path) -> list[str]:
        claim = claim_naming(d, "stores/*.jsonl")
        (d / "stores").mkdir()
        shutil.copy(d / "c01.jsonl", d / "stores" / "c01.jsonl")
        for i in range(n - 1):
            (d / "stores" / f"s{i:05d}.jsonl").write_bytes(numbered(i, seed=1000 + i) + b"\n")
        return ["audit", str(claim), *extra]
    return build


def _validate_store(*lines: bytes, end: bytes = b"\n") -> Callable[[Path], list[str]]:
    return lambda d: ["validate", str(store_lines(d, *lines, end=end))]


def _experiment(text: str | bytes) -> Callable[[Path], list[str]]:
    def build(d: Path) -> list[str]:
        path = d / "e.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return ["plan", str(path)]
    return build


ROWS: tuple[Row, ...] = (
    # A ~550-byte alias bomb: refused at the alias that crosses the limit, with its line.
    Row("alias-bomb-claim-file", _bomb_claim, ("c01.lth.yaml:6:", "more than 100,000 values", "(here *l4)"),
        hangs=True),
    Row("alias-bomb-experiment-file", _bomb_experiment, ("e.yaml:6:", "more than 100,000 values"), hangs=True),
    # A duplicate key is an error at the second key, never "last one wins".
    Row("second-claims-block", _second_claims_block, ("c01.lth.yaml:11: [claims]", "duplicate key 'claims'",
                                                      "first at line 4")),
    Row("epochs-twice", _epochs_twice, ("e.yaml:10: [epochs]", "duplicate key 'epochs' (first at line 4)")),
    # Globs and files that never end.
    Row("glob-over-usr", _records("/usr/**/*.jsonl"), ("c01.lth.yaml:2: [records.0]", "/usr/**/*.jsonl"), hangs=True),
    Row("dev-zero-as-store", _records("/dev/zero"), ("c01.lth.yaml:2: [records.0]", "a character device"),
        hangs=True),
    Row("dev-zero-as-claim-file", lambda d: ["audit", "/dev/zero"], ("cannot read claim file", "character device"),
        hangs=True),
    Row("named-pipe-as-store", _fifo, ("[records.0]", "a named pipe"), hangs=True),
    Row("glob-over-a-dotdot-symlink", _glob_loop, ("[records.0]", "folder loop", "results/sub/up"), hangs=True),
    Row("validate-over-a-dotdot-symlink", _validate_loop, ("folder loop", "results/sub/up")),
    Row("audit-over-a-dotdot-symlink", lambda d: ["audit", str(_loop(d))], ("cannot walk the folder: folder loop",)),
    # 20,000 stores: refused past --max-files (default 10,000), loaded fast when allowed.
    Row("glob-past-max-files", _many_stores(10_001), ("[records.0]", "matches more than 10,000 files",
                                                      "--max-files")),
    Row("glob-within-max-files", _many_stores(10_001, "--max-files", "10001"), ("1 claims: 1 passed",), status=0),
    # Lines are split on \n only: a raw U+2028 inside a string is not a line end.
    Row("u2028-in-a-string", _validate_store(record(run_id="x/a" + "\u2028" + "b"), numbered(1), b"{oops"),
        ("s.jsonl:3: not valid JSON", "2 good records")),
    # Bytes are decoded per line: a bad byte names its line and the good lines load; a BOM is fine.
    Row("bad-byte-in-a-store", _validate_store(numbered(0), numbered(1).replace(b"netA", b"net\xffA"), numbered(2)),
        ("s.jsonl:2: not UTF-8: byte 0xff", "2 good records, 0 claims, 1 problems")),
    Row("bom-on-line-1", _validate_store(b"\xef\xbb\xbf" + numbered(0), numbered(1)),
        ("2 good records, 0 claims, 0 problems",), status=0),
    # Strict numbers and booleans: never converted.
    Row("lr-true", _validate_store(record(lr=True)), ("s.jsonl:1: [lr] expected a number, not true/false (got true)",)),
    Row("seed-string", _validate_store(record(seed="0")), ("s.jsonl:1: [seed]", "expected a number, not a string")),
    Row("top1-string", _validate_store(record(top1="52.5")), ("s.jsonl:1: [top1]", "not a string (got \"52.5\")")),
    Row("diverged-yes", _validate_store(record(diverged="yes")), ("s.jsonl:1: [diverged] Input should be a valid "
                                                                 "boolean (got \"yes\")",)),
    Row("experiment-lrs-true", _experiment(EXPERIMENT.replace("lrs: [0.1]", "lrs: [true]")),
        ("e.yaml:5: [lrs.0]", "not true/false", "(got true)")),
    Row("experiment-seed-string", _experiment(EXPERIMENT.replace("seeds: [0]", 'seeds: ["0"]')),
        ("e.yaml:6: [seeds.0]", "not a string", '(got "0")')),
    # SPEC §3: accuracies are in percent.
    Row("all-top1-fractions", _validate_store(numbered(0, top1=0.91), numbered(1, top1=0.9, diverged=True)),
        ("s.jsonl:1: [top1] every record of (netA, cifar10) has top1 <= 1", "accuracies look like fractions")),
    Row("one-fraction-among-percent", _validate_store(numbered(0), numbered(1, top1=0.9), numbered(2, top1=0.5,
                                                                                                diverged=True)),
        ("s.jsonl:2: [top1] top1 0.9 <= 1 among records of (netA, cifar10) above 10", "1 problems")),
    Row("all-diverged-at-chance", _validate_store(numbered(0, top1=0.1, diverged=True)), ("1 good records",),
        status=0),
    # A crashed writer's torn last line is named, never merged or dropped; a complete one needs no newline.
    Row("torn-last-line", _validate_store(numbered(0), numbered(1)[:57], end=b""),
        ("s.jsonl:2: incomplete last line (no newline at its end", "delete the line", "1 good records")),
    Row("torn-last-line-audited", lambda d: ["audit", str(_torn(d))],
        ("c01.jsonl:25: incomplete last line", "1 input problems")),
    Row("complete-last-line-without-newline", _validate_store(numbered(0), numbered(1), end=b""),
        ("2 good records, 0 claims, 0 problems",), status=0),
    Row("a-key-twice-in-a-record", _validate_store(numbered(0)[:-1] + b', "top1": 12.5}'),
        ("s.jsonl:1: [top1] key given twice in one record",)),
    # JSON nested 100,000 deep: a problem of its line, not a RecursionError.
    Row("json-100000-deep", _validate_store(numbered(0), b"[" * 100_000 + b"]" * 100_000),
        ("s.jsonl:2: JSON nested too deep", "1 good records")),
    Row("yaml-100000-deep", lambda d: ["audit", str(_write(d / "c.lth.yaml", "records: " + "[" * 100_000))],
        ("c.lth.yaml:1:", "nested more than 100 levels deep")),
    # Experiment files: bad bytes, ignore lists that prune nothing or everything, seeds torch refuses.
    Row("experiment-not-utf8", _experiment(EXPERIMENT.replace("name: e", "name: caf\xe9").encode("latin-1")),
        ("e.yaml:1: not UTF-8: byte 0xe9",)),
    Row("experiment-ignore-everything", _experiment(EXPERIMENT + 'ignore: ["*"]\n'),
        ("e.yaml:10: [ignore]", "leaves no layer of mlp to prune")),
    Row("experiment-ignore-no-layer", _experiment(EXPERIMENT + "ignore: [fc9]\n"),
        ("e.yaml:10: [ignore.0]", "'fc9' matches no prunable layer of mlp")),
    Row("experiment-seed-1e20", _experiment(EXPERIMENT.replace("seeds: [0]", "seeds: [100000000000000000000]")),
        ("e.yaml:6: [seeds.0]", "less than or equal to 4294967295")),
    Row("experiment-seed-1e20-float", _experiment(EXPERIMENT.replace("seeds: [0]", "seeds: [1.0e+20]")),
        ("e.yaml:6: [seeds.0]", "(got 1.0e+20)")),
)


def _torn(d: Path) -> Path:
    claim, store = jackpot(d)
    store.write_bytes(store.read_bytes() + numbered(99)[:40])
    return claim


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
