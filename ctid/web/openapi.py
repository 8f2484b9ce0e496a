"""A registry of REST routes that doubles as the OpenAPI 3.1 document served at ``/openapi.json``.

Routes declare themselves with :func:`route` next to their handler, so the document cannot drift
from the code: a test walks the app's URL map and fails on a route the document does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ctid import __version__


@dataclass
class RouteDoc:
    path: str  # OpenAPI form, e.g. /api/calls/{id}
    method: str
    summary: str
    tag: str
    auth: bool = True
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    errors: dict[int, str] = field(default_factory=dict)
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: int = 200  # the success status (204: no body)
    media_type: str = "application/json"  # of the success answer
    #: Other media types the success answer may have (a report as CSV ...): media type -> schema.
    media_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Schemas of path parameters (default: any string), e.g. an id's pattern or a report name's enum.
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)


DOCS: list[RouteDoc] = []

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string", "description": "stable error id"}, "message": {"type": "string"}},
}


def quart_to_openapi(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", r"{\1}", rule)


def document(**kwargs: Any) -> RouteDoc:
    doc = RouteDoc(**kwargs)
    DOCS.append(doc)
    return doc


def openapi_document(schemas: dict[str, Any], extra: list[RouteDoc] = ()) -> dict[str, Any]:
    """The document of ctid's routes plus ``extra`` (the plugin routes one app mounted)."""
    paths: dict[str, Any] = {}
    for doc in [*DOCS, *extra]:
        op: dict[str, Any] = {"summary": doc.summary, "tags": [doc.tag], "responses": {}}
        params = [
            {"name": name, "in": "path", "required": True, "schema": doc.path_params.get(name, {"type": "string"})}
            for name in re.findall(r"{([a-zA-Z_]+)}", doc.path)
        ]
        params += [{"name": name, "in": "query", "required": False, "schema": schema}
                   for name, schema in doc.query.items()]
        if params:
            op["parameters"] = params
        if doc.request is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": doc.request}}}
        if doc.status == 204:
            op["responses"]["204"] = {"description": "No Content"}
        else:
            schema = doc.response or ({"type": "object"} if doc.media_type == "application/json" else {"type": "string"})
            content = {doc.media_type: {"schema": schema}, **{media: {"schema": other}
                                                               for media, other in doc.media_types.items()}}
            op["responses"][str(doc.status)] = {"description": "OK", "content": content}
        errors = dict(doc.errors)
        if doc.request is not None:  # every JSON body passes ctid's input limits and the size limit
            errors.setdefault(400, "malformed JSON, or input beyond ctid's input limits (docs/input-limits.md)")
            errors.setdefault(413, "body larger than server.max_body_bytes")
        if doc.auth:
            errors.setdefault(401, "missing, bad or expired token")
            op["security"] = [{"bearer": []}]
        for status, description in sorted(errors.items()):
            op["responses"][str(status)] = {
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        paths.setdefault(doc.path, {})[doc.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "ctid", "version": __version__,
                 "description": "REST API of ctid, the computer-telephony integration daemon. Every JSON body "
                                "and text is checked once at the boundary (docs/input-limits.md): UTF-8 only, "
                                "no lone surrogates and no NUL (U+0000) in any string, path or query parameter, "
                                "nesting depth 32, numbers "
                                "of 100 characters, strings of 64 Ki; a breach is a 400 with its error id."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "access token from POST /api/auth/token, or an API key"}},
            "schemas": {"Error": _ERROR, **schemas},
        },
    }
