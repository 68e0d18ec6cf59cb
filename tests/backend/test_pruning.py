import pytest
import torch

from lth_audit.backend.models import build_model, entry
from lth_audit.backend.pruning import (dense_names, full_mask, imp_round, imp_sparsity, magnitude_prune, omp_mask,
                                       prunable_names, sparsity_of)


def test_prunable_default_excludes_stem_classifier_biases_norms():
    m = build_model("resnet20", "cifar10", device="meta")
    names = prunable_names(m, entry("resnet20").dense)
    assert "conv1.weight" not in names and "fc.weight" not in names
    assert "layer1.0.conv1.weight" in names and "layer2.0.downsample.0.weight" in names
    assert all(n.endswith(".weight") and "bn" not in n for n in names)
    assert len(names) == 20  # 18 block convs + 2 downsample convs (the paper code's ResNet-20 profile)
    mlp = build_model("mlp", "mnist1d", device="meta")
    assert prunable_names(mlp, entry("mlp").dense) == ["fc1.weight", "fc2.weight"]
    assert prunable_names(mlp, []) == ["fc1.weight", "fc2.weight", "fc.weight"]


@pytest.mark.parametrize("s", [0.2, 0.5, 0.59, 0.9, 0.956])
def test_omp_sparsity_exact(s):
    m = build_model("resnet1d", "mnist1d", seed=0)
    names = prunable_names(m, entry("resnet1d").dense)
    mask = omp_mask(m.state_dict(), names, s)
    total = sum(v.numel() for v in mask.values())
    assert sum(int((v == 0).sum()) for v in mask.values()) == round(s * total)
    # the kept weights are the largest in magnitude, globally
    w = torch.cat([m.state_dict()[n].abs().flatten() for n in names])
    keep = torch.cat([mask[n].flatten() for n in names]).bool()
    assert w[keep].min() >= w[~keep].max()


def test_imp_rounds_exact_and_nested():
    m = build_model("mlp", "mnist1d", seed=0)
    names = prunable_names(m, entry("mlp").dense)
    mask = full_mask(m, entry("mlp").dense)
    total = sum(v.numel() for v in mask.values())
    g = torch.Generator().manual_seed(0)
    for k in range(1, 15):
        state = {n: torch.randn(m.state_dict()[n].shape, generator=g) for n in names}
        new = magnitude_prune(state, mask, imp_sparsity(k))
        assert all(torch.all(new[n] <= mask[n]) for n in names)  # nested: pruned stays pruned
        remaining_before = sum(int(v.sum()) for v in mask.values())
        remaining_after = sum(int(v.sum()) for v in new.values())
        assert abs((remaining_before - remaining_after) - 0.2 * remaining_before) <= 1.0
        assert sum(int((v == 0).sum()) for v in new.values()) == round(imp_sparsity(k) * total)
        mask = new
    assert abs(sparsity_of(mask) - 0.956) < 1e-3


def test_imp_grid():
    assert [imp_round(s) for s in (0.59, 0.832, 0.914, 0.945, 0.956)] == [4, 8, 11, 13, 14]
    with pytest.raises(ValueError, match="not on the IMP grid"):
        imp_round(0.6)


def test_paper_profiles_and_the_layers_they_leave_dense():
    """ResNet-32's released profile ranks no downsample conv; ResNet-20's, ResNet-18's and ResNet-50's do."""
    m = build_model("resnet32", "cifar10", device="meta")
    assert dense_names(m, entry("resnet32").dense) == ["conv1.weight", "layer2.0.downsample.0.weight",
                                                        "layer3.0.downsample.0.weight", "fc.weight"]
    assert len(prunable_names(m, entry("resnet32").dense)) == 30              # 15 blocks x 2 convs
    r20 = build_model("resnet20", "cifar10", device="meta")
    assert dense_names(r20, entry("resnet20").dense) == ["conv1.weight", "fc.weight"]
    r50 = build_model("resnet50", "imagenet", device="meta")
    names = prunable_names(r50, entry("resnet50").dense)
    assert "layer1.0.downsample.0.weight" in names and len(names) == 52      # the released resnet_global.yaml
    assert dense_names(build_model("mlp", "mnist1d", device="meta"), entry("mlp").dense) == ["fc.weight"]
