"""The configuration reference page, generated from the pydantic models: the core's
(:class:`ctid.config.models.CtidConfig`) and the ``Config`` of every installed connector and CRM plugin.

Each key gets its type, default, limits and a description: the model field's ``description``, else
the comment next to the key in ``config/example-full.yaml``. :func:`config_keys` lists what the
page documents; ``tests/test_docs.py`` fails when a key has no description.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ctid.docgen.examplecomments import PLACEHOLDERS, example_comments

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example-full.yaml"


@dataclass
class KeyDoc:
    path: str  # server.listen, auth.users[].role, agents.<id>.pbx, connectors.<instance>.secret
    type: str
    default: str
    limits: str
    description: str
    section: bool  # a mapping of further keys (documented under its own heading)


@dataclass
class Section:
    title: str  # the key path, or "connectors.<instance> (plugin: generic)"
    doc: str
    keys: list[KeyDoc]


def _nested(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds and how: '' (a mapping), '[]' (a list of them), '.<name>' (keyed)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        return _nested(options[0]) if len(options) == 1 else None
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0], "[]"
    if origin is dict and len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return args[1], ".<name>"
    return None


def type_name(annotation: Any) -> str:
    if annotation is SecretStr:
        return "secret string"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f'`"{member.value}"`' for member in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{json.dumps(arg)}`" for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args)
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}" if len(args) == 2 else "mapping"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path", Any: "any"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return ""
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    try:
        return f"`{json.dumps(value, ensure_ascii=False)}`"
    except TypeError:
        return f"`{value}`"


_LIMITS = (("ge", "≥ {}"), ("gt", "> {}"), ("le", "≤ {}"), ("lt", "< {}"),
           ("min_length", "length ≥ {}"), ("max_length", "length ≤ {}"), ("pattern", "matches `{}`"))


def _limits(field: FieldInfo) -> str:
    found = []
    for meta in field.metadata:
        for attribute, form in _LIMITS:
            value = getattr(meta, attribute, None)
            if value is not None:
                found.append(form.format(value))
    return ", ".join(found)


def model_keys(model: type[BaseModel], prefix: str, comments: dict[str, str],
               comment_prefix: str | None = None) -> list[KeyDoc]:
    """Every key of ``model`` under ``prefix``, nested models' keys after their own entry."""
    keys: list[KeyDoc] = []
    comment_prefix = prefix if comment_prefix is None else comment_prefix
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}.{key}" if prefix else key
        comment_path = f"{comment_prefix}.{key}" if comment_prefix else key
        nested = _nested(field.annotation)
        description = field.description or comments.get(comment_path, "")
        if nested is not None and not description:
            description = _first_line(nested[0].__doc__)
        keys.append(KeyDoc(path, type_name(field.annotation), _default(field), _limits(field),
                           " ".join(description.split()), nested is not None))
        if nested is not None:
            inner, how = nested
            suffix = f".{PLACEHOLDERS.get(key, '<name>')}" if how == ".<name>" else how
            keys += model_keys(inner, path + suffix, comments, comment_path + suffix)
    return keys


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ")


def _plugins():
    from ctid.plugins import get_plugin_manager

    pm = get_plugin_manager()
    dists = {}
    for plugin in pm.describe():
        for name in [*plugin.get("connectors", []), *plugin.get("crms", [])]:
            dists[name] = plugin.get("dist") or plugin["name"]
    return pm.connector_classes(), pm.crm_classes(), dists


def config_sections(example: Path = EXAMPLE) -> list[Section]:
    """The page's sections: the core's keys, then each connector plugin's and each CRM plugin's."""
    from ctid.config.models import CtidConfig
    from ctid.connector import ConnectorConfig
    from ctid.crm import CRMConfig

    comments = example_comments(example)
    core = [key for key in model_keys(CtidConfig, "", comments) if key.path not in ("connectors", "crm")]
    sections: list[Section] = [Section("Top-level keys", _first_line(CtidConfig.__doc__),
                                       [key for key in core if "." not in key.path])]
    parents = [key for key in core if key.section]
    for parent in parents:
        children = [key for key in core if _parent(key.path) == parent.path]
        if children:
            sections.append(Section(parent.path, parent.description, children))
    connectors, crms, dists = _plugins()
    sections += _plugin_sections("connectors.<instance>", "connectors", "connector instance", ConnectorConfig,
                                 connectors, dists, comments)
    sections += _plugin_sections("crm", "crm", "CRM adapter", CRMConfig, crms, dists, comments)
    _fill_from_instances(sections, comments)
    return sections


def _plugin_sections(prefix: str, source: str, what: str, base: Any, classes: dict[str, Any],
                     dists: dict[str, str], comments: Any) -> list[Section]:
    """The keys every plugin of a kind accepts (``base``), then each plugin's own keys under ``prefix``."""
    depth = prefix.count(".") + 1  # a key's own name after the prefix
    sections = [Section(prefix, f"Keys every {what} accepts, whatever its plugin.",
                        model_keys(base, prefix, comments, f"{source}[*]"))]
    for name, cls in sorted(classes.items()):
        keys = [key for key in model_keys(cls.Config, prefix, comments, f"{source}[{name}]")
                if key.path.split(".", depth)[depth] not in base.model_fields or key.path.endswith(".plugin")]
        sections.append(Section(f"{prefix} with plugin: {name}",
                                f"From `{dists.get(name, '?')}`. " + _first_line(cls.__doc__ or cls.Config.__doc__),
                                keys))
    return sections


def _fill_from_instances(sections: list[Section], comments: dict[str, str]) -> None:
    """Base connector / CRM keys are explained once in the example, under whichever plugin it uses."""
    for section in sections:
        for key in section.keys:
            if key.description:
                continue
            top, _, rest = key.path.partition(".")
            rest = rest.removeprefix("<instance>.") if top == "connectors" else rest
            found = [text for name, text in comments.items() if name.startswith(f"{top}[") and name.endswith(f"].{rest}")]
            if found:
                key.description = found[0]


def _parent(path: str) -> str:
    head, _, _ = path.rpartition(".")
    for suffix in (".<id>", ".<instance>", ".<name>"):
        head = head.removesuffix(suffix)
    return head.removesuffix("[]")


def config_keys(example: Path = EXAMPLE) -> list[KeyDoc]:
    """Every key the page documents."""
    return [key for section in config_sections(example) for key in section.keys]


def render_config_reference(example: Path = EXAMPLE) -> str:
    lines = [
        "# Configuration reference",
        "",
        "Every key of ctid's YAML configuration and of each installed plugin's section, generated from the "
        "pydantic models when this site is built. `ctid config check FILE` validates a file against the same "
        "models (errors name the file, line and YAML path); `ctid config schema` prints them as JSON Schema; "
        "`config/example-full.yaml` is a complete commented example.",
        "",
        "`${VAR}`, `${VAR:-default}` and `${file:/path}` are substituted in any string value; secret values "
        "are never printed. `<id>`, `<instance>` and `<name>` stand for names you choose; `[]` marks a list "
        "of mappings.",
        "",
    ]
    sections = config_sections(example)
    titles = {section.title for section in sections}
    for section in sections:
        key_path, _, plugin = section.title.partition(" with plugin: ")
        title = f"`{key_path}` with `plugin: {plugin}`" if plugin else f"`{key_path}`"
        if section.title == "Top-level keys":
            title = section.title
        lines += [f"## {title} {{#{anchor(section.title)}}}", ""]
        if section.doc:
            lines += [section.doc, ""]
        lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        for key in section.keys:
            limits = f" ({key.limits})" if key.limits else ""
            text = key.description
            if key.section and key.path in titles:
                text += f" [Keys of `{key.path}`](#{anchor(key.path)})."
            lines.append(f"| `{key.path}` | {key.type}{limits} | {key.default} | {_cell(text)} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def anchor(title: str) -> str:
    """The HTML id of a section: ``auth.users`` -> ``auth-users``, ``connectors.<instance> with plugin: x``
    -> ``connectors-instance-with-plugin-x``."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in title.lower())
    return "-".join(part for part in slug.split("-") if part)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
