"""Sparsity curves (Figure 1) from records, and their place in the report."""

from __future__ import annotations

from html.parser import HTMLParser

from lth_audit.audit import audit_claim
from lth_audit.claims import Claim
from lth_audit.records import RunRecord
from lth_audit.report.curves import draw_curves, sparsity_curves
from lth_audit.report.html import render_html
from lth_audit.thresholds import resolve

HOSTILE = "<script>alert(1)</script>"


def _rec(arch, setting, s, lr, seed, top1):
    return RunRecord.model_validate({"schema": "lth-audit.run/1", "run_id": f"{arch}{setting}{s}{lr}{seed}",
                                     "arch": arch, "dataset": "cifar10", "setting": setting, "sparsity": s,
                                     "lr": lr, "epochs": 160, "seed": seed, "top1": top1})


def _records(arch="rn"):
    out = [_rec(arch, "pretrain", 0.0, lr, seed, 90.0 + lr) for lr in (0.01, 0.1) for seed in (0, 1)]
    for s in (0.59, 0.832):
        for lr in (0.01, 0.1):
            for seed in (0, 1):
                out += [_rec(arch, "lt-imp", s, lr, seed, 89.0 + seed), _rec(arch, "rr-imp", s, lr, seed, 85.0)]
    return out


def test_curves_group_by_setting_lr_and_sparsity_with_seed_spread():
    (c,) = sparsity_curves(_records())
    assert c.lrs == (0.01, 0.1) and c.methods == ["imp"]
    pts = c.lines[("lt-imp", 0.1)]
    assert [p.sparsity for p in pts] == [0.59, 0.832]
    assert (pts[0].mean, pts[0].lo, pts[0].hi) == (89.5, 89.0, 90.0)
    assert c.pretrain[0.1].mean == 90.1


def test_a_single_sparsity_draws_no_curve():
    assert sparsity_curves([r for r in _records() if r.sparsity in (0.0, 0.59)]) == []


def test_curves_are_lean_inline_svg_with_the_arch_escaped():
    (c,) = sparsity_curves(_records(HOSTILE))
    svg = draw_curves(c)
    assert svg.startswith("<svg") and "http" not in svg and "<script>" not in svg
    claim = Claim(id="x", arch=HOSTILE, dataset="cifar10", setting="lt-imp", sparsity=0.832, expect="none")
    result = audit_claim(claim, _records(HOSTILE), resolve("cifar10"))
    page = render_html([result], records=_records(HOSTILE))
    assert "Sparsity curves (paper Figure 1)" in page and "<script>alert" not in page

    class Scripts(HTMLParser):
        count = 0

        def handle_starttag(self, tag, attrs):
            Scripts.count += tag == "script"

    Scripts().feed(page)
    assert Scripts.count == 1  # the report's own script, nothing injected
