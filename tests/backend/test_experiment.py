import pytest

from lth_audit.cli import main
from lth_audit.backend.experiment import load_experiment, parse_experiment
from lth_audit.backend.plan import make_plan, make_run_id
from lth_audit.records import InputError, Setting

GOOD = """name: e
arch: mlp
dataset: mnist1d
epochs: 4
rewind_epoch: 1
lrs: [0.01, 0.1]
seeds: [0, 1]
settings: [pretrain, lt-imp, rr-imp, lt-omp, sdt, wr-omp]
sparsities: [0.36, 0.59]
out: r.jsonl
"""


def test_error_names_file_line_and_field():
    bad = GOOD.replace("lrs: [0.01, 0.1]", "lrs: [0.01, -0.1]").replace("epochs: 4", "epochs: 4\nbatchsize: 3")
    with pytest.raises(InputError) as exc:
        parse_experiment(bad, "exp.yaml")
    probs = {p.field: p for p in exc.value.problems}
    assert probs["lrs.1"].line == 7 and probs["lrs.1"].path == "exp.yaml"
    assert probs["batchsize"].line == 5
    assert "exp.yaml:7: [lrs.1]" in str(exc.value)


def test_off_grid_sparsity_and_unknown_arch_are_errors():
    with pytest.raises(InputError) as exc:
        parse_experiment(GOOD.replace("[0.36, 0.59]", "[0.36, 0.6]"), "x.yaml")
    (p,) = exc.value.problems
    assert p.field == "sparsities.1" and p.line == 9 and "IMP grid" in p.reason
    with pytest.raises(InputError) as exc:
        parse_experiment(GOOD.replace("arch: mlp", "arch: resnet20"), "x.yaml")
    assert exc.value.problems[0].field == "arch" and exc.value.problems[0].line == 2
    with pytest.raises(InputError) as exc:
        parse_experiment("name: [unclosed\n", "x.yaml")
    assert exc.value.problems[0].line is not None


def test_plan_imp_chain_and_dependencies():
    exp = parse_experiment(GOOD, "e.yaml")
    plan = make_plan(exp)
    stages = [s for s, _ in plan.stages]
    assert stages == ["pretrain", "imp-1", "imp-2", "imp-3", "imp-4", "lt-omp", "rr-imp", "wr-omp",
                      "sdt-s0.36", "sdt-s0.59"]
    ids = plan.by_id()
    r = ids[make_run_id("e", "mlp", "lt-imp", 0.5904, 0.1, 1)]
    assert r.deps[0] == make_run_id("e", "mlp", "lt-imp", 0.488, 0.1, 1)  # mask from the same lr and seed
    assert r.run_id == "e/mlp-lt-imp-s0.59-lr0.1-seed1"
    wr = ids["e/mlp-wr-omp-s0.59-lr0.01-seed0"]
    assert wr.epochs == 3 and wr.rewind_epoch == 1 and wr.setting is Setting.WR_OMP
    assert all(len(runs) % 4 == 0 for _, runs in plan.stages)  # every (lr, seed) of a stage goes together
    assert len({r.run_id for r in plan.runs}) == len(plan.runs)


def test_plan_command_output(tmp_path, capsys, write_exp):
    path = write_exp(tmp_path, lrs=[0.05, 0.1])
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "[pretrain] 2 runs, 0 done" in out
    assert "todo  tiny/mlp-lt-imp-s0.36-lr0.05-seed0" in out
    assert out.strip().endswith("epochs left")
    assert "18 runs, 0 done, 18 to train" in out
    exp = load_experiment(path)
    assert exp.out_path == tmp_path / "tiny.jsonl"


def test_plan_command_reports_bad_file(tmp_path, capsys, write_exp):
    path = write_exp(tmp_path, sparsities=[0.5])
    assert main(["plan", str(path)]) == 2
    assert "sparsities.0" in capsys.readouterr().err
