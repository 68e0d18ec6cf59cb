"""Table 3 rows from audit results."""

from __future__ import annotations

from lth_audit.audit import audit_claim
from lth_audit.report.summary import format_table3, table3

from .factories import JACKPOT, cifar10, claim, grid, two_seeds


def test_table3_marks_prizes_and_observations():
    values = dict(JACKPOT)
    values[("lt-omp", 0.02)] = 90.0
    values[("lt-omp", 0.2)] = 90.0
    jackpot = audit_claim(claim(), grid(two_seeds(values)), cifar10())
    boundary = audit_claim(claim(), grid(two_seeds({**values, ("pretrain", 0.2): 92.35})), cifar10())
    (row,) = table3([jackpot])
    assert (row.jackpot, row.secondary, row.prefers_small_lr, row.prefers_imp) == ("✓", "✓", "✓", "✓")
    (row,) = table3([boundary])
    assert (row.jackpot, row.secondary) == ("△", "✓")
    none = audit_claim(claim(), grid(two_seeds({**values, ("rr-imp", 0.2): 95.0})), cifar10())
    (row,) = table3([none, boundary])
    assert (row.jackpot, row.secondary, row.claims) == ("△", "✓", 2)
    assert "netA" in format_table3(table3([none]))
