"""Where the SPEC conformance cases are (a copy in tests/data, else ../shared) and what they expect."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = next(p for p in (ROOT / "tests" / "data" / "conformance", ROOT.parent / "shared" / "conformance")
                   if (p / "expected.json").exists())
EXPECTED = json.loads((CONFORMANCE / "expected.json").read_text())
