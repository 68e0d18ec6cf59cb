"""RecordWriter: validation at write time, one locked durable append path, torn lines repaired."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lth_audit import RecordWriter, RunRecord
from lth_audit.records import InputError, load_records
from lth_audit.store import RecordRejected, RecordStore

ROOT = Path(__file__).resolve().parents[2]


def fields(run_id: str = "r0", **over) -> dict:
    return {"run_id": run_id, "arch": "mlp", "dataset": "mnist1d", "setting": "lt-imp", "sparsity": 0.59,
            "lr": 0.1, "epochs": 40, "seed": 0, "top1": 71.5, **over}


def ids(path: Path, check_units: bool = True) -> list[str]:
    result = load_records([path], check_units=check_units)
    assert not result.problems, result.problems
    return [r.run_id for r in result.records]


def test_write_fields_record_or_mapping_and_read_back(tmp_path):
    store = tmp_path / "sub" / "runs.jsonl"
    w = RecordWriter(store)
    a = w.write(**fields("a"))
    b = w.write(RunRecord.model_validate(fields("b", top1=70.0)))
    c = w.write(fields("c"), seed=2, meta={"code": "abc"})
    assert isinstance(a, RunRecord) and b.top1 == 70.0 and c.seed == 2
    assert load_records([store]).records == [a, b, c]
    assert store.read_text().count("\n") == 3 and store.read_text().endswith("\n")


def test_invalid_record_is_refused_with_its_field_and_nothing_is_written(tmp_path):
    store = tmp_path / "runs.jsonl"
    w = RecordWriter(store)
    with pytest.raises(RecordRejected) as exc:
        w.write(**fields(lr=0.0))
    assert exc.value.problems[0].field == "lr" and "'r0'" in str(exc.value)
    with pytest.raises(RecordRejected, match="setting"):
        w.write(**fields(setting="lt-xyz"))
    with pytest.raises(TypeError, match="RunRecord or a mapping"):
        w.write(["not", "a", "record"])
    assert not store.exists()


@pytest.mark.parametrize("name", ["top1", "best_top1"])
def test_accuracy_as_a_fraction_is_refused_saying_percent(tmp_path, name):
    w = RecordWriter(tmp_path / "runs.jsonl")
    with pytest.raises(RecordRejected, match="percent") as exc:
        w.write(**fields(**{name: 0.981}))
    assert exc.value.problems[0].field == name and "98.1" in str(exc.value)
    w.write(**fields("div", top1=0.5, best_top1=1.0, diverged=True))  # a run that failed to train is kept
    RecordWriter(tmp_path / "runs.jsonl", check_percent=False).write(**fields("tiny", top1=0.9))
    assert ids(tmp_path / "runs.jsonl", check_units=False) == ["div", "tiny"]  # the loader's store-wide rule aside


def test_duplicate_run_id_is_refused_across_writers_and_within_a_batch(tmp_path):
    store = tmp_path / "runs.jsonl"
    RecordWriter(store).write(**fields("a"))
    with pytest.raises(RecordRejected, match="already recorded: a"):
        RecordWriter(store).write(**fields("a", top1=50.0))
    with pytest.raises(RecordRejected, match="already recorded: b"):
        RecordWriter(store).write_all([fields("b"), fields("b", seed=1)])
    with pytest.raises(ValueError, match="already recorded: a"):  # the backend's store goes the same way
        RecordStore(store).append([RunRecord.model_validate(fields("c")), RunRecord.model_validate(fields("a"))])
    assert ids(store) == ["a"]  # a refused batch writes nothing


def test_a_store_replaced_between_writes_is_read_again(tmp_path):
    store = tmp_path / "runs.jsonl"
    w = RecordWriter(store)
    w.write(**fields("a"))
    tmp = tmp_path / "new.jsonl"
    tmp.write_text(RunRecord.model_validate(fields("b")).to_json() + "\n")
    os.replace(tmp, store)
    w.write(**fields("a"))  # "a" is not in the new file
    with pytest.raises(RecordRejected):
        w.write(**fields("b"))
    assert ids(store) == ["b", "a"]


def test_new_records_reads_only_what_was_appended_since_the_last_read(tmp_path):
    path = tmp_path / "runs.jsonl"
    store, other = RecordStore(path), RecordWriter(path)
    assert store.new_records() == []                                   # no store yet
    other.write(**fields("a"))
    assert [r.run_id for r in store.load()] == ["a"]
    assert store.new_records() == []
    other.write(**fields("b"))
    store.append([RunRecord.model_validate(fields("c"))])
    assert [r.run_id for r in store.new_records()] == ["b", "c"]       # another writer's and its own
    assert store.new_records() == []
    with path.open("ab") as f:                                          # a duplicate of "a" with other content
        f.write((RunRecord.model_validate(fields("a", top1=60.0)).to_json() + "\n").encode())
    with pytest.raises(InputError) as exc:
        store.new_records()
    [problem] = exc.value.problems
    assert (problem.line, problem.field) == (4, "run_id")              # its line in the whole file
    with pytest.raises(InputError):                                    # the same again, not a silent skip
        store.new_records()
    tmp = tmp_path / "new.jsonl"
    tmp.write_text(RunRecord.model_validate(fields("d")).to_json() + "\n")
    os.replace(tmp, path)                                               # replaced: read from its start
    assert [r.run_id for r in store.new_records()] == ["d"]


def test_new_records_repairs_a_torn_last_line_and_reads_what_comes_after(tmp_path):
    path = tmp_path / "runs.jsonl"
    store = RecordStore(path)
    store.append([RunRecord.model_validate(fields("a"))])
    assert [r.run_id for r in store.new_records()] == ["a"]
    with path.open("ab") as f:
        f.write(RunRecord.model_validate(fields("b")).to_json()[:40].encode())
    with pytest.warns(RuntimeWarning, match="incomplete"):
        assert store.new_records() == []
    RecordWriter(path).write(**fields("b"))
    assert [r.run_id for r in store.new_records()] == ["b"]
    assert ids(path) == ["a", "b"]


def _writer_process(path: str, prefix: str, n: int, start, rejected) -> None:
    w = RecordWriter(path)
    start.wait()
    for i in range(n):
        try:
            w.write(**fields(f"{prefix}{i}", seed=i))
        except RecordRejected:
            with rejected.get_lock():
                rejected.value += 1


@pytest.mark.parametrize("shared_ids", [False, True], ids=["distinct-ids", "same-ids"])
def test_two_processes_writing_one_store_lose_and_duplicate_nothing(tmp_path, shared_ids):
    store = tmp_path / "runs.jsonl"
    n = 150
    ctx = multiprocessing.get_context("spawn")
    start, rejected = ctx.Event(), ctx.Value("i", 0)
    procs = [ctx.Process(target=_writer_process,
                         args=(str(store), "x" if shared_ids else f"p{k}-", n, start, rejected)) for k in range(2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    written = ids(store)
    assert len(written) == len(set(written)) == (n if shared_ids else 2 * n)
    assert rejected.value == (n if shared_ids else 0)


def test_torn_last_line_is_moved_aside_and_the_store_loads(tmp_path):
    store = tmp_path / "runs.jsonl"
    line = RunRecord.model_validate(fields("b")).to_json()
    store.write_text(RunRecord.model_validate(fields("a")).to_json() + "\n" + line[:37])
    with pytest.warns(RuntimeWarning, match="incomplete"):
        RecordWriter(store).write(**fields("c"))
    assert ids(store) == ["a", "c"]
    assert (tmp_path / "runs.jsonl.torn").read_text() == line[:37] + "\n"


def test_a_complete_last_line_without_newline_is_kept(tmp_path):
    store = tmp_path / "runs.jsonl"
    store.write_text(RunRecord.model_validate(fields("a")).to_json())  # as an editor may save it
    RecordWriter(store).write(**fields("b"))
    assert ids(store) == ["a", "b"]
    assert not (tmp_path / "runs.jsonl.torn").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=400))
def test_any_cut_of_a_last_line_leaves_a_clean_store_after_the_next_write(tmp_path_factory, cut):
    folder = tmp_path_factory.mktemp("cut")
    store = folder / "runs.jsonl"
    good = RunRecord.model_validate(fields("a")).to_json() + "\n"
    line = RunRecord.model_validate(fields("b", meta={"note": "x" * 200})).to_json()
    cut = min(cut, len(line))
    store.write_text(good + line[:cut])
    with pytest.warns() if cut < len(line) else _no_warning():
        RecordWriter(store).write(**fields("c"))
    assert ids(store) == (["a", "c"] if cut < len(line) else ["a", "b", "c"])
    torn = folder / "runs.jsonl.torn"
    assert (torn.read_text() == line[:cut] + "\n") if cut < len(line) else not torn.exists()


class _no_warning:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


CHILD = textwrap.dedent("""
    import os, sys, time
    from lth_audit import RecordWriter
    path, first, second = sys.argv[1], sys.argv[2], sys.argv[3]
    w = RecordWriter(path)
    w.write(**eval(first))
    real = os.write
    def half_then_hang(fd, data):
        n = real(fd, bytes(data[: len(data) // 2]))
        print("torn", flush=True)
        time.sleep(120)
        return n
    os.write = half_then_hang
    w.write(**eval(second))
""")


def test_sigkill_mid_write_leaves_a_store_the_next_writer_repairs(tmp_path):
    store = tmp_path / "runs.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(store), repr(fields("a")),
                              repr(fields("b", meta={"note": "y" * 5000}))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert child.stdout.readline().strip() == "torn", child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert not store.read_bytes().endswith(b"\n")  # killed holding the lock, half a line written
    with pytest.warns(RuntimeWarning, match="incomplete"):
        RecordWriter(store).write(**fields("c"))     # the kernel freed the lock; this writer repairs
    assert ids(store) == ["a", "c"]
    assert json.loads(store.read_text().splitlines()[-1])["run_id"] == "c"
