"""Reading configuration text: YAML with line tracking, ``conf.d/`` overrides and ``${...}`` substitution.

The result is plain data plus a map from dotted YAML path (``agents.alice.extension``; list items by
index, ``auth.users.0.role``) to ``file:line`` of the file that supplied the value, so that every
error can point at the line to fix.

Substitution in string values (whole value or part of it):

- ``${VAR}``: the environment variable; unset is an error naming the YAML path.
- ``${VAR:-default}``: the variable, or ``default`` when it is unset or empty.
- ``${file:/run/secrets/name}``: the file's text without its trailing newline (a relative path is
  read from the current working directory, like every relative path in the configuration).
- ``$${...}``: a literal ``${...}``.

Substituted values are strings; the models' lax validation turns ``"8080"`` into a number.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctid.errors import ConfigError

#: Override files are read from this directory next to the main file, in sorted order.
CONF_D = "conf.d"

#: Most values one file may expand to (protects against alias bombs).
MAX_NODES = 100_000

_TOKEN = re.compile(r"\$(?P<escape>\$)?\{(?P<body>[^}]*)\}|\$\{")
_VAR = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$", re.DOTALL)


@dataclass(slots=True)
class Document:
    """Merged configuration data, where each path came from, and the files read (main file first)."""

    data: dict[str, Any]
    lines: dict[str, str] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)


def join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def where(lines: dict[str, str], path: str) -> str:
    """``file:line`` of ``path`` or of its nearest ancestor present in the file ('' if none)."""
    while True:
        if path in lines:
            return lines[path]
        if not path:
            return ""
        path = path.rpartition(".")[0]


# -- YAML ----------------------------------------------------------------------------------------


def _yaml_error(exc: yaml.YAMLError, display: str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    source = f"{display}:{mark.line + 1}" if mark is not None else display
    return ConfigError(" ".join(message.split()), source=source)


def _record_lines(
    loader: yaml.SafeLoader, node: yaml.Node, path: str, display: str, lines: dict[str, str], stack: set[int]
) -> None:
    """Walk the composed node tree, recording ``path -> file:line`` (mapping keys at the key's line)."""
    if id(node) in stack:
        raise ConfigError(
            "an alias refers to the node that contains it",
            path=path,
            source=f"{display}:{node.start_mark.line + 1}",
        )
    if len(lines) > MAX_NODES:
        raise ConfigError(
            f"more than {MAX_NODES} values (aliases expanding too much?)",
            path=path,
            source=f"{display}:{node.start_mark.line + 1}",
        )
    stack.add(id(node))
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolve ``<<`` merge keys the way construction will
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int, float)) or isinstance(key, bool):
                raise ConfigError(
                    f"mapping keys must be strings, got {key!r} (quote the key: YAML reads on/off/yes/no as booleans)",
                    path=path,
                    source=f"{display}:{line}",
                )
            child = join(path, key)
            if str(key) in seen:
                raise ConfigError(
                    f"duplicate key {str(key)!r} (first at line {seen[str(key)]})",
                    path=child,
                    source=f"{display}:{line}",
                )
            seen[str(key)] = line
            lines[child] = f"{display}:{line}"
            _record_lines(loader, value_node, child, display, lines, stack)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = join(path, index)
            lines[child] = f"{display}:{item.start_mark.line + 1}"
            _record_lines(loader, item, child, display, lines, stack)
    stack.discard(id(node))


def _string_keys(value: Any) -> Any:
    """Mapping keys as strings (YAML reads ``101:`` as an int); the walk already refused odd keys."""
    if isinstance(value, dict):
        return {str(key): _string_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_string_keys(item) for item in value]
    return value


def parse_yaml(text: str, display: str) -> tuple[dict[str, Any], dict[str, str]]:
    """One YAML document as a mapping plus its line map. An empty document is an empty mapping."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[str, str] = {"": f"{display}:1"}
        if node is None:
            return {}, lines
        _record_lines(loader, node, "", display, lines, set())
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, display) from exc
    except RecursionError as exc:
        raise ConfigError("invalid YAML: nesting too deep", source=display) from exc
    finally:
        loader.dispose()
    if data is None:
        return {}, lines
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of keys, not a {type(data).__name__}", source=f"{display}:1"
        )
    return _string_keys(data), lines


def read_file(path: Path, display: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    display = display if display is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read configuration file: not UTF-8 text ({exc.reason})", source=display
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file: {exc.strerror or exc}", source=display) from exc
    return parse_yaml(text, display)


# -- conf.d ----------------------------------------------------------------------------------------


def _replace_lines(lines: dict[str, str], path: str, new_lines: dict[str, str]) -> None:
    for key in [key for key in lines if key == path or key.startswith(path + ".")]:
        del lines[key]
    lines.update({key: loc for key, loc in new_lines.items() if key == path or key.startswith(path + ".")})


def merge(
    base: dict[str, Any],
    lines: dict[str, str],
    over: dict[str, Any],
    over_lines: dict[str, str],
    prefix: str = "",
) -> None:
    """Deep-merge ``over`` into ``base`` in place: mappings merge, lists and scalars replace."""
    for key, value in over.items():
        path = join(prefix, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            lines.setdefault(path, over_lines.get(path, ""))
            merge(base[key], lines, value, over_lines, path)
        else:
            base[key] = value
            _replace_lines(lines, path, over_lines)


def override_files(main: Path) -> list[Path]:
    directory = main.parent / CONF_D
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def read_document(path: Path) -> Document:
    """The main file merged with its ``conf.d/*.yaml`` overrides (not yet substituted)."""
    data, lines = read_file(path)
    document = Document(copy.deepcopy(data), dict(lines), [path])
    for override in override_files(path):
        over, over_lines = read_file(override)
        merge(document.data, document.lines, copy.deepcopy(over), over_lines)
        document.sources.append(override)
    return document


# -- substitution ----------------------------------------------------------------------------------


def _resolve(body: str, path: str, lines: dict[str, str]) -> str:
    if body.startswith("file:"):
        name = body[len("file:") :].strip()
        if not name:
            raise ConfigError("${file:...} needs a file name", path=path, source=where(lines, path))
        try:
            return Path(name).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(
                f"cannot read secret file {name!r}: {reason}", path=path, source=where(lines, path)
            ) from exc
    match = _VAR.match(body)
    if match is None:
        raise ConfigError(
            f"bad substitution ${{{body}}}: use ${{VAR}}, ${{VAR:-default}} or ${{file:/path}}",
            path=path,
            source=where(lines, path),
        )
    value = os.environ.get(match["name"])
    if match["default"] is not None:
        return value if value else match["default"]
    if value is None:
        raise ConfigError(
            f"environment variable {match['name']} is not set (use ${{{match['name']}:-default}} for a default)",
            path=path,
            source=where(lines, path),
        )
    return value


def substitute_string(text: str, path: str, lines: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["body"] is None:
            raise ConfigError("unterminated ${ in value", path=path, source=where(lines, path))
        if match["escape"]:
            return "${" + match["body"] + "}"
        return _resolve(match["body"], path, lines)

    return _TOKEN.sub(replace, text) if "${" in text else text


def substitute(value: Any, lines: dict[str, str], path: str = "") -> Any:
    """A copy of ``value`` with every ``${...}`` in string scalars replaced."""
    if isinstance(value, dict):
        return {key: substitute(item, lines, join(path, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, lines, join(path, index)) for index, item in enumerate(value)]
    if isinstance(value, str):
        return substitute_string(value, path, lines)
    return value
