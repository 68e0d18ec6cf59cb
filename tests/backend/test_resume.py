"""Resume checks the configuration: an edited recipe stops `run` naming the changed fields, `--rerun-changed`
trains exactly the changed runs again (their old records moved aside, never deleted), `plan` shows them."""

from __future__ import annotations

import json

import pytest
import yaml

from lth_audit.backend import resume
from lth_audit.backend.experiment import load_experiment
from lth_audit.backend.plan import make_plan
from lth_audit.backend.scheduler import run_experiment
from lth_audit.cli import main
from lth_audit.records import RunRecord, load_records

SETTINGS = ["pretrain", "lt-omp", "sdt"]
PER_LR = 3   # pretrain, lt-omp, sdt at one sparsity


def edit(path, **changes) -> None:
    body = yaml.safe_load(path.read_text())
    body.update(changes)
    path.write_text(yaml.safe_dump(body, sort_keys=False))


def results(path) -> dict:
    return {r.run_id: (r.top1, r.best_top1, r.r_p, r.params) for r in load_records([path]).raise_on_problems()}


def test_an_edited_recipe_stops_the_run_naming_the_fields_and_both_ways_out(tmp_path, capsys, write_exp):
    path = write_exp(tmp_path, settings=SETTINGS)
    assert main(["run", str(path), "--quiet", "--device", "cpu"]) == 0
    store = tmp_path / "tiny.jsonl"
    before = store.read_bytes()
    edit(path, momentum=0.5, weight_decay=1e-4, lrs=[0.05, 0.1])   # the added lr is not a change
    capsys.readouterr()
    assert main(["run", str(path), "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{PER_LR} recorded run(s) were trained under another configuration" in err
    assert "momentum 0.9 -> 0.5, weight_decay 0.0005 -> 0.0001" in err and "lrs" not in err
    assert "new `out:`" in err and "--rerun-changed" in err and "never deleted" in err
    assert store.read_bytes() == before                      # nothing trained, nothing moved

    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "changed  tiny/mlp-pretrain-s0-lr0.05-seed0" in out and "todo  tiny/mlp-pretrain-s0-lr0.1-seed0" in out
    assert "momentum 0.9 -> 0.5" in out and f"{2 * PER_LR} runs, 0 done, {PER_LR} changed" in out


def test_rerun_changed_trains_only_the_changed_runs_and_moves_their_records_aside(tmp_path, capsys, write_exp):
    # lr 0.05 trained under the old recipe; lr 0.1 under the new one, into the same store
    path = write_exp(tmp_path, settings=SETTINGS)
    assert main(["run", str(path), "--quiet", "--device", "cpu"]) == 0
    old_lines = (tmp_path / "tiny.jsonl").read_text().splitlines()
    old_exp = load_experiment(path)
    edit(path, momentum=0.5, lrs=[0.1])
    assert main(["run", str(path), "--quiet", "--device", "cpu"]) == 0
    edit(path, lrs=[0.05, 0.1])
    new_exp = load_experiment(path)
    assert main(["run", str(path), "--quiet", "--device", "cpu"]) == 2    # lr 0.05 is changed
    capsys.readouterr()

    assert main(["run", str(path), "--quiet", "--device", "cpu", "--rerun-changed"]) == 0
    out, err = capsys.readouterr()
    assert f"trained {PER_LR} runs, {PER_LR} already done" in out   # only the changed runs
    (aside,) = tmp_path.glob("tiny.jsonl.changed-*")
    assert aside.read_text().splitlines() == old_lines              # moved, whole, never deleted
    assert f"moved the records of {PER_LR} changed run(s) to {aside}" in err
    recs = load_records([tmp_path / "tiny.jsonl"]).raise_on_problems()
    assert len(recs) == 2 * PER_LR and all(r.meta["config"] == new_exp.training_config() for r in recs)
    assert not resume.changes(make_plan(new_exp), recs)

    # the old configuration's checkpoints are its own and were not reused: the retrained runs are exactly
    # what the new configuration trains from scratch
    assert old_exp.ckpt_dir != new_exp.ckpt_dir and old_exp.ckpt_dir.is_dir()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "tiny.yaml").write_text(path.read_text())
    run_experiment(load_experiment(fresh / "tiny.yaml"), device="cpu", quiet=True)
    assert results(tmp_path / "tiny.jsonl") == results(fresh / "tiny.jsonl")

    assert main(["run", str(path), "--quiet", "--device", "cpu"]) == 0   # nothing changed any more
    assert f"trained 0 runs, {2 * PER_LR} already done" in capsys.readouterr().out


def test_a_record_without_its_configuration_is_changed_unless_its_hash_matches(tmp_path, write_exp):
    exp = load_experiment(write_exp(tmp_path, settings=["pretrain"]))
    run_id = make_plan(exp).runs[0].run_id
    base = {"run_id": run_id, "arch": "mlp", "dataset": "mnist1d", "setting": "pretrain", "sparsity": 0.0,
            "lr": 0.05, "epochs": 2, "seed": 0, "top1": 50.0}
    legacy = RunRecord.model_validate({**base, "meta": {"config_hash": exp.config_hash()}})
    assert resume.change_of(legacy, exp.training_config(), exp.config_hash()) is None      # same file: same run
    other = RunRecord.model_validate({**base, "meta": {"config_hash": "0123456789ab"}})
    change = resume.change_of(other, exp.training_config(), exp.config_hash())
    assert change is not None and not change.fields
    assert "0123456789ab" in change.what and "cannot be named" in change.what
    bare = resume.change_of(RunRecord.model_validate(base), exp.training_config(), exp.config_hash())
    assert bare is not None and "not written by `lth-audit run`" in bare.what


@pytest.mark.parametrize("key,value,named", [("epochs", 3, "epochs 2 -> 3"), ("init", "pytorch", None),
                                             ("ignore", ["fc1"], "ignore ['fc'] -> ['fc1']"),
                                             ("trajectory_every", 1, None), ("seeds", [0, 1], None)])
def test_what_counts_as_a_change(tmp_path, write_exp, key, value, named):
    """Training keys count (by what they resolve to: the mlp's paper init is PyTorch's, so `init: pytorch`
    changes nothing); the grid and trajectory_every do not."""
    exp = load_experiment(write_exp(tmp_path))
    (tmp_path / "edited").mkdir()
    edited = load_experiment(write_exp(tmp_path / "edited", **{key: value}))
    fields = resume.diff(exp.training_config(), edited.training_config())
    assert ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in fields) == (named or "")
    assert (exp.training_key() == edited.training_key()) == (named is None)


def test_training_config_is_in_every_record_and_json_serialisable(tmp_path, write_exp):
    exp = load_experiment(write_exp(tmp_path, settings=["pretrain"]))
    run_experiment(exp, device="cpu", quiet=True)
    (line,) = (tmp_path / "tiny.jsonl").read_text().splitlines()
    meta = json.loads(line)["meta"]
    assert meta["config"] == exp.training_config() and meta["config_hash"] == exp.config_hash()
    assert meta["config"]["momentum"] == 0.9 and meta["config"]["epochs"] == 2
