import copy
import math

import pytest
import torch

from lth_audit.backend.data import load_mnist1d
from lth_audit.backend.jobs import TensorData, TrainSpec
from lth_audit.backend.models import build_model, entry
from lth_audit.backend.pruning import omp_mask, prunable_names
from lth_audit.backend.recipes import recipe
from lth_audit.backend.augment import augment_batch
from lth_audit.backend.train import train_many, train_one


@pytest.fixture(scope="module")
def small():
    d = load_mnist1d()
    return TensorData(d.x_train[:600], d.y_train[:600], d.x_test[:300], d.y_test[:300], 10, "shift")


def test_pruned_weights_stay_exactly_zero_under_momentum_and_weight_decay(small):
    model = build_model("mlp", "mnist1d", seed=0)
    names = prunable_names(model, entry("mlp").dense)
    mask = omp_mask(model.state_dict(), names, 0.8)
    r = recipe("mnist1d", epochs=3, weight_decay=5e-2, momentum=0.99, nesterov=True, batch_size=50)
    out = train_one(TrainSpec(model, 0.1, 0, r, 3, mask=mask, keep_epochs=(0, 1)), small)
    for n in names:
        assert torch.all(out.state[n][mask[n] == 0] == 0)
        assert torch.all(out.kept[1][n][mask[n] == 0] == 0)
        assert torch.all(out.kept[0][n][mask[n] == 0] == 0)
        assert torch.count_nonzero(out.state[n][mask[n] == 1]) > 0
    # dense layers and biases did train
    assert not torch.equal(out.state["fc.weight"], model.state_dict()["fc.weight"])
    assert not out.diverged and out.epochs_run == 3 and len(out.curve) == 3
    assert out.best_top1 == max(out.curve) and out.top1 == out.curve[-1]


def test_cpu_training_is_bit_reproducible_and_spec_untouched(small):
    model = build_model("resnet1d", "mnist1d", seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = TrainSpec(model, 0.05, 7, recipe("mnist1d", epochs=2), 2)
    a, b = train_one(spec, small), train_one(spec, small)
    assert a.curve == b.curve
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)


def test_divergence_stops_and_measures(small):
    model = build_model("mlp", "mnist1d", seed=0)
    out = train_one(TrainSpec(model, 1e8, 0, recipe("mnist1d", epochs=3), 3), small)
    assert out.diverged and out.epochs_run == 1
    assert 0.0 <= out.top1 <= 100.0 and math.isfinite(out.top1)


def test_train_many_falls_back_to_single(small, monkeypatch):
    def refuse(specs, data, device):
        raise NotImplementedError("no batched form for this model")

    try:  # the batched trainer is optional; when present, make it refuse this group
        import lth_audit.backend.batched as batched
        monkeypatch.setattr(batched, "train_batched", refuse)
    except ImportError:
        pass
    specs = [TrainSpec(build_model("mlp", "mnist1d", seed=s), 0.05, s, recipe("mnist1d", epochs=1), 1)
             for s in (0, 1)]
    seen = []
    outs = train_many(specs, small, "cpu", batched=True, on_result=lambda i, o, t: seen.append((i, t)))
    assert len(outs) == 2 and seen == [(0, "single"), (1, "single")]
    assert outs[0].curve == train_one(specs[0], small).curve


def test_augmentations_are_on_device_and_seeded():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = augment_batch(x, "crop-flip", g1), augment_batch(x, "crop-flip", g2)
    assert a.shape == x.shape and torch.equal(a, b)
    x1 = torch.arange(40.0).repeat(3, 1)
    s = augment_batch(x1, "shift", torch.Generator().manual_seed(1))
    assert s.shape == x1.shape and all(sorted(row.tolist()) == list(range(40)) for row in s)
    # crop with zero offset 4 and no flip is the identity
    g = torch.Generator().manual_seed(0)
    off = torch.randint(0, 9, (2, 2), generator=g)
    flip = torch.randint(0, 2, (2,), generator=g)
    for i in range(2):
        if off[i].tolist() == [4, 4] and flip[i] == 0:
            assert torch.equal(a[i], x[i])


def test_lr_is_set_per_iteration(small, monkeypatch):
    seen = []
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    r = recipe("mnist1d", epochs=2, schedule="cosine", batch_size=300)
    train_one(TrainSpec(build_model("mlp", "mnist1d", seed=0), 1.0, 0, r, 2), small)
    expected = [r.lr_factor(e + i / 2) for e in range(2) for i in range(2)]
    assert seen == pytest.approx(expected)


def test_label_smoothing_and_mixup_follow_the_documented_draws(small):
    """One full-batch SGD step by hand, from jobs.py's words: permutation, shift draws, then the mixup draws
    (two Gamma(α) for λ, then the partner permutation), smoothed cross-entropy written out."""
    from lth_audit.backend.jobs import epoch_generator

    model = build_model("mlp", "mnist1d", seed=0)
    eps, alpha, lr, n = 0.1, 0.4, 0.1, small.x_train.shape[0]
    r = recipe("mnist1d", epochs=1, batch_size=n, momentum=0.0, weight_decay=0.0, label_smoothing=eps, mixup=alpha)
    out = train_one(TrainSpec(model, lr, 3, r, 1), small)

    g = epoch_generator(3, 0)
    perm = torch.randperm(n, generator=g)
    x = augment_batch(small.x_train[perm], "shift", g)
    y = small.y_train[perm]
    gx, gy = torch._standard_gamma(torch.full((2,), alpha, dtype=torch.float64), generator=g).tolist()
    lam = gx / (gx + gy)
    q = torch.randperm(n, generator=g)
    ref = copy.deepcopy(model)
    logp = torch.log_softmax(ref(lam * x + (1 - lam) * x[q]), 1)

    def smoothed(t):
        return (1 - eps) * -logp.gather(1, t[:, None])[:, 0] + eps * -logp.mean(1)

    (lam * smoothed(y) + (1 - lam) * smoothed(y[q])).mean().backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= lr * p.grad
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(out.state[k], v, atol=2e-6, rtol=0)
    assert 0 < lam < 1
