"""lth-audit: make the rigorous winning-ticket definition of Ma et al. (2021) executable.

The Python API for your own training code (docs/own-runs.md): `RecordWriter` appends validated run
records to a store; `RunRecord` and `Setting` are the record model; `load_records` reads stores back.
Torch helpers (masks, sparsity, rewinding, R_p, small-dense width) live in `lth_audit.pytorch`.
`import lth_audit` stays cheap: the names below are imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["RecordRejected", "RecordWriter", "RunRecord", "Setting", "load_records", "__version__"]

_EXPORTS = {"RecordWriter": "store", "RecordRejected": "store", "RunRecord": "records", "Setting": "records",
            "load_records": "records"}

if TYPE_CHECKING:
    from .records import RunRecord, Setting, load_records
    from .store import RecordRejected, RecordWriter


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from importlib import import_module

        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
