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

__all__ = ["LineMap", "SecretValue", "YamlDocument", "format_path", "load_yaml"]

KeyPath = tuple[str | int, ...]

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


def load_yaml(path: Path, display_name: str | None = None) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse ``path``; return the document (or None when unparseable) and the problems found."""
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(name, 0, "", "file not found")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, 0, "", f"cannot read file: {exc.__class__.__name__}")]
    return parse_yaml(text, name, base_dir=path.parent)


def parse_yaml(text: str, name: str, base_dir: Path) -> tuple[YamlDocument | None, list[Problem]]:
    lines = LineMap(name)
    problems: list[Problem] = []
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
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
                secret = file.read_text(encoding="utf-8").strip()
            except OSError:
                problems.append(lines.problem(path, f"cannot read secret file {arg}"))
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
