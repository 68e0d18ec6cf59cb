"""Checkpoints beside a record store: `<out>.ckpt/`.

Layout:
  model.json                      what the checkpoints were written for (arch, dataset, width, ignore)
  init/seed<S>.pt                 θ0 of seed S (state dict; the same θ0 for every lr)
  runs/<run_id with / as __>/final.pt   θT of a pretrain or LT-IMP run (masks are derived from these)
  runs/<...>/best.pt              best-test-accuracy weights (only with `prune_from: best`)
  runs/<...>/rewind.pt            θt of a pretrain run (only when wr-* settings are asked)
  masks/<key>.pt                  {param name: 0/1 tensor}; key `omp-s0.59-lr0.1-seed0` or `imp-k4-lr0.1-seed0`

Every file is written to a temporary name and os.replace'd (a reader sees old or new, never half), and
read with torch.load(..., weights_only=True). A run's checkpoints are written before its record is
appended, so a record in the store means its checkpoints are there.

A file that does not load, holds something else than {name: tensor}, or does not fit the experiment's
model is an InputError naming the file and the fix; a full disk while writing is an OSError naming the
file (torch would report it as an `inline_container.cc` RuntimeError).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..records import InputError, Problem, atomic_write, atomic_write_text

IDENTITY = "model.json"


class _Recording:
    """A file wrapper that keeps the OSError a write raised (torch.save turns it into a RuntimeError)."""

    def __init__(self, f: Any):
        self._f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An OSError raised while writing `path` names it (a write or fsync error carries no file name)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def save_tensor_file(obj: Any, path: Path) -> None:
    """torch.save through `atomic_write`; a failed write (ENOSPC, EIO) is an OSError naming `path`."""

    def write(f: Any) -> None:
        sink = _Recording(f)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is None:
                raise
            raise sink.error from None

    with _naming(path):
        atomic_write(path, write)


def _reason(exc: BaseException) -> str:
    """torch's first sentence for a bad zip archive; the unpickler's errors (EOFError, KeyError) say nothing."""
    first = str(exc).strip().split(". ")[0].splitlines()
    return first[0] if isinstance(exc, RuntimeError) and first else "empty, cut short or not a torch file"


class Checkpoints:
    """The `<out>.ckpt/` folder. With `model` (and the experiment's `prunable` names and `identity`), every
    state dict and mask read is checked against the model the experiment builds now."""

    def __init__(self, root: str | Path, model: torch.nn.Module | None = None, prunable: Sequence[str] = (),
                 identity: Mapping[str, Any] | None = None):
        self.root = Path(root)
        self.shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()} if model is not None else None
        self.prunable = list(prunable)
        self.identity = dict(identity or {})
        self._identity_written = False

    def _path(self, rel: str) -> Path:
        return self.root / rel

    @staticmethod
    def run_dir(run_id: str) -> str:
        return "runs/" + run_id.replace("/", "__")

    def init(self, seed: int) -> str:
        return f"init/seed{seed}.pt"

    def run_file(self, run_id: str, what: str) -> str:
        return f"{self.run_dir(run_id)}/{what}.pt"

    def mask(self, key: str) -> str:
        return f"masks/{key}.pt"

    def exists(self, rel: str) -> bool:
        return self._path(rel).is_file()

    def save(self, rel: str, obj) -> None:
        if self.identity and not self._identity_written:
            self._write_identity()
        save_tensor_file(obj, self._path(rel))

    def _write_identity(self) -> None:
        """`model.json`, written with the first checkpoint of a fresh folder (an older folder may hold
        checkpoints of another model: it gets none, and mismatches are then reported without it)."""
        self._identity_written = True
        path = self.root / IDENTITY
        if not path.exists() and not (self.root.exists() and any(self.root.iterdir())):
            with _naming(path):
                atomic_write_text(path, json.dumps(self.identity, sort_keys=True) + "\n")

    def load(self, rel: str) -> dict[str, torch.Tensor]:
        path = self._path(rel)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - torch.load fails with any of a dozen types on a bad file
            raise self._bad(path, f"cannot be loaded ({_reason(exc)})") from None
        if not (isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in obj.items())):
            raise self._bad(path, f"holds a {type(obj).__name__}, not a {{name: tensor}} state dict or mask")
        expected = self._expected(rel)
        if expected is not None:
            self._check(path, obj, expected)
        return obj

    def _expected(self, rel: str) -> dict[str, tuple[int, ...]] | None:
        if self.shapes is None or rel.endswith(IDENTITY):
            return None
        if rel.startswith("masks/"):
            return {n: self.shapes[n] for n in self.prunable} if self.prunable else None
        return self.shapes

    def _check(self, path: Path, obj: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]) -> None:
        missing = [k for k in expected if k not in obj]
        extra = [k for k in obj if k not in expected]
        wrong = [(k, tuple(obj[k].shape), shape) for k, shape in expected.items()
                 if k in obj and tuple(obj[k].shape) != shape]
        if not (missing or extra or wrong):
            return
        what = []
        if missing:
            what.append(f"lacks {len(missing)} of the {len(expected)} tensors the experiment needs "
                        f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
        if extra:
            what.append(f"has {len(extra)} the experiment does not ({', '.join(extra[:3])}"
                        f"{', ...' if len(extra) > 3 else ''})")
        if wrong:
            k, have, want = wrong[0]
            what.append(f"{k} has shape {list(have)} where the experiment's model has {list(want)}"
                        f"{f' (and {len(wrong) - 1} more)' if len(wrong) > 1 else ''}")
        changed = self._changed()
        if changed:
            raise InputError([Problem(str(path), None, None, f"{'; '.join(what)}: since these checkpoints were "
                                      f"written, {changed}. Restore it, or give the experiment a new `out:` "
                                      f"(or delete {self.root}) to train afresh")])
        raise self._bad(path, "; ".join(what))

    def _changed(self) -> str:
        """Which experiment field differs from what `model.json` recorded ('' when unknown or none)."""
        try:
            old = json.loads((self.root / IDENTITY).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ""
        if not isinstance(old, dict):
            return ""
        return ", ".join(f"`{k}` changed from {old[k]!r} to {v!r}" for k, v in self.identity.items()
                         if k in old and old[k] != v)

    def _bad(self, path: Path, what: str) -> InputError:
        return InputError([Problem(str(path), None, None, f"checkpoint {what}; delete it and run again: what "
                                                          f"it held is recomputed (its run retrains)")])
