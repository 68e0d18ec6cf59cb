"""benchmarks/gpu_check.py: its measures, and its refusal without a GPU."""

from __future__ import annotations

import json

import pytest
import torch


def test_update_difference(script):
    g = script("gpu_check")
    start = {"w": torch.zeros(3), "n": torch.tensor(5)}
    single = {"w": torch.tensor([3.0, 4.0, 0.0]), "n": torch.tensor(7)}
    assert g.update_difference(start, single, single) == 0.0
    other = {"w": torch.tensor([3.0, 4.0, 0.5]), "n": torch.tensor(9)}   # integer counters are not compared
    assert g.update_difference(start, other, single) == pytest.approx(0.1)
    assert g.update_difference(start, single, start) == float("inf")


def test_report_table_and_json(script, tmp_path):
    g = script("gpu_check")
    rep = g.Report("cpu (smoke test)")
    rep.figure("batched R=8, per run", 1.25, "s")
    rep.check("tiny lth-audit run", False, "exit status 2")
    table = rep.table()
    assert "| batched R=8, per run | 1.25 | s |" in table and "| tiny lth-audit run | FAIL | exit status 2 |" in table
    body = json.loads(json.dumps(rep.as_json()))
    assert body["schema"] == "lth-audit.gpu-check/1" and body["checks"][0]["passed"] is False
    assert body["figures"] == [{"name": "batched R=8, per run", "value": 1.25, "unit": "s"}]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_asked_without_cuda(script, capsys):
    g = script("gpu_check")
    assert g.main(["--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
