"""Other tools' outputs into run records (SPEC §3): `lth-audit import <tool> DIR -o FILE`."""
