"""Loading the configuration: YAML (+ ``conf.d/``) -> validated :class:`Settings`, errors by YAML path and line.

::

    settings = load_config("config/ctid.yaml")            # plugin manager created on demand
    settings.core.server.listen                           # core keys (ctid.config.models)
    settings.connectors["office"]                         # the generic plugin's validated Config
    settings.connector_types["office"]                    # ... and its Connector class

The core model validates everything but ``connectors`` and ``crm``, whose entries are validated by
the model (``Config``) of the plugin their ``plugin`` key names; disabled connector instances are
validated too. Every problem raises :class:`ctid.errors.ConfigError` whose one-line text is
``file.yaml:12: agents.alice.extension: Input should be a valid string``; a needed plugin that
failed to load raises :class:`ctid.errors.PluginLoadError`.

Top-level keys starting with ``x-`` are ignored: a place to define YAML anchors for reuse.

Relative paths inside the configuration (``data_dir``, ``sqlite:///var/ctid.db``, ``${file:...}``)
are relative to the **current working directory** of the process, not to the file's directory:
run ctid from the deployment directory (the systemd unit's ``WorkingDirectory``) or use absolute
paths. :attr:`Settings.base_dir` is the file's directory, for tools that want to resolve against it.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ctid.config import source
from ctid.config.models import CtidConfig
from ctid.connector import ConnectorConfig
from ctid.crm import CRMConfig
from ctid.errors import ConfigError

if TYPE_CHECKING:
    from ctid.connector import Connector
    from ctid.crm import CRMAdapter
    from ctid.plugins import CtidPluginManager

__all__ = ["Settings", "load_config", "load_config_dict", "redacted", "json_schema"]


@dataclass(slots=True)
class Settings:
    """The validated configuration."""

    core: CtidConfig
    connectors: dict[str, ConnectorConfig]
    crm: CRMConfig | None
    path: Path | None
    base_dir: Path
    sources: list[Path] = field(default_factory=list)
    #: Connector instance -> the class its ``plugin`` names (disabled instances included).
    connector_types: dict[str, type[Connector]] = field(default_factory=dict)
    crm_type: type[CRMAdapter] | None = None
    #: Dotted YAML path -> ``file:line`` of the file that supplied it.
    lines: dict[str, str] = field(default_factory=dict, repr=False)
    #: Problems that do not stop ctid (a disabled connector whose plugin failed to load).
    warnings: list[str] = field(default_factory=list)

    def where(self, path: str) -> str:
        """``file:line`` for a dotted YAML path (or its nearest ancestor), '' when unknown."""
        return source.where(self.lines, path)

    def error(self, message: str, path: str) -> ConfigError:
        """A :class:`ConfigError` about ``path``, pointing at its line (for checks done after loading)."""
        return ConfigError(message, path=path, source=self.where(path))

    def enabled_connectors(self) -> dict[str, ConnectorConfig]:
        return {name: config for name, config in self.connectors.items() if config.enabled}


def load_config(path: str | Path, pm: CtidPluginManager | None = None) -> Settings:
    """Read, merge, substitute and validate the configuration file at ``path`` and its ``conf.d/``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("configuration file not found", source=str(path))
    if not path.is_file():
        raise ConfigError("configuration path is not a file", source=str(path))
    document = source.read_document(path)
    data = source.substitute(document.data, document.lines)
    return _build(data, document.lines, pm, path=path, sources=document.sources)


def load_config_dict(
    data: dict[str, Any], pm: CtidPluginManager | None = None, *, base_dir: str | Path = "."
) -> Settings:
    """Validate configuration given as a mapping (tests, ``ctid.testing``); ``${...}`` is substituted."""
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of keys, not a {type(data).__name__}")
    data = source.substitute(copy.deepcopy(data), {})
    return _build(data, {}, pm, path=None, sources=[], base_dir=Path(base_dir))


def _build(
    data: dict[str, Any],
    lines: dict[str, str],
    pm: CtidPluginManager | None,
    *,
    path: Path | None,
    sources: list[Path],
    base_dir: Path | None = None,
) -> Settings:
    # top-level ``x-...`` keys are ignored (a place for YAML anchors, as in docker compose files)
    data = {key: value for key, value in data.items() if not str(key).startswith("x-")}
    core = _validate(CtidConfig, data, lines, "")
    _check_password_hashes(core, lines)
    if pm is None:
        from ctid.plugins import get_plugin_manager

        pm = get_plugin_manager()
    settings = Settings(
        core=core,
        connectors={},
        crm=None,
        path=path,
        base_dir=base_dir if base_dir is not None else (path.parent if path else Path(".")),
        sources=list(sources),
        lines=lines,
    )
    _validate_plugins(settings, pm, data)
    return settings


def _validate_plugins(settings: Settings, pm: CtidPluginManager, data: dict[str, Any]) -> None:
    from ctid.errors import PluginLoadError

    lines = settings.lines
    try:
        pm.ensure_enabled_ok(settings.core)
    except ConfigError as exc:
        raise ConfigError(exc.reason, path=exc.path, source=source.where(lines, exc.path)) from None
    except PluginLoadError as exc:
        where = source.where(lines, str(exc).split(":", 1)[0])
        raise PluginLoadError(f"{where}: {exc}" if where else str(exc)) from None
    connector_classes = pm.connector_classes()
    for instance, raw in settings.core.connectors.items():
        prefix = f"connectors.{instance}"
        cls = connector_classes.get(raw["plugin"])
        if cls is None:  # a disabled instance whose plugin failed to load (ensure_enabled_ok let it pass)
            settings.connectors[instance] = ConnectorConfig.model_construct(**raw)
            settings.warnings.append(
                f"{prefix}: disabled, and its plugin {raw['plugin']!r} is unavailable; not validated"
            )
            continue
        settings.connectors[instance] = _validate(cls.Config, raw, lines, prefix, _plugin_context(settings))
        settings.connector_types[instance] = cls
    if settings.core.crm is not None:
        cls = pm.crm_classes()[settings.core.crm["plugin"]]
        settings.crm = _validate(cls.Config, settings.core.crm, lines, "crm", _plugin_context(settings))
        settings.crm_type = cls


def _check_password_hashes(core: CtidConfig, lines: dict[str, str]) -> None:
    from ctid.auth_hash import looks_like_hash

    for index, user in enumerate(core.auth.users):
        if not looks_like_hash(user.password_hash.get_secret_value()):
            path = f"auth.users.{index}.password_hash"
            raise ConfigError(
                "not a password hash (create one with `ctid auth hash-password`)",
                path=path,
                source=source.where(lines, path),
            )


# -- pydantic errors -> ConfigError ----------------------------------------------------------------

_MESSAGES = {"missing": "missing required key"}


def _plugin_context(settings: Settings) -> dict[str, Any]:
    """What a plugin's configuration validators may look at (``ValidationInfo.context``): the
    ``agents`` (id -> AgentConfig) and the names of the ``connectors`` instances."""
    return {"agents": dict(settings.core.agents), "connectors": sorted(settings.core.connectors)}


def _validate(
    model: type[BaseModel], data: Any, lines: dict[str, str], prefix: str, context: dict[str, Any] | None = None
) -> Any:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise _translate(exc, model, data, lines, prefix) from None
    except Exception as exc:  # a plugin's validator crashed instead of raising ValueError
        raise ConfigError(
            f"the plugin's configuration model failed: {type(exc).__name__}: {exc}",
            path=prefix,
            source=source.where(lines, prefix),
        ) from exc


def _translate(
    exc: ValidationError, model: type[BaseModel], data: Any, lines: dict[str, str], prefix: str
) -> ConfigError:
    errors = exc.errors(include_url=False)
    # a misspelled key also makes the right one "missing": the unknown key is the one to report
    error = next((item for item in errors if item["type"] == "extra_forbidden"), errors[0])
    loc = _data_loc(error["loc"], data)
    message = error["msg"]
    ctx_error = (error.get("ctx") or {}).get("error")
    if error["type"] in ("value_error", "assertion_error") and ctx_error is not None:
        message = str(ctx_error)
        head, sep, rest = message.partition(": ")
        if not loc and sep and head and " " not in head:  # a model validator naming the path itself
            loc, message = head.split("."), rest
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
        allowed = _fields_at(model, loc[:-1])
        if allowed:
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            message += f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
    else:
        message = _MESSAGES.get(error["type"], message)
    path = ".".join(str(part) for part in (prefix.split(".") if prefix else []) + list(loc))
    return ConfigError(message, path=path, source=source.where(lines, path))


def _data_loc(loc: tuple[Any, ...], data: Any) -> list[Any]:
    """pydantic's ``loc`` without union member tags: follow the data, keep the last part."""
    out: list[Any] = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif index == len(loc) - 1:
            current = None
        else:
            continue
        out.append(part)
    return out


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _unwrap(members[0]) if len(members) == 1 else annotation
    return annotation


def _fields_at(model: type[BaseModel], loc: list[Any]) -> list[str]:
    """Field names of the model found at ``loc`` inside ``model`` (for "did you mean")."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(part))
            if info is None:
                return []
            annotation = info.annotation
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        elif typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, secrets replaced by ``"***"`` (see ctid.config.render)."""
    from ctid.config.render import redacted as _redacted

    return _redacted(settings)


def json_schema(pm: CtidPluginManager | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the whole file, plugins' sections included."""
    from ctid.config.render import json_schema as _json_schema

    return _json_schema(pm)
