"""The HTML report: escaping, no external URL, shared plots, Figure 4, and a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lth_audit.claims import load_claim_file
from lth_audit.audit import audit_file
from lth_audit.cli import run_audit
from lth_audit.report.html import render_html, write_html

from .conftest import CONFORMANCE, EXPECTED

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


@pytest.fixture(scope="module")
def conformance_results():
    results, problems = run_audit([str(CONFORMANCE)])
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


def test_no_external_url_anywhere(conformance_results):
    html = render_html(conformance_results)
    assert not re.search(r"(?i)\b(https?|ftp):|//[a-z0-9.-]+\.[a-z]{2,}/|url\((?!#)", html)
    for tag, attrs in parse(html).tags:
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
    assert "Summary (paper Table 3)" in text and "prefers small lr" in text
    assert "c05-missing-rr" in text and "rr-imp @ lr 0.2" in text        # missing runs named
    assert "c01/netA-pretrain-s0.0-lr0.02-e160-seed0" in text             # evidence record ids
    assert html.count("<symbol") >= 1 and html.count('class="plot"') == len(EXPECTED)


def test_identical_evidence_shares_one_plot(conformance_results):
    one = conformance_results[0]
    twins = [one, one.model_copy(update={"id": "twin"})]
    html = render_html(twins)
    assert html.count("<symbol") == 1 and html.count("<use href=\"#acc") == 2


def test_rendering_is_deterministic(conformance_results):
    assert render_html(conformance_results) == render_html(conformance_results)


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
def test_console_error_detection_works(tmp_path):
    """The check above would see a script error: a page with one is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    done = chromium("--dump-dom", page.as_uri(), tmp_path=tmp_path)
    assert console_errors(done.stderr), done.stderr[-2000:]
