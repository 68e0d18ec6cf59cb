"""The HTML report: escaping, no external URL, shared plots, Figure 4, packed plots, the drawing
pool, and a real browser."""

from __future__ import annotations

import base64
import gzip
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lth_audit.claims import load_claim_file
from lth_audit.audit import audit_file
from lth_audit.session import audit_paths
from lth_audit.report import plots
from lth_audit.report.html import _grid, render_html, write_html
from lth_audit.report.margins import margin_chart
from lth_audit.report.summary import table3

from ..conformance_cases import CONFORMANCE, EXPECTED

HOSTILE = "<script>alert(1)</script>"
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or "",
                             shutil.which("google-chrome") or "") if p and Path(p).exists()), None)


class Page(HTMLParser):
    """Every element with its attributes, and the text inside each <script>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


URL = re.compile(r"(?i)\b(https?|ftp):|//[a-z0-9.-]+\.[a-z]{2,}/|url\((?!#)")
BLOCK = re.compile(r'<template id="z(\d+)">([A-Za-z0-9+/=\s]*)</template>')


def inflate(html: str) -> str:
    """What the page's script adds to the sprite: every packed block, inflated."""
    return "".join(gzip.decompress(base64.b64decode(b)).decode() for _, b in BLOCK.findall(html))


@pytest.fixture(scope="module")
def conformance_results():
    run = audit_paths([str(CONFORMANCE)])
    results, problems = run.results, run.problems
    assert not problems
    return results


def hostile_results(tmp_path: Path):
    src = (CONFORMANCE / "c01-jackpot.jsonl").read_text().replace('"arch": "netA"', json.dumps({"arch": HOSTILE})[1:-1])
    (tmp_path / "evil.jsonl").write_text(src)
    (tmp_path / "evil.lth.yaml").write_text(
        "records: [evil.jsonl]\nclaims:\n"
        f"  - id: {json.dumps(HOSTILE)}\n    arch: {json.dumps(HOSTILE)}\n    dataset: cifar10\n"
        "    setting: lt-imp\n    sparsity: 0.832\n    expect: secondary\n")
    return audit_file(load_claim_file(tmp_path / "evil.lth.yaml"))


def test_hostile_claim_id_and_arch_are_escaped(tmp_path):
    results = hostile_results(tmp_path)
    assert results[0].id == HOSTILE and results[0].arch == HOSTILE
    html = render_html(results, errors=[f"{HOSTILE}:1: bad"])
    page = parse(html)
    assert [t for t, _ in page.tags].count("script") == 1          # only the report's own filter script
    assert all("alert" not in s for s in page.scripts)
    assert HOSTILE in "".join(page.text)                            # shown as text, literally
    assert HOSTILE not in html                                      # never as markup


@pytest.mark.parametrize("packed", [False, True])
def test_no_external_url_anywhere(conformance_results, packed):
    html = render_html(conformance_results, packed=packed)
    symbols = inflate(html) if packed else ""
    assert bool(symbols) == packed
    for text in (html, symbols):
        assert not URL.search(text)
        for tag, attrs in parse(text).tags:
            assert "src" not in attrs, tag
            if tag in ("a", "use", "link"):
                assert (attrs.get("href") or "#").startswith("#"), (tag, attrs)
            assert tag not in ("link", "iframe", "img", "object", "embed", "base")


def test_contents(conformance_results):
    html = render_html(conformance_results)
    page = parse(html)
    claims = [a for t, a in page.tags if t == "article"]
    assert len(claims) == len(EXPECTED)
    assert sorted(a["data-outcome"] for a in claims) == sorted(e["outcome"] for e in EXPECTED.values())
    text = " ".join(page.text)
    assert "Summary (paper Table 3)" in text and "prefers small lr" in text and "prefers IMP" in text
    assert "c05-missing-rr" in text and "rr-imp @ lr 0.2" in text        # missing runs named
    assert "c01/netA-pretrain-s0.0-lr0.02-e160-seed0" in text             # evidence record ids
    assert html.count("<symbol") >= 1 and html.count('class="plot"') == len(EXPECTED)
    # The terms are explained on the page; every claim with a witness has its margin chart.
    assert "How to read a claim" in text and "within noise" in text and "no noise estimate" in text
    charts = [a for t, a in page.tags if t == "svg" and a.get("aria-label", "").startswith("margin chart")]
    assert len(charts) == sum(1 for r in conformance_results if r.witness_lr is not None)
    # c14: ③ fails within noise, and the advice says how many seeds would settle it.
    assert "-0.20 ±0.98 fails, within noise" in text and "about 73 seeds per cell" in text


def test_margin_chart_places_each_margin_and_band_against_zero(conformance_results):
    c14 = next(r for r in conformance_results if r.id == "c14-noise-no-rescue")
    chart = margin_chart(c14.conditions)
    rows = {row.mark: row for row in chart.rows}
    assert (rows["①"].kind, rows["①"].x) == ("holds", None)
    assert rows["③"].kind == "within" and rows["③"].x < chart.zero < rows["③"].band[1]
    assert rows["②"].kind == "holds" and rows["②"].band[0] > chart.zero
    assert rows["④"].kind == "boundary" and rows["④"].band[0] < chart.zero < rows["④"].x
    scale = (chart.right - chart.left) / (2 * chart.extent)        # user units per pp, the same for every row
    assert rows["②"].x - chart.zero == pytest.approx(2.1 * scale, abs=0.01)
    assert chart.extent == 3.0                                     # +2.10 ± 0.70: round up to a tick of 3 pp
    c11 = next(r for r in conformance_results if r.id == "c11-single-seed")
    assert all(row.band is None and "no band" in row.words for row in margin_chart(c11.conditions).rows[1:])


def test_figure3_zooms_to_the_values_that_decide(conformance_results):
    c04 = next(r for r in conformance_results if r.id == "c04-boundary")
    lo, hi = plots.deciding_window(c04)
    deciding = [v for c in c04.conditions for v in (c.observed.get("ticket"), c.observed.get("reference")) if v]
    assert lo < min(deciding) and max(deciding) < hi and hi - lo < 10
    # Clipping by hand: a cell far below the window becomes an edge marker, its line is cut at the edge.
    points, (xs, ys), above, below = plots._clip([[0.01, 50.0, 49.0, 51.0], [0.1, 91.0, 90.5, 91.5]], [90.0, 92.0])
    assert math.isnan(points[0][1]) and points[1][1:] == [91.0, 90.5, 91.5]
    assert below[0] == 90.0 and math.isnan(below[1]) and all(math.isnan(a) for a in above)
    assert min(y for y in ys if y == y) == pytest.approx(90.0) and max(ys) == 91.0



def test_summary_rows_carry_the_marks_the_cli_prints(conformance_results):
    grid = {(row["arch"], row["dataset"]): row for row in _grid(conformance_results)}
    marks = table3(conformance_results)
    assert sorted(grid) == sorted((m.arch, m.dataset) for m in marks)
    for m in marks:
        row = grid[(m.arch, m.dataset)]
        assert (row["small_lr"], row["prefers_imp"]) == (m.prefers_small_lr, m.prefers_imp)
        assert sum(row["outcomes"].values()) == m.claims

def test_identical_evidence_shares_one_plot(conformance_results):
    one = conformance_results[0]
    twins = [one, one.model_copy(update={"id": "twin"})]
    html = render_html(twins)
    assert html.count("<symbol") == 1 and html.count("<use href=\"#acc") == 2


def test_rendering_is_deterministic(conformance_results):
    assert render_html(conformance_results) == render_html(conformance_results)
    assert render_html(conformance_results, packed=True) == render_html(conformance_results, packed=True)


def test_packed_plots_are_the_plain_plots(conformance_results):
    """Packing moves the symbols into gzip blocks; inflated, they are the plain report's symbols."""
    plain = render_html(conformance_results, packed=False)
    packed = render_html(conformance_results, packed=True)
    symbols = re.findall(r'<symbol id="[^"]+" viewBox="[^"]+">.*?</symbol>', plain, re.S)
    assert symbols and "<symbol" not in packed and "<template" not in plain
    assert "".join(symbols) == inflate(packed)
    # every packed plot names its block; the shared parts (legend, lr axis) stay plain
    uses = re.findall(r'data-z="(\d+)"><use href="#(acc[0-9a-f]+)"/>', packed)
    assert len(uses) == len(EXPECTED)
    for z, key in uses:
        block = dict(BLOCK.findall(packed))[z]
        assert f'<symbol id="{key}"' in gzip.decompress(base64.b64decode(block)).decode()
    for key in set(re.findall(r'<use href="#((?:leg|lrx)[0-9a-f]+)"/>', inflate(packed))):
        assert f'<g id="{key}">' in packed


def test_many_plots_are_packed_by_default(conformance_results, monkeypatch):
    from lth_audit.report import html as html_module

    monkeypatch.setattr(html_module, "PACK_FROM", 2)
    monkeypatch.setattr(html_module, "PACK_SIZE", 2)
    html = render_html(conformance_results)
    distinct = set(re.findall(r'href="#(acc\w+)"', html))
    assert "<symbol" not in html and len(BLOCK.findall(html)) == -(-len(distinct) // 2)


def test_plots_do_not_depend_on_what_was_drawn_before(conformance_results):
    """Figures are reused between plots: a plot must come out the same whatever came before it."""
    _, specs = plots.collect(conformance_results)
    items = list(specs.items())
    forward, _ = plots.draw_all(dict(items), workers=1)
    plots._canvases.clear()
    plots._parts.clear()
    backward, parts = plots.draw_all(dict(items[::-1]), workers=1)
    assert forward == backward
    alone = {key: plots.draw(*spec)[0] for key, spec in items[2:4]}
    assert alone == {key: forward[key] for key in alone}
    assert parts and all(p.startswith(f'<g id="{k}">') for k, p in parts.items())


def test_band_opacity_survives_the_rounding(conformance_results):
    """Coordinates are rounded to 0.1 pt; style values such as the bands' opacity are not."""
    html = render_html(conformance_results[:1])
    assert "opacity: 0.18" in html and "opacity: 0.12" in html


def test_pool_draws_the_same_plots(conformance_results, monkeypatch):
    monkeypatch.setattr(plots, "POOL_MIN", 2)
    _, specs = plots.collect(conformance_results)
    here = plots.draw_all(specs, workers=1)
    pooled = plots.draw_all(specs, workers=2)
    assert plots.stats["workers"] == 2 and plots.stats["plots"] == len(specs)
    assert pooled == here


def test_correlation_plot_when_records_carry_r_p(tmp_path):
    lines = []
    for line in (CONFORMANCE / "c01-jackpot.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["setting"] in ("lt-imp", "rr-imp"):
            rec["r_p"] = {"p": 0.1, "init": 0.35 if rec["setting"] == "lt-imp" else None,
                          "reinit": 0.12 if rec["setting"] == "rr-imp" else None}
        lines.append(json.dumps(rec))
    (tmp_path / "rp.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "rp.lth.yaml").write_text((CONFORMANCE / "c01-jackpot.lth.yaml").read_text()
                                          .replace("c01-jackpot.jsonl", "rp.jsonl"))
    results = audit_file(load_claim_file(tmp_path / "rp.lth.yaml"))
    assert results[0].r_p
    html = render_html(results)
    assert 'href="#rp' in html and "R_p" in html


def test_write_html_is_readable_and_atomic(tmp_path, conformance_results):
    out = tmp_path / "deep" / "r.html"
    write_html(out, conformance_results, [])
    assert out.stat().st_mode & 0o044 and out.read_text().startswith("<!DOCTYPE html>")
    assert not list(out.parent.glob(".r.html.*"))


def chromium(*args: str, tmp_path: Path, timeout: int = 60) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_report_in_headless_chromium(tmp_path, conformance_results):
    report = tmp_path / "audit.html"
    write_html(report, conformance_results, ["some/file.lth.yaml:3: [claims.0.arch] example error"])
    shot = tmp_path / "audit.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1400,2400", "--hide-scrollbars", report.as_uri(),
                    tmp_path=tmp_path)
    assert shot.exists() and shot.stat().st_size > 20_000, done.stderr[-2000:]
    assert console_errors(done.stderr) == []

    # The filter reads #filter=failed at load: passed and boundary claims are hidden in the live DOM.
    dom = chromium("--dump-dom", report.as_uri() + "#filter=failed", tmp_path=tmp_path)
    assert console_errors(dom.stderr) == []
    page = parse(dom.stdout)
    claims = [a for t, a in page.tags if t == "article"]
    assert len(claims) == len(EXPECTED)
    for a in claims:
        assert ("hidden" in a) == (a["data-outcome"] != "failed"), a
    assert f"{sum(e['outcome'] == 'failed' for e in EXPECTED.values())} of {len(EXPECTED)} claims shown" in dom.stdout


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_packed_plots_render_in_headless_chromium(tmp_path, conformance_results):
    """The browser inflates the packed blocks (DecompressionStream) and draws the very same pixels."""
    from PIL import Image, ImageChops

    def shoot(packed: bool) -> Image.Image:
        report = tmp_path / f"audit-{packed}.html"
        write_html(report, conformance_results, [], packed=packed)
        shot = tmp_path / f"audit-{packed}.png"
        # virtual time: the page's async work (observer, inflating) finishes before the screenshot
        done = chromium(f"--screenshot={shot}", "--window-size=1400,4000", "--hide-scrollbars",
                        "--virtual-time-budget=5000", report.as_uri(), tmp_path=tmp_path)
        assert shot.exists(), done.stderr[-2000:]
        assert console_errors(done.stderr) == []
        return Image.open(shot).convert("RGB")

    plain = shoot(False)
    # Decompression runs off the main thread, which virtual time does not wait for: on a loaded
    # machine the screenshot can come before the last block lands, so the packed page gets three tries.
    for _ in range(3):
        packed = shoot(True)
        if ImageChops.difference(plain, packed).getbbox() is None:
            break
    # the plots are there: the LT series red and the RR series blue of the plots, not only text
    colours = {c for _, c in packed.getcolors(maxcolors=1 << 24)}
    assert (0xd6, 0x27, 0x28) in colours and (0x1f, 0x77, 0xb4) in colours
    assert ImageChops.difference(plain, packed).getbbox() is None

    # in the live DOM, the blocks were inflated into the sprite: every plot's symbol is there
    report = tmp_path / "audit-True.html"
    # DecompressionStream works off the main thread, which virtual time does not wait for: on a loaded
    # machine the DOM can be dumped before the last block lands, so give the browser three tries.
    for _ in range(3):
        dom = chromium("--dump-dom", "--virtual-time-budget=20000", report.as_uri(), tmp_path=tmp_path)
        assert console_errors(dom.stderr) == []
        page = parse(dom.stdout)
        symbols = {a["id"] for t, a in page.tags if t == "symbol"}
        wanted = {a["href"][1:] for t, a in page.tags if t == "use" and a["href"].startswith("#acc")}
        if wanted and wanted <= symbols:
            break
    assert wanted and wanted <= symbols
    assert next(a for t, a in page.tags if t == "body").get("data-inflated") == "1"


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_console_error_detection_works(tmp_path):
    """The check above would see a script error: a page with one is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    done = chromium("--dump-dom", page.as_uri(), tmp_path=tmp_path)
    assert console_errors(done.stderr), done.stderr[-2000:]


def test_extended_claims_show_conditions_6_7_the_instability_path_and_table3_columns():
    from lth_audit.audit import audit_claim

    from tests.core.factories import cifar10, claim, extended_records

    path = {"alpha": [i / 10 for i in range(11)], "error": [8.0 + (i * (10 - i)) / 10 for i in range(11)]}
    records = [r.model_copy(update={"meta": {"interpolation": path}}) if r.setting.value == "lt-imp" else r
               for r in extended_records(80.0)]
    result = audit_claim(claim(), records, cifar10(), profile="extended")
    page = parse(render_html([result], with_plots=False))
    text = " ".join(page.text)
    assert "⑥" in text and "⑦" in text and "mask beats random" in text and "stable" in text
    polylines = [a for t, a in page.tags if t == "polyline"]
    assert len(polylines) == 2                           # the witness lr's two seeds, each against its twin
    # The rigorous profile's report has no such columns.
    plain = " ".join(parse(render_html([audit_claim(claim(), records, cifar10())], with_plots=False)).text)
    assert "mask beats random" not in plain
