"""The little reStructuredText ctid's docstrings use, turned into Markdown for the documentation site."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

_ROLE = re.compile(r":(?:class|func|meth|data|attr|mod|exc|obj):`~?([^`]+)`")
_LITERAL = re.compile(r"``(.+?)``")
_FIELD = re.compile(r"^:(param\s+(?P<param>\w+)|returns?|raises?\s+(?P<exc>[\w.]+)):\s*(?P<text>.*)$")
_VERSION = re.compile(r"^\.\.\s+(?P<what>versionadded|versionchanged|deprecated)::\s*(?P<version>\S+)\s*(?P<text>.*)$")


def inline(text: str) -> str:
    """``literal`` and :role:`target` become Markdown code spans."""
    return _LITERAL.sub(r"`\1`", _ROLE.sub(r"``\1``", text))


@dataclass
class Docstring:
    """A docstring split into its prose and its fields."""

    text: str = ""
    params: dict[str, str] = field(default_factory=dict)
    returns: str | None = None
    raises: dict[str, str] = field(default_factory=dict)
    versions: list[tuple[str, str, str]] = field(default_factory=list)  # (directive, version, text)


def parse(doc: str | None) -> Docstring:
    """Split a docstring into prose, ``:param x:``, ``:return:``, ``:raises X:`` and version notes.

    A field or directive runs on over the indented lines that follow it.
    """
    result = Docstring()
    lines = inspect.cleandoc(doc or "").splitlines()
    prose: list[str] = []
    current: list[str] | None = None
    target: tuple[str, str | None] | None = None

    def close() -> None:
        nonlocal current, target
        if current is None or target is None:
            return
        text = inline(" ".join(part.strip() for part in current).strip())
        kind, name = target
        if kind == "param":
            result.params[name or ""] = text
        elif kind == "returns":
            result.returns = text
        elif kind == "raises":
            result.raises[name or ""] = text
        else:
            directive, version = kind, name or ""
            result.versions.append((directive, version, text))
        current, target = None, None

    for line in lines:
        stripped = line.strip()
        field_match = _FIELD.match(stripped)
        version_match = _VERSION.match(stripped)
        if field_match:
            close()
            if field_match["param"]:
                target = ("param", field_match["param"])
            elif field_match["exc"]:
                target = ("raises", field_match["exc"])
            else:
                target = ("returns", None)
            current = [field_match["text"]]
        elif version_match:
            close()
            target = (version_match["what"], version_match["version"])
            current = [version_match["text"]]
        elif current is not None and stripped and line.startswith((" ", "\t")):
            current.append(stripped)
        else:
            close()
            prose.append(line)
    close()
    result.text = _prose(prose)
    return result


def _prose(lines: list[str]) -> str:
    """Paragraphs joined, ``::`` literal blocks fenced, inline markup converted."""
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.rstrip().endswith("::") and index + 1 < len(lines):
            text = line.rstrip()[:-1].rstrip()
            out.append(inline(text + (":" if text and not text.endswith(":") else "")))
            block: list[str] = []
            index += 1
            while index < len(lines) and (not lines[index].strip() or lines[index].startswith((" ", "\t"))):
                block.append(lines[index])
                index += 1
            out += ["", "```", *inspect.cleandoc("\n".join(block)).splitlines(), "```", ""]
            continue
        out.append(inline(line))
        index += 1
    return "\n".join(out).strip()
