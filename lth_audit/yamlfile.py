"""The one YAML loader of claim files and experiment files (docs/input.md).

`yaml.safe_load` semantics (no object tags), plus what a file written by someone else needs:
UTF-8 only (a BOM is accepted; a bad byte is named by its line), duplicate keys are errors, aliases
may add at most `MAX_EXPANSION` nodes (a "billion laughs" document is refused at the alias that
crosses the limit), nesting is bounded, and every value's location is known by line and by its
source text, so an error shows what was written, never an expanded alias.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .inputfiles import Unreadable, read_bounded
from .records import InputError, Problem, line_of, problems_from_validation

MAX_BYTES = 16 * 2**20
"""Largest claim or experiment file read."""
MAX_EXPANSION = 100_000
"""Nodes that aliases may add to a document (each use of `*x` adds the size of what `&x` names)."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and lists."""
SNIPPET = 60
_MERGE = "tag:yaml.org,2002:merge"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class YamlDoc:
    """A parsed document: the data, and for each location (pydantic-style tuple) its line and source text."""

    path: str
    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)
    sources: dict[tuple, str] = field(default_factory=dict)
    aliased: frozenset[tuple] = frozenset()      # locations written as an alias (`*x`)

    def source(self, loc: tuple) -> str | None:
        """What the file says at `loc`: a scalar's text, or the alias that the value came from."""
        if loc in self.sources:
            return self.sources[loc]
        alias = next((loc[:n] for n in range(len(loc) - 1, 0, -1) if loc[:n] in self.aliased), None)
        return None if alias is None else f"{self.sources[alias]}, expanded"

    def problem(self, loc: tuple, reason: str) -> Problem:
        return Problem(self.path, line_of(self.lines, loc), ".".join(map(str, loc)) or None, reason)

    def validate(self, model: type[M], data: Any = None) -> M:
        """`model` validated from the document (or from `data` built from it); InputError with lines."""
        try:
            return model.model_validate(self.data if data is None else data)
        except ValidationError as exc:
            raise InputError(problems_from_validation(self.path, None, exc, self.lines, self.source)) from exc


class _Refused(yaml.MarkedYAMLError):
    """A document this loader will not build (too many alias expansions, too deep, recursive)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts what aliases add, bounds nesting, and remembers where each alias was."""

    def __init__(self, text: str):
        super().__init__(text)
        self.expanded = 0                         # nodes so far, every alias counted in full
        self.added = 0                            # of which aliases added
        self.sizes: dict[int, int] = {}           # id(node) -> its node count, aliases expanded
        self.aliases: dict[tuple[int, Any], tuple[yaml.Mark, yaml.Mark]] = {}   # (id(parent), index) -> marks
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            size = self.sizes.get(id(node))
            if size is None:
                raise _Refused(None, None, f"alias *{event.anchor} is used inside the value it names "
                                           f"(a recursive document)", event.start_mark)
            self.expanded += size
            self.added += size
            if self.added > MAX_EXPANSION:
                raise _Refused(None, None, f"aliases expand the document by more than {MAX_EXPANSION:,} values "
                                           f"(here *{event.anchor}); write the values out instead", event.start_mark)
            if parent is not None and index is not None:
                self.aliases[(id(parent), index if isinstance(index, int) else id(index))] = (
                    event.start_mark, event.end_mark)
            return node
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
        before = self.expanded
        node = super().compose_node(parent, index)
        self.depth -= 1
        self.expanded += 1
        self.sizes[id(node)] = self.expanded - before
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # noqa: BLE001 - 2024-13-45, 5000 digits, an empty `!!float` or `!!timestamp`
            value = node.value if isinstance(node, yaml.ScalarNode) else ""
            reason = str(exc).split(";")[0]
            what = f"cannot read {value[:SNIPPET]!r} as {node.tag.rsplit(':', 1)[-1]}: {reason}"
            raise yaml.constructor.ConstructorError(None, None, what, node.start_mark) from exc


def _decode(raw: bytes, path: str) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    problems = []
    for no, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(path, no, None, f"not UTF-8: byte 0x{line[exc.start]:02x} at byte "
                                                    f"{exc.start + 1} of the line (YAML files are UTF-8)"))
    raise InputError(problems)


def _yaml_problem(exc: yaml.YAMLError, text: str, path: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return Problem(path, line, None, f"not valid YAML: character {exc.character:#x} is not allowed")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    what = "; ".join(x for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x) or str(exc)
    prefix = "" if isinstance(exc, _Refused) else "not valid YAML: "
    return Problem(path, mark.line + 1 if mark else None, None, prefix + what)


class _Document:
    """One composed node graph; walks it once (aliases are not entered again)."""

    def __init__(self, loader: _Loader, text: str, path: str):
        self.loader, self.text, self.path = loader, text, path
        self.lines: dict[tuple, int] = {}
        self.sources: dict[tuple, str] = {}
        self.aliased: set[tuple] = set()
        self.problems: list[Problem] = []

    def snippet(self, start: yaml.Mark, end: yaml.Mark) -> str:
        text = self.text[start.index:min(end.index, start.index + 4 * SNIPPET)].split("\n", 1)[0].strip()
        return text if len(text) <= SNIPPET else text[:SNIPPET] + "…"

    def walk(self, node: yaml.Node, loc: tuple = ()) -> None:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            self.sources[loc] = self.snippet(node.start_mark, node.end_mark)
        elif isinstance(node, yaml.MappingNode):
            self._mapping(node, loc)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._child(node, i, item, (*loc, i), item.start_mark.line + 1)

    def _child(self, parent: yaml.Node, index: Any, node: yaml.Node, loc: tuple, line: int) -> None:
        alias = self.loader.aliases.get((id(parent), index if isinstance(index, int) else id(index)))
        if alias is None:
            self.lines[loc] = line
            self.walk(node, loc)
        else:
            self.lines[loc] = alias[0].line + 1 if isinstance(index, int) else line
            self.sources[loc] = self.snippet(*alias)
            self.aliased.add(loc)

    def _mapping(self, node: yaml.MappingNode, loc: tuple) -> None:
        first: dict[Any, int] = {}
        for key, value in node.value:
            if key.tag == _MERGE or not isinstance(key, yaml.ScalarNode):
                continue  # merged keys may be overridden; the constructor refuses unhashable keys
            name = self.loader.construct_object(key, deep=True)
            line = key.start_mark.line + 1
            if name in first:
                self.problems.append(Problem(self.path, line, ".".join(map(str, (*loc, key.value))),
                                             f"duplicate key {key.value!r} (first at line {first[name]}); YAML "
                                             f"would keep only the last one"))
                continue
            first[name] = line
            self._child(node, key, value, (*loc, key.value), line)


def parse_yaml(source: str | bytes, path: str) -> YamlDoc:
    """Parse one YAML document (claim or experiment file); every problem raised as an InputError."""
    text = _decode(source, path) if isinstance(source, bytes) else source.removeprefix("\ufeff")
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(path, None)
        doc = _Document(loader, text, path)
        doc.walk(node)
        if doc.problems:
            raise InputError(doc.problems)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise InputError([_yaml_problem(exc, text, path)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return YamlDoc(path, data, doc.lines, doc.sources, frozenset(doc.aliased))


def load_yaml(path: str | os.PathLike[str], what: str) -> YamlDoc:
    """Read and parse the YAML file `path`; `what` ("claim file", ...) names it in errors."""
    try:
        raw = read_bounded(path, MAX_BYTES, f"the limit for a {what}")
    except Unreadable as exc:
        raise InputError([Problem(str(path), None, None, f"cannot read {what}: {exc}")]) from None
    return parse_yaml(raw, str(Path(path)))
