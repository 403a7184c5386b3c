"""Turn pydantic's validation errors into located, human problems.

Every error becomes ``FILE:LINE key.path: what was expected, what was found``; the
key path is the one the user wrote (pydantic's union tags are dropped from it), and
values that came from a secret reference are never echoed.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel

from ._exceptions import Problem
from ._yamlfile import KeyPath, SecretValue, YamlDocument

__all__ = ["validate_document"]

M = TypeVar("M", bound=BaseModel)

_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "finite_number": "a finite number",
}


def validate_document(model: type[M], doc: YamlDocument) -> tuple[M | None, list[Problem]]:
    """Validate ``doc.data`` against ``model``; return the instance or the problems."""
    try:
        return model.model_validate(doc.data, context={"source": "yaml"}), []
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            path = _user_path(doc.data, error["loc"])
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                path = (*path, str((error.get("ctx") or {}).get("discriminator", "kind")).strip("'"))
            if any(path[: len(p)] == p for p in doc.unresolved):
                continue  # the failed reference was already reported
            problems.append(doc.lines.problem(path, _message(model, doc, path, error)))
        return None, problems


def _user_path(data: Any, loc: tuple[Any, ...]) -> KeyPath:
    """Drop the union tags pydantic inserts into ``loc``, keeping keys the user wrote."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if part == "[key]":  # pydantic's marker for a bad mapping key: the key is the path
            continue
        if isinstance(node, dict):
            if part in node:
                out.append(part)
                node = node[part]
            elif last or not isinstance(part, str):
                out.append(part)
                node = None
            # else: a discriminator tag or validator name: not part of the user's path
        elif isinstance(node, list) and isinstance(part, int):
            out.append(part)
            node = node[part] if part < len(node) else None
        elif isinstance(node, list | dict):
            continue
        else:
            if not isinstance(part, str) or last:
                out.append(part)
            node = None
    return tuple(out)


def _message(model: type[BaseModel], doc: YamlDocument, path: KeyPath, error: Any) -> str:
    kind: str = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    secret = isinstance(value, SecretValue) or path in doc.from_reference
    found = "a value from a secret reference (not shown)" if secret else _show(value)
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, doc.data, path[:-1])
        hint = ""
        if allowed:
            close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
            hint = (f' (did you mean "{close[0]}"?)' if close
                    else f" (expected one of: {', '.join(sorted(allowed))})")
        return f"unknown key{hint}"
    if kind == "value_error":
        message = str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
        if secret and ", got" in message:
            message = message.split(", got")[0] + f", got {found}"
        return message
    if kind == "union_tag_invalid":
        return f"expected one of {ctx.get('expected_tags')}, got {_show(ctx.get('tag'))}"
    if kind == "union_tag_not_found":
        return "required key is missing"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {found}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {found}"
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {found}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r}"


def _allowed_keys(model: type[BaseModel], data: Any, path: KeyPath) -> list[str]:
    """Field names (by alias) accepted at ``path``, found by walking the model's types."""
    tp: Any = model
    node = data
    for part in path:
        tp = _narrow(tp, node)
        if tp is None:
            return []
        if isinstance(part, int):
            args = typing.get_args(tp)
            tp = args[0] if args else None
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = _field_by_alias(tp, part)
            tp = field.annotation if field else None
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return []
        node = node.get(part) if isinstance(node, dict) else None
    tp = _narrow(tp, node)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return []


def _field_by_alias(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return field
    return None


def _narrow(tp: Any, node: Any) -> Any:
    """Resolve Annotated/Optional/discriminated unions to the type that applies to ``node``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            if len(members) == 1:
                tp = members[0]
                continue
            if models and isinstance(node, dict):
                for m in models:
                    for name, field in m.model_fields.items():
                        args = typing.get_args(field.annotation)
                        if name in ("kind", "type", "mode") and node.get(name) in args:
                            return m
                return models[0] if len(models) == 1 else None
            return members[0] if members else None
        return tp
