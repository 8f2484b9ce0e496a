"""Showing the configuration: the redacted effective config (``ctid config show``) and its JSON Schema.

Redaction replaces every ``SecretStr`` field (core or plugin) by ``"***"``, and defensively also any
string under a key that names a secret (``secret``, ``password``, ``token``, ``key``, ``api_key``,
...) and the password of any ``scheme://user:password@host`` URL, so a plugin that forgot to declare
a field ``SecretStr`` still does not leak it.
"""

from __future__ import annotations

import datetime
import enum
import re
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretBytes, SecretStr

from ctid.config.models import CtidConfig

if TYPE_CHECKING:
    from ctid.config.loader import Settings
    from ctid.plugins import CtidPluginManager

MASK = "***"

_SECRET_KEY = re.compile(
    r"secret|passw|token|credential|private|(^|[_-])(api[_-]?)?keys?($|[_-])|apikey", re.IGNORECASE
)
_URL_WITH_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@")

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _plain(value: Any, key: str = "") -> Any:
    if isinstance(value, (SecretStr, SecretBytes)):
        return MASK
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name), name) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): _plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item, key) for item in value]
    if isinstance(value, enum.Enum):
        return _plain(value.value, key)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, str):
        if key and _SECRET_KEY.search(key):
            return MASK
        return _redact_url(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _redact_url(str(value))


def _redact_url(value: str) -> str:
    if not _URL_WITH_PASSWORD.match(value):
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return MASK
    if parts.password is None:
        return value
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{user}:{MASK}@{host}" + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective merged configuration (defaults included) as plain data, secrets masked."""
    data = _plain(settings.core)
    data["connectors"] = {name: _plain(config) for name, config in settings.connectors.items()}
    data["crm"] = _plain(settings.crm) if settings.crm is not None else None
    return data


# -- JSON Schema -------------------------------------------------------------------------------------


def _plugin_schema(
    config_model: type[BaseModel], plugin_name: str, def_name: str, defs: dict[str, Any]
) -> dict[str, Any]:
    """The plugin model's schema with its ``$defs`` moved (renamed) into ``defs``; returns a ``$ref``."""
    prefix = f"{def_name}__"
    schema = config_model.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
    for name, definition in schema.pop("$defs", {}).items():
        defs[prefix + name] = definition
    properties = schema.setdefault("properties", {})
    plugin = dict(properties.get("plugin", {}))
    plugin.pop("type", None)
    plugin["const"] = plugin_name
    properties["plugin"] = plugin
    required = schema.setdefault("required", [])
    if "plugin" not in required:
        required.insert(0, "plugin")
    defs[def_name] = schema
    return {"$ref": f"#/$defs/{def_name}"}


def _safe_plugin_schema(
    config_model: type[BaseModel], plugin_name: str, def_name: str, defs: dict[str, Any]
) -> dict[str, Any]:
    """Like :func:`_plugin_schema`, but a model pydantic cannot describe yields a loose object schema."""
    try:
        return _plugin_schema(config_model, plugin_name, def_name, defs)
    except Exception as exc:  # a plugin's model is third-party code: never break `ctid config schema`
        defs[def_name] = {
            "type": "object",
            "description": f"schema unavailable: {type(exc).__name__}: {exc}",
            "required": ["plugin"],
            "properties": {"plugin": {"const": plugin_name}},
        }
        return {"$ref": f"#/$defs/{def_name}"}


def _def_name(kind: str, plugin_name: str) -> str:
    return f"{kind}__" + re.sub(r"[^A-Za-z0-9_.-]", "_", plugin_name)


def json_schema(pm: CtidPluginManager | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the configuration file with every installed plugin's section.

    ``connectors`` maps instance names to a ``oneOf`` of the connector plugins' models, each with
    ``plugin`` fixed by ``const``; ``crm`` is a ``oneOf`` of the CRM plugins' models, or null.
    """
    if pm is None:
        from ctid.plugins import get_plugin_manager

        pm = get_plugin_manager()
    schema = CtidConfig.model_json_schema()
    defs = schema.setdefault("$defs", {})
    properties = schema["properties"]

    connectors = [
        _safe_plugin_schema(cls.Config, name, _def_name("connector", name), defs)
        for name, cls in sorted(pm.connector_classes().items())
    ]
    any_plugin = {"type": "object", "required": ["plugin"], "properties": {"plugin": {"type": "string"}}}
    properties["connectors"] = {
        "type": "object",
        "description": "PBX connector instances by name; 'plugin' selects the connector type.",
        "additionalProperties": {"oneOf": connectors} if connectors else any_plugin,
        "default": {},
    }
    crms = [
        _safe_plugin_schema(cls.Config, name, _def_name("crm", name), defs)
        for name, cls in sorted(pm.crm_classes().items())
    ]
    properties["crm"] = {
        "description": "The CRM adapter; 'plugin' selects its type. Omit it to run without a CRM.",
        "anyOf": [{"oneOf": crms} if crms else any_plugin, {"type": "null"}],
        "default": None,
    }
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "ctid configuration"}
