"""Exit statuses of every `lth-audit` command, in one place.

0: every claim passed or was boundary; 1: a claim failed (the only status that means "the evidence
contradicts a claim"); 2: bad input or a problem with the environment; 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
