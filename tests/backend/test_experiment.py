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


def _exp(arch="resnet20", dataset="cifar10", extra=""):
    return parse_experiment(f"name: x\narch: {arch}\ndataset: {dataset}\nlrs: [0.1]\nsettings: [pretrain]\n"
                            f"out: x.jsonl\n{extra}", "x.yaml")


def test_presets_are_table_c1_with_its_per_arch_fields():
    assert _exp("vgg16").recipe_obj.warmup_epochs == 75                     # "0 (75 for VGG-16)"
    assert _exp("resnet20").recipe_obj.warmup_epochs == 0
    assert _exp("vgg16", extra="warmup_epochs: 0\n").recipe_obj.warmup_epochs == 0   # the file's key wins
    assert _exp("vgg16", "tiny-imagenet").recipe_obj.warmup_epochs == 20
    r = _exp("resnet50", "imagenet").recipe_obj
    assert (r.warmup_epochs, r.label_smoothing, r.mixup, r.init) == (8, 0.1, 0.2, "paper")
    r = _exp("resnet50", "imagenet", "warmup_epochs: 5\nlabel_smoothing: 0\nmixup: 0\ninit: pytorch\n").recipe_obj
    assert (r.warmup_epochs, r.label_smoothing, r.mixup, r.init) == (5, 0.0, 0.0, "pytorch")
    with pytest.raises(InputError, match="init"):
        _exp(extra="init: xavier\n")


# Hashes of these files before `init`, `label_smoothing` and `mixup` existed (computed at 4dd05f6).
OLD_HASHES = {("resnet20", "cifar10"): "976e3144bf95",
              ("mobilenet-v1", "cifar10"): "713db0f5afbe", ("vgg16", "cifar10"): "9d823ee53766",
              ("mobilenet-v1", "imagenet"): "c71571d0533b"}


def test_config_hash_follows_what_trains():
    old = OLD_HASHES
    assert _exp("mlp", "mnist1d").config_hash() == "8edeb82e6fca"                   # the demo's arch: unchanged
    # fields left at values that do not change training keep the old hash
    assert _exp("mobilenet-v1").config_hash() == old[("mobilenet-v1", "cifar10")]   # paper init = PyTorch's
    assert _exp(extra="init: pytorch\n").config_hash() == old[("resnet20", "cifar10")]
    assert _exp(extra="init: pytorch\nlabel_smoothing: 0\nmixup: 0\n").config_hash() == old[("resnet20", "cifar10")]
    # what changes training changes it
    assert _exp().config_hash() != old[("resnet20", "cifar10")]                      # the paper's init
    assert _exp(extra="init: pytorch\nmixup: 0.2\n").config_hash() != old[("resnet20", "cifar10")]
    assert _exp("mobilenet-v1", "imagenet").config_hash() != old[("mobilenet-v1", "imagenet")]   # smoothing, mixup
    assert _exp("mobilenet-v1", "imagenet", "label_smoothing: 0\nmixup: 0\n").config_hash() == \
        old[("mobilenet-v1", "imagenet")]
    assert _exp("vgg16", extra="init: pytorch\nwarmup_epochs: 0\n").config_hash() != old[("vgg16", "cifar10")]
    # a per-arch preset field counts as written: stating the preset's value is the same experiment
    assert _exp("vgg16").config_hash() == _exp("vgg16", extra="warmup_epochs: 75\n").config_hash()
    assert _exp("vgg16").config_hash() != _exp("vgg16", extra="warmup_epochs: 0\n").config_hash()
