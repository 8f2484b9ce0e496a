"""The REST reference page, generated from the OpenAPI document a running ctid serves at ``/openapi.json``.

:func:`fetch_openapi` starts a throw-away daemon (SQLite in a temporary directory, the installed
plugins loaded, so their routes under ``/plugins/{name}/`` are included) and asks it for the
document; :func:`render_rest_reference` turns the document into Markdown: one section per tag, one
entry per operation with its parameters, request body, responses and the schemas they refer to.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

_METHODS = ("get", "post", "put", "patch", "delete")


def fetch_openapi() -> dict[str, Any]:
    """GET ``/openapi.json`` from a ctid started for the purpose, then stopped."""
    import trio

    from ctid.testing.daemon import running_daemon

    async def main() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="ctid-docs-") as tmp:
            config = {"database": {"url": f"sqlite:///{Path(tmp) / 'docs.db'}"}, "data_dir": str(Path(tmp) / "var")}
            async with running_daemon(config) as app:
                response = await app.client.get("/openapi.json")
                response.raise_for_status()
                return response.json()

    return trio.run(main)


def render_rest_reference(spec: dict[str, Any] | None = None) -> str:
    spec = fetch_openapi() if spec is None else spec
    info = spec.get("info", {})
    lines = [
        "# REST reference",
        "",
        f"{info.get('description', '')} Version {info.get('version', '')}, OpenAPI {spec.get('openapi', '')}.",
        "",
        "This page is generated when the site is built from the document a running ctid serves at "
        "`/openapi.json` (the same document: [openapi.json](openapi.json)), installed plugins' routes "
        "under `/plugins/{name}/` included.",
        "",
        "Authentication: `Authorization: Bearer <token>` with a token from `POST /api/auth/token` or an API "
        "key (`auth.api_keys[]`). Errors are JSON `{\"error\": \"<stable id>\", \"message\": \"...\"}` "
        "([`Error`](#schema-error)).",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((path, method, operation))
    lines += ["| operation | summary |", "| --- | --- |"]
    for tag in sorted(by_tag):
        for path, method, operation in by_tag[tag]:
            lines.append(f"| [`{method.upper()} {path}`](#{_anchor(method, path)}) | {_cell(operation.get('summary', ''))} |")
    lines.append("")
    for tag in sorted(by_tag):
        lines += [f"## {tag}", ""]
        for path, method, operation in by_tag[tag]:
            lines += _operation(path, method, operation)
    schemas = spec.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Schemas", ""]
        for name, schema in schemas.items():
            lines += [f"### {name} {{#schema-{name.lower()}}}", "", *_schema(schema), ""]
    return "\n".join(lines).rstrip() + "\n"


def _anchor(method: str, path: str) -> str:
    slug = "".join(ch if ch.isalnum() else "-" for ch in f"{method}-{path}".lower())
    return "-".join(part for part in slug.split("-") if part)


def _operation(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}` {{#{_anchor(method, path)}}}", "", operation.get("summary", ""), ""]
    lines += ["Authentication: " + ("bearer token or API key" if operation.get("security") else "none"), ""]
    params = operation.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | description |", "| --- | --- | --- | --- | --- |"]
        for param in params:
            schema = param.get("schema", {})
            description = param.get("description") or schema.get("description", "")
            lines.append(f"| `{param['name']}` | {param.get('in', '')} | {_type(schema)} | "
                         f"{'yes' if param.get('required') else 'no'} | {_cell(description)} |")
        lines.append("")
    body = operation.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            lines += [f"Request body (`{media}`):", "", *_schema(content.get("schema", {})), ""]
    lines += ["| status | meaning | body |", "| --- | --- | --- |"]
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {})
        schema = next(iter(content.values()), {}).get("schema", {}) if content else {}
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {_type(schema) if schema else ''} |")
    lines.append("")
    ok = operation.get("responses", {}).get("200", {}).get("content", {})
    schema = next(iter(ok.values()), {}).get("schema", {}) if ok else {}
    if schema.get("properties") or schema.get("items", {}).get("properties"):
        lines += ["Response `200`:", "", *_schema(schema), ""]
    return lines


def _schema(schema: dict[str, Any]) -> list[str]:
    """A property table for an object schema (one level), else its type in a sentence."""
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict) and schema["items"].get("properties"):
        return ["A list of:", "", *_schema(schema["items"])]
    properties = schema.get("properties")
    if not properties:
        return [_type(schema)]
    required = set(schema.get("required", []))
    lines = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for name, prop in properties.items():
        lines.append(f"| `{name}` | {_type(prop)} | {'yes' if name in required else 'no'} | "
                     f"{_cell(prop.get('description', ''))} |")
    return lines


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#schema-{name.lower()})"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    for combiner in ("anyOf", "oneOf"):
        if combiner in schema:
            return " or ".join(_type(option) for option in schema[combiner])
    kind = schema.get("type", "object" if "properties" in schema else "")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {})) or 'any'}"
    extra = [f"{key} {schema[key]}" for key in ("format", "minimum", "maximum", "default") if key in schema]
    return (kind or "any") + (f" ({', '.join(extra)})" if extra else "")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
