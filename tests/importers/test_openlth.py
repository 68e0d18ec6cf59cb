"""`lth-audit import openlth`: every run of a tree written in OpenLTH's format comes back as its record."""

from __future__ import annotations

import json
import math

import pytest

from lth_audit.cli import main
from lth_audit.importers.openlth import DENSE_BRANCH, OTHER_BRANCH, PRETRAINED, UNFINISHED, import_openlth
from lth_audit.records import load_records

from .openlth_tree import Lottery

RR, RP = "randomly_reinitialize", "randomly_prune"


def by_id(records):
    return {r.run_id: r for r in records}


def test_lottery_tree_every_run_reproduced(tmp_path):
    lot = Lottery(branches=(RR, RP, "retrain"))
    exp = lot.write(tmp_path)
    result = import_openlth(tmp_path)
    assert not result.problems
    runs = by_id(result.records)
    assert len(runs) == 2 * (1 + 3 + 3)  # per replicate: pretrain, lt-imp at levels 1-3, rr-imp at levels 1-3
    h = exp.name.removeprefix("lottery_")[:12]
    for rep in (1, 2):
        pre = runs[f"openlth-{h}-r{rep}-L0"]
        assert (pre.setting.value, pre.sparsity, pre.epochs, pre.seed, pre.lr) == ("pretrain", 0.0, 160, rep, 0.1)
        assert pre.top1 == pytest.approx(lot.final(rep, 0, "main"), abs=1e-9)
        assert pre.best_top1 == pytest.approx(lot.best(rep, 0, "main"), abs=1e-9)
        assert pre.arch == "cifar_resnet_20" and pre.dataset == "cifar10" and pre.mask_lr is None
        for level in (1, 2, 3):
            lt = runs[f"openlth-{h}-r{rep}-L{level}"]
            assert (lt.setting.value, lt.epochs, lt.rewind_epoch, lt.lr, lt.mask_lr) == ("lt-imp", 160, 0, 0.1, 0.1)
            assert lt.sparsity == pytest.approx(1 - lot.unpruned(level) / lot.prunable, abs=1e-6)
            assert lt.top1 == pytest.approx(lot.final(rep, level, "main"), abs=1e-9)
            assert lt.best_top1 == pytest.approx(lot.best(rep, level, "main"), abs=1e-9)
            assert (lt.best_top1 > lt.top1) == bool(level % 2)  # the made-up curves dip at the end on odd levels
            [rp] = lt.meta["randomly_prune"]
            assert rp["top1"] == pytest.approx(lot.final(rep, level, RP), abs=1e-9) and rp["epochs"] == 160
            assert rp["sparsity"] == pytest.approx(lt.sparsity, abs=1e-6)
            [rr] = [r for r in runs.values() if r.run_id.startswith(f"openlth-{h}-r{rep}-L{level}-rr-")]
            assert (rr.setting.value, rr.epochs, rr.seed, rr.sparsity) == ("rr-imp", 160, rep, lt.sparsity)
            assert rr.top1 == pytest.approx(lot.final(rep, level, RR), abs=1e-9)
            assert lt.meta["openlth"]["folder"] == f"{exp.name}/replicate_{rep}/level_{level}/main"
            assert lt.meta["openlth"]["hparams"]["Training Hyperparameters"]["milestone_steps"] == "80ep,120ep"
    # level-0 branches (dense) and the retrain branch are reported as left out, not imported
    assert len(result.left_out[DENSE_BRANCH]) == 2 * 2 and len(result.left_out[OTHER_BRANCH]) == 2 * 4


def test_randomly_prune_branches_become_rp_imp_when_the_user_states_their_strategy(tmp_path):
    lot = Lottery(branches=(RP,), replicates=(1,), levels=2)
    exp = lot.write(tmp_path)
    runs = by_id(import_openlth(tmp_path, randomly_prune="rp-imp").records)
    h = exp.name.removeprefix("lottery_")[:12]
    for level in (1, 2):
        lt = runs[f"openlth-{h}-r1-L{level}"]
        assert "randomly_prune" not in lt.meta
        [rp] = [r for r in runs.values() if r.run_id.startswith(f"openlth-{h}-r1-L{level}-rp-")]
        assert (rp.setting.value, rp.epochs, rp.seed, rp.sparsity) == ("rp-imp", 160, 1, lt.sparsity)
        assert rp.top1 == pytest.approx(lot.final(1, level, RP), abs=1e-9)
    # A rewinding experiment's branches start at θt, not θ0: they stay in meta even when asked.
    rewound = Lottery(rewinding_steps="2000it", replicates=(1,), levels=1, branches=(RP,))
    rewound_dir = rewound.write(tmp_path / "rw")
    records = import_openlth(rewound_dir, randomly_prune="rp-imp").records
    assert not [r for r in records if r.setting.value == "rp-imp"]
    assert [r.meta["randomly_prune"] for r in records if r.setting.value == "wr-imp"]


def test_rewinding_experiment_gives_wr_imp_and_one_whole_pretrain_run(tmp_path):
    lot = Lottery(rewinding_steps="2000it", lr="0.05", replicates=(1,), levels=2, branches=(RR,))
    exp = lot.write(tmp_path)
    # the best accuracy of the dense run falls in its first piece (level_pretrain): it must count
    piece = exp / "replicate_1" / "level_pretrain" / "main" / "logger"
    piece.write_text(piece.read_text().replace("test_accuracy,1564,", "test_accuracy,1564,0.9876#"))
    piece.write_text("\n".join(line.split("#")[0] for line in piece.read_text().split("\n")))
    runs = by_id(import_openlth(exp).records)
    h = exp.name.removeprefix("lottery_")[:12]
    pre = runs[f"openlth-{h}-r1-L0"]
    assert (pre.setting.value, pre.epochs, pre.rewind_epoch, pre.lr) == ("pretrain", 160, 0, 0.05)
    assert pre.best_top1 == pytest.approx(98.76) and pre.top1 == pytest.approx(lot.final(1, 0, "main"))
    for level in (1, 2):
        wr = runs[f"openlth-{h}-r1-L{level}"]
        # 2000 iterations at 391 a epoch: rewound to epoch 5 (5.1 rounded), trained 160 - 5 epochs
        assert (wr.setting.value, wr.rewind_epoch, wr.epochs, wr.total_epochs) == ("wr-imp", 5, 155, 160)
        assert wr.meta["openlth"]["rewind_iteration"] == 2000 and wr.meta["openlth"]["start_iteration"] == 2000
        [rr] = [r for r in runs.values() if r.run_id.startswith(f"openlth-{h}-r1-L{level}-rr-")]
        assert (rr.setting.value, rr.epochs, rr.rewind_epoch) == ("rr-imp", 155, 0)  # it trained from the rewind step


@pytest.mark.parametrize("dataset,batch,steps,rewind,epochs,rewind_epoch", [
    ("cifar10", 128, "62560it", None, 160, 0),      # 391 iterations a epoch
    ("cifar10", 128, "160ep", "5ep", 155, 5),
    ("mnist", 60, "5ep100it", None, 5, 0),           # 1000 a epoch: 5.1 epochs round down
    ("imagenet", 1024, "90ep", "6260it", 85, 5),     # ceil(1281167 / 1024) = 1252 a epoch
])
def test_training_lengths_in_epochs_and_iterations(tmp_path, dataset, batch, steps, rewind, epochs, rewind_epoch):
    lot = Lottery(dataset=dataset, batch_size=batch, training_steps=steps, rewinding_steps=rewind, levels=1,
                  replicates=(3,))
    lot.write(tmp_path)
    result = import_openlth(tmp_path)
    assert not result.problems
    [_, ticket] = sorted(result.records, key=lambda r: r.run_id)
    assert (ticket.epochs, ticket.rewind_epoch, ticket.seed) == (epochs, rewind_epoch, 3)
    assert ticket.meta["openlth"]["iterations_per_epoch"] == lot.per_epoch
    assert ticket.meta["openlth"]["end_iteration"] == lot.end


def test_run_ids_stay_unique_across_experiments(tmp_path):
    for lr in ("0.1", "0.05", "0.2"):
        Lottery(lr=lr, levels=1, branches=(RR,)).write(tmp_path)
    out = tmp_path / "all.jsonl"
    assert main(["import", "openlth", str(tmp_path), "-o", str(out)]) == 0
    loaded = load_records([out])
    assert not loaded.problems and len(loaded.records) == 3 * 2 * 3
    assert sorted({r.lr for r in loaded.records}) == [0.05, 0.1, 0.2]


def test_unfinished_runs_and_own_pretraining_are_left_out(tmp_path):
    lot = Lottery(levels=3, unfinished_levels=(3,), replicates=(1,))
    lot.write(tmp_path)
    other = Lottery(rewinding_steps="2ep", lr="0.2", replicates=(1,), levels=1)
    exp = other.write(tmp_path)
    log = exp / "replicate_1" / "level_0" / "main" / "hparams.log"   # as `--pretrain --pretrain_lr 0.4` writes it
    text = log.read_text()
    i = text.index("Pretraining Training Hyperparameters")
    log.write_text(text[:i] + text[i:].replace("lr => 0.2", "lr => 0.4", 1))
    result = import_openlth(tmp_path)
    assert not result.problems
    assert sorted(r.run_id.rsplit("-", 1)[1] for r in result.records) == ["L0", "L1", "L2"]
    assert result.left_out[UNFINISHED] == [f"{lot.hashname}/replicate_1/level_3/main"]
    assert result.left_out[PRETRAINED] == [f"{exp.name}/replicate_1"]


def test_diverged_run_is_marked(tmp_path):
    lot = Lottery(levels=1, replicates=(1,))
    exp = lot.write(tmp_path)
    logger = exp / "replicate_1" / "level_1" / "main" / "logger"
    lines = logger.read_text().split("\n")
    lines[-3] = f"test_loss,{lot.end},nan"
    logger.write_text("\n".join(lines))
    runs = sorted(import_openlth(tmp_path).records, key=lambda r: r.run_id)
    assert [r.diverged for r in runs] == [False, True]


def break_hparams(exp):
    log = exp / "replicate_1" / "level_0" / "main" / "hparams.log"
    log.write_text(log.read_text().replace("    * batch_size => 128", "  batch_size: 128"))
    return log


@pytest.mark.parametrize("damage,where,says", [
    (break_hparams, "hparams.log:3", "expected a section name"),
    (lambda e: (e / "replicate_1/level_1/main/logger").write_text("test_accuracy,0,0.1\nbroken line"),
     "level_1/main/logger:2", "name,iteration,value"),
    (lambda e: (e / "replicate_1/level_1/main/logger").write_text("test_accuracy,0,0.1\ntest_accuracy,391,0.5"),
     "level_1/main/logger", "last evaluation at iteration 391, but training_steps is 62560"),
    (lambda e: (e / "replicate_1/level_2/main/sparsity_report.json").write_text('{"total": 10}'),
     "sparsity_report.json", "cannot read the sparsity report"),
    (lambda e: (e / "replicate_1/level_0/main/hparams.log").unlink(), "hparams.log", "missing"),
])
def test_bad_files_are_named_and_nothing_is_written(tmp_path, capsys, damage, where, says):
    exp = Lottery(replicates=(1,), levels=2).write(tmp_path / "data")
    damage(exp)
    result = import_openlth(tmp_path / "data")
    assert len(result.problems) == 1 and where in str(result.problems[0]) and says in str(result.problems[0])
    out = tmp_path / "runs.jsonl"
    assert main(["import", "openlth", str(tmp_path / "data"), "-o", str(out)]) == 2
    assert "nothing written" in capsys.readouterr().err and not out.exists()


def test_a_data_set_openlth_does_not_ship_needs_its_size(tmp_path, capsys):
    Lottery(dataset="cifar100", levels=1, replicates=(1,)).write(tmp_path / "data")
    out = tmp_path / "runs.jsonl"
    assert main(["import", "openlth", str(tmp_path / "data"), "-o", str(out)]) == 2
    assert "--train-size cifar100=" in capsys.readouterr().err
    assert main(["import", "openlth", str(tmp_path / "data"), "-o", str(out), "--train-size", "cifar100=50000"]) == 0
    assert [r.epochs for r in load_records([out]).records] == [160, 160]
    assert main(["import", "openlth", str(tmp_path / "data"), "-o", str(out), "--train-size", "cifar100"]) == 2


def test_reimport_appends_only_new_runs_and_refuses_changed_ones(tmp_path, capsys):
    lot = Lottery(levels=2, replicates=(1,), unfinished_levels=(2,))
    exp = lot.write(tmp_path / "data")
    out = tmp_path / "runs.jsonl"
    assert main(["import", "openlth", str(tmp_path / "data"), "-o", str(out)]) == 0
    assert len(load_records([out]).records) == 2
    (exp / "replicate_1" / "level_2" / "main" / "logger").write_text(lot.logger(1, 2, "main", 0, lot.end)[0])
    assert main(["import", "openlth", str(tmp_path / "data"), "-o", str(out)]) == 0
    assert "1 records imported (1 lt-imp), 2 already there" in capsys.readouterr().out
    assert len(load_records([out]).records) == 3
    report = exp / "replicate_1" / "level_1" / "main" / "sparsity_report.json"
    report.write_text(json.dumps({"total": 10.0, "unpruned": 5.0}, indent=4))
    assert main(["import", "openlth", str(tmp_path / "data"), "-o", str(out)]) == 2
    assert "already recorded with other values" in capsys.readouterr().err


def test_no_experiment_folder_is_a_problem(tmp_path):
    assert "no OpenLTH experiment" in str(import_openlth(tmp_path).problems[0])
    assert "no such folder" in str(import_openlth(tmp_path / "nope").problems[0])
    assert math.isfinite(Lottery().per_epoch)
