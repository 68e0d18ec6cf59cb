"""Root conftest: what `pytest` (testpaths tests/ and checks/) needs in this repository, nothing heavy.

The lth-audit plugin normally arrives through its `pytest11` entry point (an installed or editable
package). When the tree is used without being installed, load it from source so that `pytest checks/`
still audits the shipped claim files instead of collecting nothing. No torch, no matplotlib here.
"""

from __future__ import annotations

from importlib.metadata import entry_points

# Audit reports written by --lth-html / --lth-json, and the conformance data the tests copy: never items.
collect_ignore = ["reports", "tests/data"]

pytest_plugins = ["pytester"]  # the plugin's own tests (tests/plugin) drive pytest in pytest
if not any(ep.value == "lth_audit.plugin" for ep in entry_points(group="pytest11")):
    pytest_plugins.append("lth_audit.plugin")
