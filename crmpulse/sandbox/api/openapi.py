"""The OpenAPI 3.1 document of the native API, generated from its endpoint table.

Paths, methods, parameters and request bodies come from the same ``Endpoint``s and
pydantic models that route and validate requests, so the document cannot describe
an API other than the one served. ``GET /openapi.json`` serves it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .common import Endpoint

__all__ = ["document"]

_REF = "#/components/schemas/{model}"
_ERROR = {
    "type": "object", "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a short code, e.g. validation_failed"},
        "message": {"type": "string"},
        "detail": {"type": "array", "description": "field errors (422)", "items": {
            "type": "object", "required": ["loc", "msg"],
            "properties": {"loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                           "msg": {"type": "string"}}}}}}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "api": [{"bearer": []}, {"basic": []}, {"apiKey": []}],
    "admin": [{"adminToken": []}],
    "token": [],
    "public": [],
}


def _parameter_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without pydantic's title, and never null (it is text)."""
    schema = {k: v for k, v in schema.items() if k != "title"}
    options = schema.pop("anyOf", None)
    if options:
        concrete = [o for o in options if o.get("type") != "null"]
        schema = {**concrete[0], **schema} if len(concrete) == 1 else {"anyOf": concrete, **schema}
    return schema


def _operation(endpoint: Endpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", endpoint.path)]
    if endpoint.query is not None:
        model = endpoint.query.model_json_schema()
        required = set(model.get("required", []))
        parameters += [{"name": name, "in": "query", "required": name in required,
                        "schema": _parameter_schema(schema)}
                       for name, schema in model["properties"].items()]
    error = {"description": "an error", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {str(status): {"description": text}
                                 for status, text in endpoint.responses.items()}
    responses["4XX"] = error
    responses["5XX"] = {**error, "description": "an injected fault (outage, error rate, capacity)"}
    operation: dict[str, Any] = {"operationId": endpoint.operation_id, "summary": endpoint.summary,
                                 "security": _SECURITY[endpoint.access], "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        body = endpoint.body.model_json_schema(ref_template=_REF)
        schemas.update(body.pop("$defs", {}))
        schemas[endpoint.body.__name__] = body
        ref = {"schema": {"$ref": _REF.format(model=endpoint.body.__name__)}}
        content = {"application/json": ref}
        if endpoint.form:
            content = {"application/x-www-form-urlencoded": ref, **content}
        operation["requestBody"] = {"required": True, "content": content}
    return operation


def document(endpoints: Iterable[Endpoint], title: str, version: str = "1") -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "The crmpulse sandbox CRM: a test target on loopback. "
                                "See docs/sandbox.md."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "a token from POST /oauth/token, or a personal access token"},
            "basic": {"type": "http", "scheme": "basic"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "adminToken": {"type": "apiKey", "in": "header", "name": "X-Admin-Token"}}},
    }
