"""The paper's Figure 1 numbers (ResNet-20, CIFAR-10) under the rigorous definition."""

from __future__ import annotations

from lth_audit.audit import audit_claim

from .factories import cifar10, claim, grid

FIG1 = {("pretrain", 0.005): 89.6, ("pretrain", 0.1): 92.3, ("lt-imp", 0.005): 87.4, ("rr-imp", 0.005): 82.9}


def test_figure1_160_epochs_gives_no_ticket():
    r = audit_claim(claim("none", sparsity=0.914, arch="resnet20"), grid(FIG1, sparsity=0.914, arch="resnet20"),
                    cifar10())
    assert (r.verdict, r.outcome) == ("none", "passed")
    four = next(c for c in r.conditions if c.id == 4)
    assert four.status.value == "fail" and four.margin == -1.7  # 87.4 - (89.6 - 0.5)


def test_figure1_78_epoch_recipe_fails_condition1():
    values = {("pretrain", 0.005): 88.0, ("lt-imp", 0.005): 87.9, ("rr-imp", 0.005): 84.0, ("sdt", 0.005): 85.0}
    r = audit_claim(claim("secondary", sparsity=0.914, arch="resnet20"),
                    grid(values, sparsity=0.914, arch="resnet20", epochs=78), cifar10())
    one = next(c for c in r.conditions if c.id == 1)
    assert one.status.value == "fail" and one.observed["epochs"] == 78
    assert r.verdict in ("none", "insufficient-evidence") and r.outcome == "failed"
    assert 1 in r.failing
