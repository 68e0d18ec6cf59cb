"""The batched trainer gives what train_one gives, run by run, and keeps runs apart."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lth_audit.backend.batched import _Batched, _GemmConv1d, _tap_sum_fits, train_batched
from lth_audit.backend.data import load_mnist1d
from lth_audit.backend.jobs import TensorData, TrainOutcome, TrainSpec
from lth_audit.backend.models import build_model
from lth_audit.backend.recipes import recipe
from lth_audit.backend.train import train_many, train_one


@pytest.fixture(scope="module")
def mnist1d() -> TensorData:
    d = load_mnist1d()
    return TensorData(d.x_train[:1200], d.y_train[:1200], d.x_test[:500], d.y_test[:500], 10)


def as_dtype(data: TensorData, dtype: torch.dtype, augment: str) -> TensorData:
    return TensorData(data.x_train.to(dtype), data.y_train, data.x_test.to(dtype), data.y_test,
                      data.num_classes, augment)


def specs_for(arch: str, lrs, seeds, dtype=torch.float32, **kw) -> list[TrainSpec]:
    rc = kw.pop("rc", recipe("mnist1d", epochs=2))
    return [TrainSpec(build_model(arch, "mnist1d", seed=s).to(dtype), lr=lr, seed=s, recipe=rc,
                      epochs=kw.get("epochs", 2), **{k: v for k, v in kw.items() if k != "epochs"})
            for lr in lrs for s in seeds]


def assert_same(a: TrainOutcome, b: TrainOutcome, atol: float) -> None:
    assert a.curve == pytest.approx(b.curve, abs=1e-4)
    assert a.top1 == pytest.approx(b.top1, abs=1e-4)
    assert a.best_top1 == pytest.approx(b.best_top1, abs=1e-4)
    assert (a.diverged, a.epochs_run) == (b.diverged, b.epochs_run)
    assert list(a.state) == list(b.state)
    for k in b.state:
        assert a.state[k].dtype == b.state[k].dtype and a.state[k].device.type == "cpu"
        torch.testing.assert_close(a.state[k], b.state[k], atol=atol, rtol=0)
    assert sorted(a.kept) == sorted(b.kept)
    for e in b.kept:
        for k in b.kept[e]:
            torch.testing.assert_close(a.kept[e][k], b.kept[e][k], atol=atol, rtol=0)
    assert (a.best_state is None) == (b.best_state is None)
    for k in b.best_state or {}:
        torch.testing.assert_close(a.best_state[k], b.best_state[k], atol=atol, rtol=0)


def check_equivalent(specs: list[TrainSpec], data: TensorData, atol: float) -> list[TrainOutcome]:
    before = [copy.deepcopy(s.model.state_dict()) for s in specs]
    outs = train_batched(specs, data, "cpu")
    for s, o, sd in zip(specs, outs, before):
        assert_same(o, train_one(s, data, "cpu"), atol)
        for k, v in s.model.state_dict().items():   # the spec's model is left alone
            assert torch.equal(v, sd[k])
    return outs


def test_mlp_matches_train_one(mnist1d):
    specs = specs_for("mlp", (0.01, 0.1), (0, 1), keep_epochs=(0, 1), keep_best=True)
    check_equivalent(specs, mnist1d, atol=1e-5)


def test_cnn1d_with_shift_matches_train_one(mnist1d):
    rc = recipe("mnist1d", epochs=2, schedule="cosine", warmup_epochs=1, nesterov=True)
    specs = specs_for("cnn1d", (0.02, 0.2), (0, 3), rc=rc)
    specs[1].schedule_offset = 1        # offsets may differ per run
    check_equivalent(specs, as_dtype(mnist1d, torch.float32, "shift"), atol=1e-5)


def test_batchnorm_model_matches_train_one(mnist1d):
    """resnet1d: BatchNorm statistics per run. float64: BN reductions over R*C channels round differently in fp32."""
    specs = specs_for("resnet1d", (0.05, 0.5), (0, 1), dtype=torch.float64, keep_epochs=(1,))
    outs = check_equivalent(specs, as_dtype(mnist1d, torch.float64, "shift"), atol=1e-9)
    means = [o.state["layer2.bn1.running_mean"] for o in outs]
    assert not torch.equal(means[0], means[1])          # each run has its own statistics
    assert int(outs[0].state["bn1.num_batches_tracked"]) == 2 * 12


MIXED = {"label_smoothing": 0.1, "mixup": 0.2}
"""The imagenet preset's label smoothing and mixup."""


def test_label_smoothing_and_mixup_match_train_one_run_major(mnist1d):
    """Run-major rows (mlp): per-run λ and partners, shift draws before mixup draws, a partial last batch."""
    rc = recipe("mnist1d", epochs=2, batch_size=128, **MIXED)
    specs = specs_for("mlp", (0.02, 0.2), (0, 1), rc=rc, keep_best=True)
    specs[3].schedule_offset = 1
    outs = check_equivalent(specs, as_dtype(mnist1d, torch.float32, "shift"), atol=1e-5)
    plain = train_one(specs_for("mlp", (0.02,), (0,), rc=recipe("mnist1d", epochs=2, batch_size=128))[0],
                      as_dtype(mnist1d, torch.float32, "shift"))
    assert not torch.equal(plain.state["fc1.weight"], outs[0].state["fc1.weight"])   # the fields did change training


@pytest.mark.parametrize("extra", [{}, MIXED], ids=["plain", "smoothing+mixup"])
def test_conv2d_batchnorm_crop_flip_matches_train_one(extra):
    """Sample-major rows (grouped convolutions, BatchNorm over R*C channels), 4-D inputs, last batch partial."""
    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.randn(96, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 4, (96,), generator=g),
                      torch.randn(40, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 4, (40,), generator=g),
                      4, "crop-flip")
    rc = recipe("cifar", epochs=2, batch_size=40, **extra)
    specs = []
    for i, lr in enumerate((0.01, 0.1, 0.3)):
        torch.manual_seed(i)
        net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                            nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=2), nn.BatchNorm2d(6), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4)).double()
        specs.append(TrainSpec(net, lr=lr, seed=i, recipe=rc, epochs=2, keep_best=True))
    check_equivalent(specs, data, atol=1e-9)



class _Strides1d(nn.Module):
    """Plain Conv1d stack (the im2col path) with stride 1, stride above the kernel, and padding 2."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv1d(1, 4, 3, 1, 1), nn.Conv1d(4, 4, 2, 3, 0, bias=False)
        self.c, self.fc = nn.Conv1d(4, 3, 5, 2, 2), nn.Linear(3 * 7, 10)

    def forward(self, x):
        x = torch.relu(self.b(torch.relu(self.a(x.view(x.shape[0], 1, -1)))))
        return self.fc(torch.relu(self.c(x)).flatten(1))


def test_im2col_convolutions_of_every_stride_match_train_one(mnist1d):
    rc = recipe("mnist1d", epochs=2)
    specs = []
    for i, lr in enumerate((0.02, 0.2)):
        torch.manual_seed(i)
        specs.append(TrainSpec(_Strides1d().double(), lr=lr, seed=i, recipe=rc, epochs=2))
    assert _Batched(specs, torch.device("cpu")).runs_first      # the im2col path, not grouped convolutions
    check_equivalent(specs, as_dtype(mnist1d, torch.float64, "shift"), atol=1e-9)


@pytest.mark.parametrize("k,s,p,length", [(5, 2, 1, 40), (3, 2, 1, 19), (3, 2, 1, 10), (3, 1, 1, 7),
                                           (2, 3, 0, 11), (5, 2, 2, 14), (1, 4, 0, 9), (3, 1, 4, 3), (4, 2, 3, 6),
                                           (2, 2, 0, 10), (1, 1, 0, 5)])
@pytest.mark.parametrize("channels", [2, 8])
@pytest.mark.parametrize("channels_last", [True, False])
def test_gemm_convolution_and_its_gradients_are_those_of_conv1d(k, s, p, length, channels, channels_last):
    """Forward against F.conv1d run by run, backward against numerical gradients (fp64), every tap geometry:
    windows that reach the padding on either side, taps that skip inputs (s > k), padding wider than a tap;
    with 8 channels the geometries where a tap sum fits take that path."""
    runs, n, cout = 2, 3, 3
    g = torch.Generator().manual_seed(k * 100 + s * 10 + p)
    x = torch.randn(runs * n, length, channels, generator=g, dtype=torch.float64)
    x = x.transpose(1, 2) if channels_last else x.transpose(1, 2).contiguous()
    w = torch.randn(runs, cout, channels, k, generator=g, dtype=torch.float64)
    b = torch.randn(runs, cout, generator=g, dtype=torch.float64)
    want = torch.cat([torch.nn.functional.conv1d(x[r * n:(r + 1) * n], w[r], b[r], s, p) for r in range(runs)])
    torch.testing.assert_close(_GemmConv1d.apply(x, w, b, s, p), want)
    inputs = tuple(t.clone().requires_grad_(True) for t in (x, w, b))
    assert torch.autograd.gradcheck(lambda *a: _GemmConv1d.apply(*a, s, p), inputs)


@pytest.mark.parametrize("k,s,p,length,channels", [(3, 2, 1, 19, 8), (5, 2, 1, 40, 1)])
def test_gemm_convolution_runs_in_one_low_precision_dtype(k, s, p, length, channels):
    """What CUDA autocast hands the function (cast_inputs): every input in bf16. Both forms, including the
    tap sum's in-place and out= products, must run and give conv1d's result at bf16 precision."""
    runs, n, cout = 2, 4, 5
    g = torch.Generator().manual_seed(7)
    x = torch.randn(runs * n, channels, length, generator=g).bfloat16().requires_grad_(True)
    w = torch.randn(runs, cout, channels, k, generator=g).bfloat16().requires_grad_(True)
    b = torch.randn(runs, cout, generator=g).bfloat16().requires_grad_(True)
    out = _GemmConv1d.apply(x, w, b, s, p)
    want = torch.cat([torch.nn.functional.conv1d(x[r * n:(r + 1) * n].float(), w[r].float(), b[r].float(), s, p)
                      for r in range(runs)])
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), want, atol=0.1, rtol=0.02)
    out.float().square().sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == torch.bfloat16
    assert all(bool(t.grad.isfinite().all()) and t.grad.abs().sum() > 0 for t in (x, w, b))


def test_the_tap_sum_takes_exactly_the_geometries_whose_windows_fit():
    assert _tap_sum_fits(3, 2, 1, 19, 25)          # cnn1d's conv2
    assert _tap_sum_fits(2, 2, 0, 10, 8) and _tap_sum_fits(1, 1, 0, 5, 8)
    assert not _tap_sum_fits(3, 2, 1, 19, 2)       # too few channels: each tap's product reduces over Cin
    assert not _tap_sum_fits(3, 2, 1, 10, 25)      # conv3: front pad + 10 positions exceed s * Lout = 10
    assert not _tap_sum_fits(5, 2, 1, 40, 25)      # kernel longer than stride + padding
    assert not _tap_sum_fits(3, 1, 1, 7, 25)       # 'same' stride-1 convolution: one position short


def test_gradients_land_in_the_flat_stack_or_training_stops_loudly(mnist1d):
    bt = _Batched(specs_for("mlp", (0.1, 0.2), (0,)), torch.device("cpu"))
    x = mnist1d.x_train[:8].repeat(2, 1)
    bt.net(x).sum().backward()
    bt.stack.check_grads()
    assert bt.stack.grad.abs().sum() > 0 and bt.stack.grad.data_ptr() == bt.stack.grad_views[0].data_ptr()
    bt.stack.views[0].grad = torch.zeros_like(bt.stack.views[0])      # what a replaced .grad would look like
    with pytest.raises(RuntimeError, match="replaced a parameter's .grad"):
        bt.stack.check_grads()

def test_masks_keep_pruned_weights_exactly_zero(mnist1d):
    specs = specs_for("mlp", (0.05, 0.2), (0,), keep_epochs=(1,), keep_best=True)
    g = torch.Generator().manual_seed(5)
    for s in specs:
        s.mask = {"fc1.weight": (torch.rand(s.model.fc1.weight.shape, generator=g) < 0.3).float(),
                  "fc2.weight": (torch.rand(s.model.fc2.weight.shape, generator=g) < 0.5).float()}
    outs = check_equivalent(specs, mnist1d, atol=1e-5)
    for s, o in zip(specs, outs):
        for state in (o.state, o.kept[1], o.best_state):
            for name, m in s.mask.items():
                assert torch.all(state[name][m == 0] == 0)
                assert torch.all(state[name][m == 1] != 0)


def test_diverging_run_leaves_batch_mates_alone(mnist1d):
    specs = specs_for("cnn1d", (0.05, 1e5, 0.1), (0,), epochs=3)
    sane = [specs[0], specs_for("cnn1d", (0.01,), (0,), epochs=3)[0], specs[2]]
    outs, calm = train_batched(specs, mnist1d, "cpu"), train_batched(sane, mnist1d, "cpu")
    assert outs[1].diverged and outs[1].epochs_run == 1 and len(outs[1].curve) == 1
    assert not outs[0].diverged and not outs[2].diverged
    for i in (0, 2):                    # bit for bit what they give beside a sane run
        assert_same(outs[i], calm[i], atol=0.0)
    ref = train_one(specs[1], mnist1d, "cpu")
    assert (ref.diverged, ref.epochs_run, ref.curve) == (outs[1].diverged, outs[1].epochs_run, outs[1].curve)
    assert all(torch.isfinite(v).all() for v in outs[1].state.values())   # weights from before the bad step


def test_train_many_uses_the_batched_trainer(mnist1d):
    specs = specs_for("mlp", (0.05,), (0, 1))
    many = train_many(specs, mnist1d, "cpu", batched=True)
    for a, b in zip(many, train_batched(specs, mnist1d, "cpu")):
        assert_same(a, b, atol=0.0)


def test_unsupported_modules_raise_not_implemented(mnist1d):
    rc = recipe("mnist1d", epochs=1)
    for net in (nn.Sequential(nn.Linear(40, 8), nn.LayerNorm(8), nn.Linear(8, 10)),
                nn.Sequential(nn.Linear(40, 8), nn.Dropout(0.5), nn.Linear(8, 10))):
        with pytest.raises(NotImplementedError):
            train_batched([TrainSpec(net, 0.1, 0, rc, 1), TrainSpec(copy.deepcopy(net), 0.1, 1, rc, 1)], mnist1d)


def test_mixed_groups_are_refused(mnist1d):
    a, b = specs_for("mlp", (0.1,), (0, 1))
    with pytest.raises(ValueError, match="recipe"):
        train_batched([a, TrainSpec(b.model, 0.1, 1, recipe("mnist1d", epochs=3), 2)], mnist1d)
    with pytest.raises(ValueError, match="architecture or width"):
        train_batched([a, TrainSpec(build_model("mlp", "mnist1d", width=0.5), 0.1, 1, a.recipe, 2)], mnist1d)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet20", "mobilenet-v1"])
def test_registry_cifar_models_match_train_one(arch):
    """ResNet-20 (BatchNorm, 1x1-conv shortcuts) and MobileNet-v1 (depthwise) at width 0.25, float64."""
    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.randn(128, 3, 32, 32, generator=g, dtype=torch.float64),
                      torch.randint(0, 10, (128,), generator=g),
                      torch.randn(64, 3, 32, 32, generator=g, dtype=torch.float64),
                      torch.randint(0, 10, (64,), generator=g), 10, "crop-flip")
    rc = recipe("cifar", epochs=1, batch_size=32)
    specs = [TrainSpec(build_model(arch, "cifar10", width=0.25, seed=s).double(), lr=lr, seed=s, recipe=rc, epochs=1)
             for s, lr in ((0, 0.05), (1, 0.2))]
    check_equivalent(specs, data, atol=1e-9)
