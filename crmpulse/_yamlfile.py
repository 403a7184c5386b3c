"""Read a YAML file while remembering the line of every key, and resolve secret references.

Pydantic reports errors by key path (``("probes", "checks", 2, "interval")``); the
line map turns that path into the line a person should open. Secret references
(``${env:NAME}``, ``${file:PATH}``) are resolved here, before validation, into
:class:`SecretValue` strings so the model can insist that secret fields came from a
reference and so error messages never echo a resolved value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import redact
from ._exceptions import Problem

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_VALUES", "LineMap", "SecretValue", "YamlDocument",
           "format_path", "load_yaml", "read_limited"]

KeyPath = tuple[str | int, ...]

#: A config or profile describes one deployment; anything bigger is the wrong file or an attack.
MAX_FILE_BYTES = 1024 * 1024
#: Values a document may expand to through aliases (a "billion laughs" expands to 10^9).
MAX_VALUES = 100_000
#: Nesting of mappings and lists; real configs use under 10.
MAX_DEPTH = 64
#: A secret file holds one secret.
MAX_SECRET_BYTES = 64 * 1024

_REFERENCE = re.compile(r"\$\{([a-zA-Z_]+):([^}]*)\}")


class SecretValue(str):
    """A string that came from a ``${env:...}`` or ``${file:...}`` reference.

    ``repr`` hides the value, so it cannot leak through a debug print or a log line.
    """

    __slots__ = ("reference",)
    reference: str

    def __new__(cls, value: str, reference: str) -> SecretValue:
        obj = super().__new__(cls, value)
        obj.reference = reference
        return obj

    def __repr__(self) -> str:
        return f"SecretValue({self.reference})"


@dataclass
class LineMap:
    """Key path -> 1-based line number, for one YAML file."""

    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int:
        """Line of the longest prefix of ``path`` that exists in the file (0 if none)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 0

    def problem(self, path: KeyPath, message: str) -> Problem:
        return Problem(self.file, self.line_of(path), format_path(path), message)


@dataclass
class YamlDocument:
    data: Any
    lines: LineMap
    from_reference: dict[KeyPath, str]  # path -> the reference text, for values resolved from one
    unresolved: set[KeyPath] = field(default_factory=set)  # references that failed (already reported)


def format_path(path: KeyPath) -> str:
    """``("probes", "checks", 2, "interval")`` -> ``probes.checks[2].interval``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_limited(path: Path, limit: int, what: str = "file") -> str:
    """The UTF-8 text of ``path``, refusing a file larger than ``limit`` bytes or not text.

    Raises FileNotFoundError, or ValueError with a message fit for a Problem.
    """
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        size = path.stat().st_size
        raise ValueError(f"the {what} is {_size(size)}; at most {_size(limit)} is read "
                         "(is this the right file?)")
    if b"\0" in data:
        raise ValueError(f"expected a text {what}, got binary data")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"expected a UTF-8 text {what}, got other bytes") from None


def _size(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


def load_yaml(path: Path, display_name: str | None = None) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse ``path``; return the document (or None when unparseable) and the problems found."""
    name = display_name or str(path)
    try:
        text = read_limited(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        return None, [Problem(name, 0, "", "file not found")]
    except ValueError as exc:
        return None, [Problem(name, 0, "", str(exc))]
    except OSError as exc:
        return None, [Problem(name, 0, "", f"cannot read file: {exc.strerror or exc.__class__.__name__}")]
    return parse_yaml(text, name, base_dir=path.parent)


def parse_yaml(text: str, name: str, base_dir: Path) -> tuple[YamlDocument | None, list[Problem]]:
    lines = LineMap(name)
    problems: list[Problem] = []
    try:
        too_deep = _too_deep(text, name)
        if too_deep:
            return None, [too_deep]
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            shape = _check_shape(node, name) if node is not None else None
            if shape:
                return None, [shape]
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.context_mark:
            what = f"{exc.context} (line {exc.context_mark.line + 1}): {exc.problem}"
        return None, [Problem(name, line, "", f"invalid YAML: {what}")]
    except yaml.YAMLError as exc:
        return None, [Problem(name, 0, "", f"invalid YAML: {exc}")]
    if node is not None:
        _index(node, (), lines, problems)
    if data is None:
        data = {}
    doc = YamlDocument(None, lines, {})
    doc.data = _resolve(data, (), doc, base_dir, problems)
    return doc, problems


_OPEN = (yaml.BlockSequenceStartToken, yaml.BlockMappingStartToken, yaml.FlowSequenceStartToken,
         yaml.FlowMappingStartToken)
_CLOSE = (yaml.BlockEndToken, yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)


def _too_deep(text: str, name: str) -> Problem | None:
    """Refuse nesting past MAX_DEPTH before composing (PyYAML composes recursively)."""
    scanner = yaml.SafeLoader(text)
    depth = 0
    try:
        while True:
            token = scanner.get_token()
            if token is None or isinstance(token, yaml.StreamEndToken):
                return None
            if isinstance(token, _OPEN):
                depth += 1
                if depth > MAX_DEPTH:
                    return Problem(name, token.start_mark.line + 1, "",
                                   f"nested more than {MAX_DEPTH} levels deep")
            elif isinstance(token, _CLOSE):
                depth -= 1
    finally:
        scanner.dispose()


def _check_shape(root: yaml.Node, name: str) -> Problem | None:
    """Refuse a document that aliases expand past MAX_VALUES values, or that contains itself.

    Walks the node graph as validation would walk the data, with an explicit stack: an
    alias is a shared node, visited once per place it is used. Only expansion counts: a
    document without aliases has as many values as it has nodes, bounded by the file size
    (10,000 checks in one line each make 150,000; docs/probes.md, sizing).
    """
    visits = 0
    nodes: set[int] = set()
    ancestors: set[int] = set()
    # (node, depth, leaving?, line of the top-level entry it is under: where to point)
    stack: list[tuple[yaml.Node, int, bool, int]] = [(root, 0, False, 0)]
    while stack:
        node, depth, leaving, entry = stack.pop()
        if leaving:
            ancestors.discard(id(node))
            continue
        visits += 1
        nodes.add(id(node))
        line = node.start_mark.line + 1
        entry = entry or line
        if visits > MAX_VALUES and visits > 2 * len(nodes):
            return Problem(name, entry, "", f"aliases expand the document past {MAX_VALUES:,} values "
                           "(an alias bomb?)")
        if depth > MAX_DEPTH:
            return Problem(name, line, "", f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in ancestors:
                return Problem(name, line, "", "an alias refers to a node that contains it")
            ancestors.add(id(node))
            stack.append((node, depth, True, entry))
            children = ([v for pair in node.value for v in pair] if isinstance(node, yaml.MappingNode)
                        else list(node.value))
            stack.extend((child, depth + 1, False, entry if depth else 0) for child in reversed(children))
    return None


def _index(node: yaml.Node, path: KeyPath, lines: LineMap, problems: list[Problem]) -> None:
    lines.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                problems.append(Problem(lines.file, key_node.start_mark.line + 1,
                                        format_path(child), "key appears twice"))
            seen.add(key)
            lines.lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), lines, problems)


def _resolve(value: Any, path: KeyPath, doc: YamlDocument, base_dir: Path,
             problems: list[Problem]) -> Any:
    lines = doc.lines
    if isinstance(value, Mapping):
        return {k: _resolve(v, (*path, str(k)), doc, base_dir, problems)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, (*path, i), doc, base_dir, problems)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    failed = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal failed
        kind, arg = match.group(1), match.group(2).strip()
        if kind == "env":
            if arg not in os.environ:
                problems.append(lines.problem(path, f"environment variable {arg} is not set"))
                failed = True
                return ""
            redact.register(os.environ[arg])
            return os.environ[arg]
        if kind == "file":
            file = Path(arg).expanduser()
            file = file if file.is_absolute() else base_dir / file
            try:
                secret = read_limited(file, MAX_SECRET_BYTES, "secret file").strip()
            except OSError:
                problems.append(lines.problem(path, f"cannot read secret file {arg}"))
                failed = True
                return ""
            except ValueError as exc:
                problems.append(lines.problem(path, f"secret file {arg}: {exc}"))
                failed = True
                return ""
            redact.register(secret)
            return secret
        problems.append(lines.problem(
            path, f'unknown reference "${{{kind}:...}}" (expected ${{env:NAME}} or ${{file:PATH}})'))
        failed = True
        return ""

    resolved = _REFERENCE.sub(substitute, value)
    if failed:
        doc.unresolved.add(path)
        return value
    doc.from_reference[path] = value
    return SecretValue(resolved, value)
