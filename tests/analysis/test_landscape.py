import json

import pytest
import torch
import torch.nn.functional as F
import yaml

from lth_audit.cli import main as analysis_main
from lth_audit.analysis.landscape import (GridSpec, LossEvaluator, Trajectory, direction_names, landscape,
                                          pca_plane)
from lth_audit.backend.experiment import load_experiment
from lth_audit.backend.models import build_model
from lth_audit.backend.scheduler import run_experiment
from lth_audit.store import RecordStore


def _trajectory(arch="resnet1d", n=6, masked=True, mask_states=True, seed=0):
    """A fake trajectory: a random walk from θ0 to θT; with `masked`, half of every conv weight pruned."""
    g = torch.Generator().manual_seed(seed)
    model = build_model(arch, "mnist1d", seed=seed)
    s0 = {k: v.clone() for k, v in model.state_dict().items()}
    mask = None
    if masked:
        mask = {n: (torch.rand(p.shape, generator=g) > 0.5).float()
                for n, p in model.named_parameters() if p.dim() > 1 and n not in ("conv1.weight", "fc.weight")}
    states, cur = [], s0
    for _ in range(n):
        nxt = {}
        for k, v in cur.items():
            if v.is_floating_point():
                nxt[k] = v + 0.05 * torch.randn(v.shape, generator=g) * (v.abs().mean() + 0.1)
            else:
                nxt[k] = v.clone()
        for k in ("running_var",):
            for name in nxt:
                if name.endswith(k):
                    nxt[name] = nxt[name].abs() + 0.5
        if mask and mask_states:
            for name, m in mask.items():
                nxt[name] = nxt[name] * m
        states.append(nxt)
        cur = nxt
    return model, states, mask


def _data(n=200, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 40, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("norm", ["filter", "none"])
def test_pca_directions_orthogonal_and_filter_normalised(norm):
    model, states, mask = _trajectory()
    names = direction_names(model)
    assert names and all(model.state_dict()[n].dim() > 1 for n in names)
    assert not any(n.endswith("bias") or ".bn" in n or n.startswith("bn") for n in names)  # BN / biases: no direction
    plane = pca_plane(states, states[-1], names, norm)
    v1, v2 = plane.flat()
    assert abs(float(v1 @ v2)) / float(v1.norm() * v2.norm()) < 1e-9
    assert 0 < plane.explained_variance_ratio[1] <= plane.explained_variance_ratio[0] <= 1
    assert 0 < plane.captured <= 1 + 1e-9
    final = states[-1]
    for n in names:
        for d in (plane.d1[n], plane.d2[n]):
            if mask and n in mask:
                assert torch.all(d[mask[n] == 0] == 0)          # pruned weights never move
            if norm == "filter":
                dn = d.reshape(d.shape[0], -1).norm(dim=1)
                wn = final[n].double().reshape(d.shape[0], -1).norm(dim=1)
                torch.testing.assert_close(dn, wn, rtol=1e-6, atol=1e-9)
    if norm == "none":
        assert abs(float(v1.norm()) - 1) < 1e-9 and abs(float(v2.norm()) - 1) < 1e-9
    # the final state projects to the origin, θ0 to negative coordinates
    assert plane.coords[-1] == pytest.approx((0.0, 0.0), abs=1e-12)
    assert plane.coords[0][0] < 0 and plane.coords[0][1] < 0


@pytest.mark.parametrize("bn", ["final", "batch"])
def test_grid_loss_at_origin_is_the_final_weights_loss(bn):
    model, states, mask = _trajectory()
    x, y = _data()
    final = states[-1]
    plane = pca_plane(states, final, direction_names(model))
    ev = LossEvaluator(model, final, mask, x, y, bn=bn, chunk=4)
    grid = ev.grid(plane, [-1.0, 0.0, 1.0], [-0.5, 0.0, 0.5])
    ref = build_model("resnet1d", "mnist1d", seed=0)
    ref.load_state_dict(final)
    ref.train(bn == "batch")              # batch: BN normalises with the data's own statistics
    with torch.no_grad():
        want = float(F.cross_entropy(ref(x), y))
    assert float(grid[1, 1]) == pytest.approx(want, rel=1e-5)
    assert ev.state_loss(final) == pytest.approx(want, rel=1e-5)
    assert float(grid.min()) > 0 and torch.isfinite(grid).all()
    assert float(grid.max() - grid.min()) > 1e-3          # the plane moves the loss (not one corner: it may tie)


def test_masked_weights_stay_zero_at_every_grid_point():
    # states NOT masked, so the directions do move pruned coordinates: the evaluator must re-mask them
    model, states, mask = _trajectory(mask_states=False)
    final = {k: (v * mask[k] if k in mask else v) for k, v in states[-1].items()}
    plane = pca_plane(states, final, direction_names(model), "none")
    assert any(bool((plane.d1[n][mask[n] == 0] != 0).any()) for n in mask)
    ev = LossEvaluator(model, final, mask, *_data(50))
    pts = [(a, b) for a in (-2.0, 0.3, 5.0) for b in (-1.0, 0.0, 4.0)]
    batched = ev.points(plane, pts)
    for n, m in mask.items():
        assert batched[n].shape[0] == len(pts)
        assert torch.all(batched[n][:, m == 0] == 0)
        assert bool((batched[n][:, m == 1] != 0).any())


def test_cache_hit_avoids_recomputation(tmp_path):
    model, states, mask = _trajectory(n=4)
    x, y = _data(100)
    traj = Trajectory("t/run", "run", model, [0, 1, 2, 3], states, mask, {"top1": 50.0})
    spec = GridSpec(size=5)
    made = []
    first = landscape(traj, x, y, spec, cache_dir=tmp_path, evaluator_hook=made.append)
    assert not first["from_cache"] and len(made) == 1 and made[0].forward_points == 25 + 4
    assert len(list(tmp_path.glob("*.json"))) == 1
    second = landscape(traj, x, y, spec, cache_dir=tmp_path, evaluator_hook=made.append)
    assert second["from_cache"] and len(made) == 1                # no evaluator, no forward pass
    assert second["loss"] == first["loss"] and second["trajectory"] == first["trajectory"]
    # another grid spec or other weights: a miss
    third = landscape(traj, x, y, GridSpec(size=3), cache_dir=tmp_path, evaluator_hook=made.append)
    assert not third["from_cache"] and len(made) == 2
    assert len(first["loss"]) == 5 and len(first["loss"][0]) == 5 and len(third["a"]) == 3


def _experiment(folder, **over):
    body = {"name": "traj", "arch": "mlp", "dataset": "mnist1d", "recipe": "mnist1d", "epochs": 4, "lrs": [0.05],
            "seeds": [0], "settings": ["pretrain", "lt-omp", "wr-omp"], "sparsities": [0.36], "rewind_epoch": 1,
            "trajectory_every": 2, "out": "traj.jsonl"}
    body.update(over)
    path = folder / "traj.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_trajectory_checkpoints_written_and_loadable(tmp_path):
    exp = load_experiment(_experiment(tmp_path))
    run_experiment(exp, device="cpu", quiet=True)
    recs = {r.setting.value: r for r in RecordStore(exp.out_path).load()}
    for setting, epochs in (("pretrain", [0, 2, 4]), ("lt-omp", [0, 2, 4]), ("wr-omp", [1, 3, 4])):
        meta = recs[setting].meta["trajectory"]
        assert meta["every"] == 2 and meta["epochs"] == epochs
        assert all(f.startswith(f"traj.jsonl.ckpt/{exp.training_key()}/runs/") and f.endswith(f"/traj-{e}.pt")
                   for f, e in zip(meta["files"], epochs))
        states = [torch.load(tmp_path / f, weights_only=True) for f in meta["files"]]
        assert all(isinstance(s, dict) and all(isinstance(v, torch.Tensor) for v in s.values()) for s in states)
        assert not torch.equal(states[0]["fc1.weight"], states[-1]["fc1.weight"])
    final = torch.load(exp.ckpt_dir / "runs/traj__mlp-pretrain-s0-lr0.05-seed0/final.pt",
                       weights_only=True)
    last = torch.load(tmp_path / recs["pretrain"].meta["trajectory"]["files"][-1], weights_only=True)
    assert all(torch.equal(final[k], last[k]) for k in final)
    mask = torch.load(exp.ckpt_dir / "masks/omp-s0.36-lr0.05-seed0.pt", weights_only=True)
    for f in recs["lt-omp"].meta["trajectory"]["files"]:
        s = torch.load(tmp_path / f, weights_only=True)
        assert torch.all(s["fc1.weight"][mask["fc1.weight"] == 0] == 0)


def test_no_trajectory_by_default(tmp_path):
    exp = load_experiment(_experiment(tmp_path, trajectory_every=None, settings=["pretrain"]))
    run_experiment(exp, device="cpu", quiet=True)
    assert not list(exp.ckpt_dir.rglob("traj-*.pt"))
    assert all("trajectory" not in r.meta for r in RecordStore(exp.out_path).load())


def test_landscape_command_end_to_end(tmp_path, capsys):
    path = _experiment(tmp_path, trajectory_every=1, settings=["pretrain", "lt-omp"])
    run_experiment(load_experiment(path), device="cpu", quiet=True)
    out = tmp_path / "fig.png"
    args = ["landscape", str(path), "--setting", "lt-omp", "--setting", "pretrain", "-o", str(out), "--grid", "5",
            "--samples", "500"]
    assert analysis_main(args) == 0
    assert out.is_file() and out.stat().st_size > 1000
    side = json.loads(out.with_suffix(".json").read_text())
    assert [r["info"]["setting"] for r in side["runs"]] == ["pretrain", "lt-omp"]
    r = side["runs"][1]
    assert len(r["loss"]) == 5 and r["trajectory"]["epochs"] == [0, 1, 2, 3, 4]
    assert len(list((load_experiment(path).ckpt_dir / "landscape").glob("*.json"))) == 2
    capsys.readouterr()
    assert analysis_main(args) == 0
    assert "2 from cache" in capsys.readouterr().out
    assert analysis_main(["landscape", str(path), "--setting", "sdt", "-o", str(out)]) == 2


def test_basin_areas_count_cells_and_flag_the_edge():
    from lth_audit.analysis.landscape import basin_areas

    res = {"a": [0.0, 1.0, 2.0], "b": [0.0, 0.5, 1.0],
           "loss": [[5.0, 5.0, 5.0], [5.0, 0.05, 0.5], [5.0, 5.0, 5.0]]}
    out = basin_areas(res)
    assert out["0.1"] == {"area": 0.5, "clipped": False}
    assert out["1"] == {"area": 1.0, "clipped": True}
