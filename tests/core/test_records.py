"""The record model and the JSON Lines store: every bad line named, nothing lost."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from lth_audit.records import InputError, RunRecord, load_records
from lth_audit.store import RecordStore

from .factories import rec

GOOD = {"schema": "lth-audit.run/1", "run_id": "a", "arch": "resnet20", "dataset": "cifar10", "setting": "lt-imp",
        "sparsity": 0.914, "lr": 0.01, "epochs": 160, "rewind_epoch": 0, "seed": 0, "top1": 87.4}


def test_spec_example_round_trips():
    r = RunRecord.model_validate(GOOD)
    assert RunRecord.model_validate(json.loads(r.to_json())) == r


def test_unknown_keys_are_kept_in_meta():
    r = RunRecord.model_validate({**GOOD, "gpu": "A100", "meta": {"code": "abc"}})
    assert r.meta == {"gpu": "A100", "code": "abc"}
    assert json.loads(r.to_json())["meta"]["gpu"] == "A100"


@pytest.mark.parametrize("field,value", [("top1", math.nan), ("top1", math.inf), ("top1", -0.1), ("top1", 100.01),
                                         ("best_top1", math.nan), ("lr", 0.0), ("epochs", 0),
                                         ("sparsity", 1.0), ("setting", "lt-xyz"), ("schema", "lth-audit.run/2")])
def test_out_of_range_values_are_rejected(field, value):
    with pytest.raises(ValidationError) as exc:
        RunRecord.model_validate({**GOOD, field: value})
    assert field in str(exc.value) or "schema" in str(exc.value)


def test_pretrain_must_be_dense_and_rewind_only_for_wr():
    with pytest.raises(ValidationError, match="dense"):
        RunRecord.model_validate({**GOOD, "setting": "pretrain"})
    with pytest.raises(ValidationError, match="rewind_epoch"):
        RunRecord.model_validate({**GOOD, "rewind_epoch": 8})
    assert RunRecord.model_validate({**GOOD, "setting": "wr-imp", "rewind_epoch": 8}).total_epochs == 168


def test_every_bad_line_is_named_with_file_line_and_field(tmp_path):
    lines = [json.dumps(GOOD),
             "{not json",
             json.dumps({**GOOD, "run_id": "b", "top1": 120}),
             "",
             json.dumps({**GOOD, "run_id": "c", "lr": "fast"}),
             json.dumps([1, 2]),
             json.dumps({**GOOD, "run_id": "d", "top1": "NaN"}).replace('"NaN"', "NaN"),
             json.dumps({**GOOD, "run_id": "e"}),
             json.dumps({k: v for k, v in GOOD.items() if k != "seed"} | {"run_id": "f"})]
    store = tmp_path / "runs.jsonl"
    store.write_text("\n".join(lines) + "\n")
    result = load_records([store])
    assert [r.run_id for r in result.records] == ["a", "e"]
    where = [(p.line, p.field) for p in result.problems]
    assert where == [(2, None), (3, "top1"), (5, "lr"), (6, None), (7, "top1"), (9, "seed")]
    assert all(p.path == str(store) for p in result.problems)
    assert "less than or equal to 100" in str(result.problems[1])
    with pytest.raises(InputError) as exc:
        result.raise_on_problems()
    assert str(exc.value).count(str(store)) == 6


def test_conflicting_duplicate_run_ids_are_rejected_identical_ones_merged(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps(GOOD) + "\n")
    b.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "top1": 50.0}) + "\n")
    result = load_records([a, b])
    assert len(result.records) == 1
    assert len(result.problems) == 1 and result.problems[0].line == 2
    assert "duplicate run_id 'a'" in result.problems[0].reason and f"{a}:1" in result.problems[0].reason


def test_unreadable_store_is_a_problem(tmp_path):
    result = load_records([tmp_path / "nope.jsonl"])
    assert result.problems and "cannot read" in result.problems[0].reason


def test_store_appends_atomically_and_refuses_a_second_record_of_a_run(tmp_path):
    store = RecordStore(tmp_path / "sub" / "runs.jsonl")
    store.append([rec("pretrain", 0.1, 90.0)])
    store.append([rec("pretrain", 0.1, 91.0, seed=1)])
    assert [r.seed for r in store.load()] == [0, 1]
    with pytest.raises(ValueError, match="already recorded"):
        store.append([rec("pretrain", 0.1, 90.0)])
    assert len(store.load()) == 2
    assert not [p for p in store.path.parent.iterdir() if p.name.startswith(".")]


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    from lth_audit.records import atomic_write_text

    atomic_write_text(tmp_path / "r.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o666 & ~umask
