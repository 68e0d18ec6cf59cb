"""pytest plugin (entry point `pytest11: lth_audit`): every `*.lth.yaml` claim is a test item.

* Collection: a claim file is a `ClaimFile` node; each claim an `ClaimItem`. A malformed claim file,
  or one naming a record store with a bad line, is a collection error listing every problem
  (file:line [field] reason) — never a silently smaller audit.
* Outcomes: passed / failed / boundary. A boundary claim has pytest outcome "passed" (pytest knows no
  other), carries `report.lth_outcome == "boundary"` and the user property `lth_outcome=boundary`,
  and is shown with its own word (BOUNDARY), letter (B) and summary count. `--lth-strict` fails it.
* Evidence travels on the report as JSON-safe data (`report.lth_result`), so pytest-xdist workers
  hand it to the controller, which writes `--lth-json` / `--lth-html` at session end.
* A session asked for an audit (any `--lth-*` option on the command line, or a claim file among the
  collected paths) that audited no claim exits 5 (no tests collected) with a message.

Importing this module is cheap: the audit engine loads when a claim file is collected or an
`--lth-*` option needs it; matplotlib and jinja2 only when the HTML report is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .options import THRESHOLD_OPTIONS, add_limit_options, add_threshold_options, limits_from, overrides_from

if TYPE_CHECKING:
    from .audit import ClaimResult
    from .claims import Claim, ClaimFile as LoadedClaimFile, GuidelineClaim
    from .guideline import GuidelineResult

CLAIM_SUFFIXES = (".lth.yaml", ".lth.yml")
EXIT_NO_CLAIMS = pytest.ExitCode.NO_TESTS_COLLECTED
_STATE = pytest.StashKey["_LthSession"]()


# --------------------------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lth-audit", "winning lottery ticket audit (lth-audit)")
    group.addoption("--lth-json", metavar="PATH", default=None,
                    help="write the lth-audit.report/1 JSON of the audited claims here (ini: lth_json)")
    group.addoption("--lth-html", metavar="PATH", default=None,
                    help="write the self-contained HTML audit report here (ini: lth_html)")
    group.addoption("--lth-strict", action="store_true", default=None,
                    help="a boundary claim fails instead of passing as BOUNDARY (ini: lth_strict)")

    def add(flag: str, **kwargs: Any) -> None:  # `--similar` -> `--lth-similar`, dest stays lth_similar
        group.addoption("--lth-" + flag.lstrip("-"), **kwargs)

    add_threshold_options(add)
    add_limit_options(add)
    parser.addini("lth_json", "default for --lth-json (relative to the rootdir)", default=None)
    parser.addini("lth_html", "default for --lth-html (relative to the rootdir), e.g. reports/audit.html",
                  default=None)
    parser.addini("lth_strict", "default for --lth-strict", type="bool", default=False)


_THRESHOLD_DESTS = tuple(f"lth_{name}" for name, _, _ in THRESHOLD_OPTIONS)


def _output_path(config: pytest.Config, name: str) -> tuple[Path | None, bool]:
    """(path, given on the command line) for `lth_json` / `lth_html`."""
    value = config.getoption(name)
    if value:
        return Path(config.invocation_params.dir, os.path.expanduser(value)), True
    ini = config.getini(name)
    if ini:
        return Path(config.rootpath, os.path.expanduser(str(ini))), False
    return None, False


def _strict(config: pytest.Config) -> bool:
    opt = config.getoption("lth_strict")
    return bool(config.getini("lth_strict")) if opt is None else bool(opt)


# --------------------------------------------------------------------------------------------- session state


class _LthSession:
    """Controller-side state, registered as a plugin per config: results come from the reports, so it
    works the same in-process and under pytest-xdist (whose workers send their reports here)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.results: dict[str, tuple[tuple, dict[str, Any]]] = {}
        self.guideline: dict[str, tuple[tuple, dict[str, Any]]] = {}
        self.errors: list[str] = []
        self.claim_files_seen = False
        self.no_claims = False
        self.written: list[tuple[str, Path]] = []
        self.asked = any(config.getoption(d) is not None for d in ("lth_json", "lth_html", "lth_strict",
                                                                     *_THRESHOLD_DESTS))

    def ordered(self) -> list[ClaimResult]:
        from .audit import ClaimResult

        return [ClaimResult.model_validate(data) for _, data in sorted(self.results.values(), key=lambda t: t[0])]

    def ordered_guideline(self) -> list[GuidelineResult]:
        from .guideline import GuidelineResult

        return [GuidelineResult.model_validate(d) for _, d in sorted(self.guideline.values(), key=lambda t: t[0])]

    @staticmethod
    def audited_files(results: list[ClaimResult], guideline: list[GuidelineResult], config: pytest.Config):
        """The claim files behind the results, for the report's sparsity curves and landscapes: results carry
        only their file (under pytest-xdist the loaded files stay on the workers), so they are read again."""
        from .claims import load_claim_file

        return [load_claim_file(f, _overrides(config), limits_from(config.option))
                for f in dict.fromkeys(x.file for x in [*results, *guideline])]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        order = tuple(getattr(report, "lth_order", None) or (report.nodeid, 0))
        for attr, into in (("lth_result", self.results), ("lth_guideline", self.guideline)):
            data = getattr(report, attr, None)
            if data is not None:
                into[report.nodeid] = (order, data)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and report.nodeid.endswith(CLAIM_SUFFIXES):
            self.claim_files_seen = True
            text = str(report.longrepr)
            self.errors.append(text if report.nodeid in text else f"{report.nodeid}: {text}")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if any(isinstance(i, _AuditItem) for i in session.items):
            self.claim_files_seen = True

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        config = self.config
        if hasattr(config, "workerinput"):  # an xdist worker: the controller writes the outputs
            return
        audited = bool(self.results or self.guideline)
        json_path, json_cli = _output_path(config, "lth_json")
        html_path, html_cli = _output_path(config, "lth_html")
        if audited or self.errors or json_cli or html_cli:
            results, guideline = self.ordered(), self.ordered_guideline()
            if json_path is not None:
                from .records import atomic_write_text
                from .report.json_report import report_dict

                doc = report_dict(results, self.errors, guideline)
                doc["strict"] = _strict(config)
                atomic_write_text(json_path, json.dumps(doc, indent=1) + "\n")
                self.written.append(("JSON", json_path))
            if html_path is not None:
                from .claims import merged_landscapes, merged_records
                from .report.html import write_html

                files = self.audited_files(results, guideline, config)
                write_html(html_path, results, self.errors, strict=_strict(config), guideline=guideline,
                           records=merged_records(files), landscapes=merged_landscapes(files),
                           meta={"pytest": " ".join(map(str, config.invocation_params.args)) or "(no args)"})
                self.written.append(("HTML", html_path))
        if not audited and (self.asked or self.claim_files_seen) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = EXIT_NO_CLAIMS
            self.no_claims = True

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self._boundary_summary(terminalreporter)
        if self.no_claims:
            terminalreporter.write_line(
                "lth-audit: no claim was audited (no *.lth.yaml claim under the collected paths, or all "
                f"deselected); exit status {int(EXIT_NO_CLAIMS)}", red=True, bold=True)
        for kind, path in self.written:
            terminalreporter.write_line(f"lth-audit {kind} report: {path}")


    def _boundary_summary(self, terminalreporter: Any) -> None:
        """Why each boundary item is boundary: pytest shows no text for a passing item, so say it here."""
        from .report.table import boundary_reasons, explain_guideline, fmt_lr

        claims = [r for r in self.ordered() if r.outcome == "boundary"]
        rules = [g for g in self.ordered_guideline() if g.outcome == "boundary"]
        if not claims and not rules:
            return
        terminalreporter.section("lth-audit: boundary (supported, but not beyond the noise)", sep="-", yellow=True)
        for r in claims:
            terminalreporter.write_line(f"BOUNDARY {r.headline()} (witness lr {fmt_lr(r.witness_lr)})")
            for line in boundary_reasons(r):
                terminalreporter.write_line(f"  {line}")
        for g in rules:
            terminalreporter.write_line(f"BOUNDARY {explain_guideline(g)}")


def pytest_configure(config: pytest.Config) -> None:
    state = _LthSession(config)
    config.stash[_STATE] = state
    config.pluginmanager.register(state, "lth_audit_session")
    config.addinivalue_line("markers", "lth_claim: a winning-ticket claim audited by lth-audit")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(_HtmlHooks(), "lth_audit_html")


# --------------------------------------------------------------------------------------------- collection


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith(CLAIM_SUFFIXES):
        return ClaimFile.from_parent(parent, path=file_path)
    return None


def _overrides(config: pytest.Config):
    return overrides_from(config.option)


class ClaimFile(pytest.File):
    """A `*.lth.yaml` file: loaded (with its record stores) at collection, one item per claim."""

    def collect(self):
        from .claims import load_claim_file
        from .records import InputError

        self.config.stash[_STATE].claim_files_seen = True
        try:
            loaded = load_claim_file(self.path, _overrides(self.config), limits_from(self.config.option))
        except InputError as exc:
            lines = "\n".join(f"  {p}" for p in exc.problems)
            raise self.CollectError(
                f"lth-audit: {self.path} cannot be audited ({len(exc.problems)} problem"
                f"{'s' if len(exc.problems) != 1 else ''}; file:line [field] reason):\n{lines}") from None
        for index, claim in enumerate(loaded.claims):
            yield ClaimItem.from_parent(self, name=claim.id, claim=claim, loaded=loaded, index=index)
        for index, rule in enumerate(loaded.guideline, start=len(loaded.claims)):
            yield GuidelineItem.from_parent(self, name=rule.id, rule=rule, loaded=loaded, index=index)


class ClaimFailed(Exception):
    """An audit outcome that fails the item: reported with the audit's explanation, no traceback."""

    def __init__(self, headline: str, explanation: str, strict_boundary: bool = False):
        super().__init__(headline)
        self.explanation = explanation
        self.strict_boundary = strict_boundary


class _AuditItem(pytest.Item):
    """What claim and guideline items share: outcome handling, failure text, location."""

    def __init__(self, *, loaded: LoadedClaimFile, index: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.loaded = loaded
        self.index = index
        self.add_marker("lth_claim")

    def _judge(self, outcome: str, headline: str, explanation: str) -> None:
        if outcome == "failed":
            raise ClaimFailed(headline, explanation)
        if outcome == "boundary" and _strict(self.config):
            raise ClaimFailed(headline, explanation, strict_boundary=True)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        if isinstance(excinfo.value, ClaimFailed):
            exc = excinfo.value
            head = ("boundary claim failed under --lth-strict (SPEC §4: boundary fails only when strict)\n"
                    if exc.strict_boundary else "")
            return head + exc.explanation
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.loaded.lines.get(self.name)
        return self.path, (line - 1 if line else None), self._describe()

    def _describe(self) -> str:
        raise NotImplementedError


class GuidelineItem(_AuditItem):
    """One `guideline:` entry: a rule of the paper's Section 3.2 checked on the claim file's records."""

    def __init__(self, *, rule: GuidelineClaim, **kwargs: Any):
        super().__init__(**kwargs)
        self.rule = rule
        self.result: GuidelineResult | None = None

    def runtest(self) -> None:
        from .guideline import check
        from .report.table import explain_guideline

        cf = self.loaded
        r = check(self.rule, cf.records, cf.thresholds[self.rule.id], str(cf.path), cf.model.metric, cf.model.profile)
        self.result = r
        self.user_properties.extend([("lth_rule", r.rule), ("lth_outcome", r.outcome), ("lth_margin", r.margin)])
        if r.outcome == "not-applicable":
            pytest.skip(f"lth-audit: rule {r.number} not applicable: {r.note}")
        self._judge(r.outcome, f"{r.id}: rule {r.number} ({r.rule}) -> {r.outcome}", explain_guideline(r))

    def _describe(self) -> str:
        return f"guideline {self.rule.id} (rule {self.rule.rule})"


class ClaimItem(_AuditItem):
    def __init__(self, *, claim: Claim, **kwargs: Any):
        super().__init__(**kwargs)
        self.claim = claim
        self.result: ClaimResult | None = None

    def runtest(self) -> None:
        from .audit import audit_claim
        from .report.table import explain

        cf = self.loaded
        r = audit_claim(self.claim, cf.records, cf.thresholds[self.claim.id], cf.model.profile, cf.model.metric,
                        str(cf.path))
        self.result = r
        self.user_properties.extend(_properties(r))
        self._judge(r.outcome, r.headline(), explain(r))

    def _describe(self) -> str:
        return f"claim {self.claim.id} (expect {self.claim.expect})"


def _properties(r: ClaimResult) -> list[tuple[str, Any]]:
    """Flat, JUnit-friendly facts (`<property name=… value=…/>`)."""
    props: list[tuple[str, Any]] = [("lth_expect", r.expect), ("lth_verdict", r.verdict),
                                    ("lth_outcome", r.outcome), ("lth_witness_lr", r.witness_lr),
                                    ("lth_failing", ",".join(map(str, r.failing)))]
    props += [(f"lth_margin_{c.id}", c.margin if c.margin is not None else c.status.value) for c in r.conditions]
    if r.missing:
        props.append(("lth_missing", ", ".join(f"{m['setting']}@{m['lr']:g}" for m in r.missing)))
    return props


# --------------------------------------------------------------------------------------------- reports


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if isinstance(item, GuidelineItem) and call.when == "call" and item.result is not None:
        report.lth_guideline = item.result.model_dump(mode="json")
        report.lth_outcome = item.result.outcome
        report.lth_order = [str(item.path), item.index]
    if isinstance(item, ClaimItem) and call.when == "call" and item.result is not None:
        # JSON-safe attributes survive pytest-xdist's report serialisation (a TestReport keeps extras).
        report.lth_result = item.result.model_dump(mode="json")
        report.lth_outcome = item.result.outcome
        report.lth_order = [str(item.path), item.index]
        try:
            import pytest_html  # noqa: F401
        except ImportError:
            pass
        else:
            _add_html_extras(report, item.result)
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if report.when == "call" and report.passed and getattr(report, "lth_outcome", None) == "boundary":
        return "boundary", "B", ("BOUNDARY", {"yellow": True})
    return None


# --------------------------------------------------------------------------------------------- pytest-html


def _add_html_extras(report: pytest.TestReport, r: ClaimResult) -> None:
    """Our evidence in pytest-html's own report (only called when pytest-html is importable)."""
    from html import escape

    from pytest_html import extras

    from .report.table import explain

    body = (f"<div><b>lth-audit</b>: expected {escape(r.expect)}, verdict {escape(r.verdict)}, "
            f"outcome {escape(r.outcome)}, witness lr {escape(str(r.witness_lr))}</div>"
            f"<pre>{escape(explain(r))}</pre>")
    report.extras = [*getattr(report, "extras", []), extras.html(body),
                     extras.json(json.loads(json.dumps(r.model_dump(mode="json", include={
                         "id", "verdict", "outcome", "witness_lr", "failing", "missing"}))))]


class _HtmlHooks:
    """pytest-html's table hooks; registered in pytest_configure only when pytest-html is active."""

    @staticmethod
    def pytest_html_results_table_header(cells: list) -> None:
        cells.insert(2, "<th>lth outcome</th>")

    @staticmethod
    def pytest_html_results_table_row(report: pytest.TestReport, cells: list) -> None:
        from html import escape

        outcome = getattr(report, "lth_outcome", None)
        verdict = (getattr(report, "lth_result", None) or {}).get("verdict")
        cells.insert(2, f"<td>{escape(outcome + ' / ' + verdict) if outcome and verdict else ''}</td>")
