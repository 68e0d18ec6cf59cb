"""Streaming ImageFolder data (stream.py): loading, training through train_one, determinism, the scheduler."""

import json

import pytest
import torch
from PIL import Image

from lth_audit.backend.data import load_dataset, load_stream
from lth_audit.backend.experiment import load_experiment
from lth_audit.backend.models import build_model
from lth_audit.backend.pruning import omp_mask, prunable_names
from lth_audit.backend.recipes import PRESETS
from lth_audit.backend.scheduler import run_experiment
from lth_audit.backend.stream import StreamData
from lth_audit.backend.train import train_many, train_one
from lth_audit.backend.jobs import TrainSpec

CLASSES = ("a", "b", "c")


def _tree(root, n_train=6, n_val=2, size=32):
    """3 classes x n_train PNGs (noise around a class colour) under train/, n_val each under val/."""
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for k, c in enumerate(CLASSES):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = torch.zeros(size, size, 3)
                base[..., k] = 200
                px = (base + torch.randint(0, 50, (size, size, 3), generator=g)).clamp(0, 255).to(torch.uint8)
                Image.fromarray(px.numpy()).save(root / split / c / f"{c}{i}.png")
    return root


def _spec(seed=0, epochs=1, mask=None, model=None):
    r = PRESETS["imagenet"].override(batch_size=4, epochs=2, warmup_epochs=0)
    model = model or build_model("mobilenet-v1", "imagenet", 0.1, seed=seed)
    return TrainSpec(model, 0.05, seed, r, epochs, mask=mask)


def _order(data: StreamData, seed: int, epoch: int, bs: int = 4):
    loader = data.train_loader(bs, seed)
    return [(x.clone(), y.clone()) for x, y in data.epoch_batches(loader, epoch)]


def test_stream_loads_image_folder_at_a_small_size(tmp_path):
    d = load_dataset("imagenet", _tree(tmp_path), in_memory=False, image_size=24, num_workers=0)
    assert isinstance(d, StreamData) and d.n_train == 18 and len(d.test) == 6 and d.num_classes == 1000
    x, y = next(iter(d.batches(d.test_loader())))
    assert x.shape == (6, 3, 24, 24) and y.tolist() == [0, 0, 1, 1, 2, 2]
    assert x[0, 0].mean() > 0 > x[0, 2].mean()   # class "a" is red: normalised channel 0 high, 2 low
    with pytest.raises(ValueError, match="ImageFolder"):
        load_stream("cifar10", tmp_path)


def test_stream_order_and_augmentation_follow_seed_and_epoch(tmp_path):
    d = load_stream("imagenet", _tree(tmp_path), image_size=16, num_workers=0)
    a, b = _order(d, 0, 3), _order(d, 0, 3)
    assert [y.tolist() for _, y in a] == [y.tolist() for _, y in b]
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b))     # augmentation too
    assert len(a) == 5 and a[-1][1].shape == (2,)                           # ceil(18 / 4), last partial
    # the order is TensorData's permutation of the same (seed, epoch)
    from lth_audit.backend.jobs import epoch_generator
    perm = torch.randperm(18, generator=epoch_generator(0, 3))
    labels = torch.tensor([i // 6 for i in range(18)])
    assert torch.cat([y for _, y in a]).tolist() == labels[perm].tolist()
    other = _order(d, 0, 4)
    assert torch.cat([y for _, y in other]).tolist() != torch.cat([y for _, y in a]).tolist() \
        or not all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, other))
    # workers do not change a thing: per-sample seeds, not worker RNG
    w = _order(load_stream("imagenet", tmp_path, image_size=16, num_workers=2), 0, 3)
    assert all(torch.equal(xa, xw) and torch.equal(ya, yw) for (xa, ya), (xw, yw) in zip(a, w))


def test_train_one_on_stream_keeps_masks_and_is_deterministic(tmp_path):
    torch.set_num_threads(1)
    d = load_stream("imagenet", _tree(tmp_path), image_size=32, num_workers=0)
    model = build_model("mobilenet-v1", "imagenet", 0.1, seed=0)
    names = prunable_names(model, ["conv1", "fc"])
    mask = omp_mask({k: v.detach() for k, v in model.state_dict().items()}, names, 0.5)
    out = train_one(_spec(mask=mask, model=model), d)
    assert out.epochs_run == 1 and len(out.curve) == 1 and not out.diverged and 0.0 <= out.top1 <= 100.0
    for n, m in mask.items():
        assert torch.all(out.state[n][m == 0] == 0)
    assert any(not torch.equal(out.state[n], model.state_dict()[n]) for n in names)   # it trained
    again = train_one(_spec(mask=mask, model=model), d)
    assert all(torch.equal(out.state[k], again.state[k]) for k in out.state)
    # train_many with batched=True falls back to train_one for streamed data
    many = train_many([_spec(mask=mask, model=model), _spec(seed=1)], d, batched=True)
    assert all(torch.equal(out.state[k], many[0].state[k]) for k in out.state)


def test_experiment_streams_imagenet_by_default_and_in_memory_overrides(tmp_path, write_exp):
    e = load_experiment(write_exp(tmp_path, arch="mobilenet-v1", dataset="imagenet", recipe="imagenet"))
    assert not e.data_in_memory
    m = load_experiment(write_exp(tmp_path, "m", arch="mobilenet-v1", dataset="imagenet", recipe="imagenet",
                                  in_memory=True))
    assert m.data_in_memory and m.config_hash() != e.config_hash()
    t = load_experiment(write_exp(tmp_path, "t", arch="mobilenet-v1", dataset="tiny-imagenet"))
    assert t.data_in_memory
    from lth_audit.records import InputError
    with pytest.raises(InputError, match="in_memory"):
        load_experiment(write_exp(tmp_path, "bad", in_memory=False))       # mnist1d never streams


def test_runner_end_to_end_on_streamed_data(tmp_path, write_exp):
    _tree(tmp_path / "data", n_train=4, n_val=1, size=32)
    path = write_exp(tmp_path, "st", arch="mobilenet-v1", dataset="imagenet", recipe="imagenet", width=0.1,
                     data_root="data", in_memory=False, loader_workers=0, epochs=1, batch_size=6,
                     warmup_epochs=0, settings=["pretrain", "lt-omp"], sparsities=[0.2], lrs=[0.01])
    exp = load_experiment(path)
    summary = run_experiment(exp, device="cpu", quiet=True, batched=True)
    assert len(summary.trained) == 2 and not summary.diverged
    recs = [json.loads(line) for line in (tmp_path / "st.jsonl").read_text().splitlines()]
    assert sorted(r["setting"] for r in recs) == ["lt-omp", "pretrain"]
    assert all(r["meta"]["trainer"] == "single" and r["dataset"] == "imagenet" for r in recs)
    assert run_experiment(exp, device="cpu", quiet=True).skipped == 2      # resume: nothing left to do


def test_tiny_imagenet_streams_with_its_val_layout(tmp_path):
    for i, c in enumerate(("n01", "n02")):
        for j in range(2):
            (tmp_path / "train" / c / "images").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64, 64), (255, 0, 0) if i == 0 else (0, 0, 255)).save(
                tmp_path / "train" / c / "images" / f"{c}_{j}.JPEG")
    (tmp_path / "val" / "images").mkdir(parents=True)
    Image.new("RGB", (64, 64), (0, 0, 255)).save(tmp_path / "val" / "images" / "v0.JPEG")
    (tmp_path / "val" / "val_annotations.txt").write_text("v0.JPEG\tn02\t0\t0\t63\t63\n")
    d = load_dataset("tiny-imagenet", tmp_path, in_memory=False, num_workers=0)
    assert d.augment == "crop-flip" and d.image_size == 64 and d.num_classes == 200
    x, y = next(iter(d.batches(d.test_loader())))
    assert x.shape == (1, 3, 64, 64) and y.tolist() == [1]
    xb, yb = next(iter(_order(d, 0, 0)))
    assert xb.shape == (4, 3, 64, 64) and sorted(yb.tolist()) == [0, 0, 1, 1]


def test_streamed_mixup_draws_follow_the_samplers_draws(tmp_path, monkeypatch):
    """jobs.py: on streamed data the mixup draws of an epoch follow the sampler's permutation and N seeds."""
    import lth_audit.backend.stream as stream
    from lth_audit.backend.jobs import epoch_generator
    from lth_audit.backend.augment import mixup_draws
    from lth_audit.backend.train import _Batches

    d = load_stream("imagenet", _tree(tmp_path), image_size=16, num_workers=0)
    made = []

    def spy(seed, epoch):
        made.append(epoch_generator(seed, epoch))
        return made[-1]

    monkeypatch.setattr(stream, "epoch_generator", spy)
    stream.EpochSampler(d.n_train, 0, 3).order()
    want = [mixup_draws(made[0], b, 0.2) for b in (4, 4, 4, 4, 2)]     # 18 samples in batches of 4
    got = [mix for _, _, mix in _Batches(d, 0, 4, torch.device("cpu"), mixup=0.2).epoch(3)]
    assert [m[0] for m in got] == [m[0] for m in want]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(got, want))
