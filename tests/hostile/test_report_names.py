"""Hostile archs and data sets reach matplotlib and the HTML report as plain text: never mathtext (an
invalid `$...$` crashed the report), always escaped, through the CLI's --html and the plugin's --lth-html."""

from __future__ import annotations

import json
import re

import pytest

from lth_audit.cli import main

from .cases import CASE

NAMES = {
    "bad-mathtext": ("$x^$", "$\\undefinedcommand$"),
    "valid-mathtext": ("$\\frac{a}{b}$", "$\\alpha$"),
    "markup": ("<script>alert(1)</script>", "</svg><img src=x onerror=alert(1)>"),
    "format": ("%s%n{0}", "{arch}"),
    "long": ("a" * 3000, "d" * 500),
    "unicode": ("ネット\u202eabc\u0301", "データ🎲"),
}


def write_case(folder, arch: str, dataset: str):
    """c01 at two sparsities (so the sparsity curves are drawn too), with `arch` and `dataset` renamed."""
    rows = [json.loads(line) for line in CASE.with_suffix(".jsonl").read_text().splitlines()]
    rows += [{**r, "sparsity": 0.59, "run_id": r["run_id"] + "-s59"} for r in rows
             if r["setting"] in ("lt-imp", "rr-imp")]
    (folder / "h.jsonl").write_text("".join(json.dumps({**r, "arch": arch, "dataset": dataset}) + "\n"
                                            for r in rows))
    claim = folder / "h.lth.yaml"
    quoted = [json.dumps(name, ensure_ascii=False) for name in (arch, dataset)]  # a YAML double-quoted string
    claim.write_text(f"records: [h.jsonl]\nthresholds: {{similar: 0.5, gap: 0.5, sufficient_epochs: 160}}\n"
                     f"claims:\n  - {{id: h, arch: {quoted[0]}, dataset: {quoted[1]}, "
                     f"setting: lt-imp, sparsity: 0.832, expect: jackpot}}\n", encoding="utf-8")
    return claim


def _escaped(name: str) -> str:
    return name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def check_report(html: str, arch: str, dataset: str) -> None:
    assert "<script>alert" not in html and "<img src=x" not in html
    text = re.sub(r"<[^>]*>", "", html)
    for name in (arch, dataset.lower()):
        assert _escaped(name)[:200] in text, name[:40]
    # The sparsity curves' title, drawn by matplotlib, shows the names as written (`$` and all: no mathtext).
    assert f"{_escaped(arch)} / {_escaped(dataset.lower())}: IMP" in text


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # measured only; the SVG names no font
@pytest.mark.parametrize("arch,dataset", NAMES.values(), ids=NAMES.keys())
def test_cli_html_report_with_hostile_names(tmp_path, capsys, arch, dataset):
    claim = write_case(tmp_path, arch, dataset)
    out = tmp_path / "r.html"
    assert main(["audit", str(claim), "--html", str(out)]) == 0, capsys.readouterr()
    check_report(out.read_text(encoding="utf-8"), arch, dataset)


def test_plugin_html_report_with_hostile_names(pytester):
    arch, dataset = "$x^$ <script>alert(1)</script>", "$\\undefinedcommand$"
    write_case(pytester.path, arch, dataset)
    result = pytester.runpytest("--lth-html", "r.html", "-W", "ignore::pytest.PytestAssertRewriteWarning")
    result.assert_outcomes(passed=1)
    check_report((pytester.path / "r.html").read_text(encoding="utf-8"), arch, dataset)
