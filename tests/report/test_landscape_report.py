"""Landscape sidecars named by a claim file are drawn into the HTML report; bad ones are named."""

from __future__ import annotations

import json
from pathlib import Path

from lth_audit.cli import main

ROOT = Path(__file__).resolve().parents[2]
REPLICATION = ROOT / "docs" / "replication"


def test_the_replication_report_has_curves_r_p_landscapes_and_guideline(tmp_path, capsys):
    html = tmp_path / "replication.html"
    # Three of the paper's rules fail on these runs (docs/replication.md): exit 1, not an input error.
    assert main(["audit", str(REPLICATION), "--html", str(html)]) == 1
    page = html.read_text()
    for heading in ("Sparsity curves (paper Figure 1)", "Loss landscapes (paper Figures 5–6)",
                    "Guideline (paper Section 3.2) on these runs"):
        assert heading in page
    assert page.count('<figure class="curves"') == 4  # 2 networks' curves, 2 landscape figures
    assert "Figure 4: correlation indicator R_p" in page  # the tickets carry r_p
    assert "http" not in page and "Input errors" not in page


def test_a_missing_or_malformed_landscape_is_an_input_error(tmp_path, capsys):
    for name in ("replication-resnet1d.jsonl",):
        (tmp_path / name).write_text((REPLICATION / name).read_text())
    (tmp_path / "bad.json").write_text(json.dumps({"runs": [{"run_id": "x"}]}))
    claim = tmp_path / "c.lth.yaml"
    claim.write_text("records: [replication-resnet1d.jsonl]\nlandscapes: [bad.json, nope/*.json]\n"
                     "thresholds: {similar: 0.5, gap: 0.5, sufficient_epochs: 20}\nguideline:\n"
                     "  - {id: g, rule: large-lr-init, arch: resnet1d, dataset: mnist1d, sparsity: 0.738}\n")
    assert main(["audit", str(claim)]) == 2
    assert "[landscapes.1] no file matches 'nope/*.json'" in capsys.readouterr().err
    claim.write_text(claim.read_text().replace(", nope/*.json", ""))
    html = tmp_path / "r.html"
    main(["audit", str(claim), "--html", str(html)])
    page = html.read_text()
    assert "Input errors" in page and "bad.json" in page and "runs.0.a" in page
