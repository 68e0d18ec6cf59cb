"""lth-audit's tests: a package (every folder has __init__.py), so no test folder can shadow an installed package (tests/ray vs ray)."""
