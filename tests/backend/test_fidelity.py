"""Done-when check of issue 14: ResNet-20 trained by the scheduler on a CIFAR-10 tree in the real format
(through the real loader) starts from the paper's initialisation and records every R_p pairing."""

import pytest
import torch
from torch import nn

from lth_audit.backend.experiment import load_experiment
from lth_audit.backend.models import build_model
from lth_audit.backend.scheduler import run_experiment
from lth_audit.store import RecordStore


def kaiming_fan_out_std(w: torch.Tensor) -> float:
    return (2.0 / (w.shape[0] * w[0, 0].numel())) ** 0.5


@pytest.mark.slow
def test_resnet20_on_a_cifar_tree_starts_from_the_papers_init_and_records_r_p(tmp_path, write_exp, write_cifar):
    write_cifar(tmp_path / "data", n_train=250, n_test=100)
    exp = load_experiment(write_exp(tmp_path, "rn20", arch="resnet20", dataset="cifar10", recipe="cifar",
                                    data_root="data", epochs=1, batch_size=50, lrs=[0.05], seeds=[0],
                                    settings=["pretrain", "lt-omp", "rr-omp"], sparsities=[0.59]))
    summary = run_experiment(exp, device="cpu", quiet=True)
    assert len(summary.trained) == 3

    # θ0 as recorded in the init checkpoint: every conv kaiming-normal fan_out, BN (1, 0), classifier as built
    theta0 = torch.load(exp.ckpt_dir / "init" / "seed0.pt", weights_only=True)
    template = build_model("resnet20", "cifar10", device="meta")
    convs = [f"{n}.weight" for n, m in template.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 21                     # stem, 18 block convs, 2 downsample convs
    for name in convs:
        assert float(theta0[name].std()) == pytest.approx(kaiming_fan_out_std(theta0[name]), rel=0.15), name
    assert float(theta0["layer1.0.conv1.weight"].std()) == pytest.approx(0.118, abs=0.006)
    default = build_model("resnet20", "cifar10", seed=0, init="pytorch").state_dict()
    assert float(default["layer1.0.conv1.weight"].std()) == pytest.approx(0.048, abs=0.003)
    bns = [n for n, m in template.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(theta0[f"{n}.weight"] == 1) and torch.all(theta0[f"{n}.bias"] == 0) for n in bns)

    recs = {r.setting.value: r for r in RecordStore(exp.out_path).load()}
    assert all(r.meta["init"] == "kaiming-fan-out" and r.meta["dense_layers"] == ["conv1.weight", "fc.weight"]
               for r in recs.values())
    assert recs["pretrain"].r_p.dense is not None
    lt, rr = recs["lt-omp"].r_p, recs["rr-omp"].r_p
    assert None not in (lt.init, lt.init_pretrained, rr.reinit, rr.reinit_pretrained)
    assert (lt.reinit, lt.reinit_pretrained, rr.init, rr.init_pretrained) == (None,) * 4
    # after one epoch at a small lr the ticket's weights still echo θ0 (R_p well above p = 0.1); the
    # reinit shares nothing with the pretrained network beyond chance
    assert lt.init > 0.5 and lt.init_pretrained > 0.5
    assert rr.reinit_pretrained < 0.3
