"""The comments of ``config/example-full.yaml``, by configuration key, as descriptions for the reference.

``server.listen``, ``auth.users[].role``, ``agents.<id>.pbx``; a connector instance's keys as
``connectors[<plugin>].<key>`` and the CRM's as ``crm[<plugin>].<key>`` (the ``plugin:`` value of
that instance), since different plugins have different keys. A commented-out key with a trailing
comment (``# secret: ...   # what it is``) counts too.
"""

from __future__ import annotations

import re
from pathlib import Path

_KEY = re.compile(r"^(?P<indent>\s*)(?P<off>#\s*)?(?P<dash>-\s+)?(?P<key>[A-Za-z_][\w-]*):(?P<rest>(\s.*)?)$")
_COMMENT = re.compile(r"""^(?P<value>(?:[^#"']|"[^"]*"|'[^']*')*?)\s+#\s?(?P<comment>.*)$""")
PLACEHOLDERS = {"agents": "<id>", "connectors": "<instance>"}


def example_comments(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    entries: list[tuple[list[str], str, str]] = []  # (path, value, comment)
    stack: list[tuple[int, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _KEY.match(line)
        if match is None:
            continue
        rest = match["rest"] or ""
        comment_match = _COMMENT.match(rest)
        value, comment = (comment_match["value"], comment_match["comment"]) if comment_match else (rest, "")
        if match["off"] and not comment:
            continue  # a commented-out example without an explanation
        indent = len(match["indent"])  # a commented-out key's "#" stands where the key would
        if match["dash"]:
            indent += len(match["dash"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            if stack and not stack[-1][1].endswith("[]"):
                stack[-1] = (stack[-1][0], stack[-1][1] + "[]")
        else:
            while stack and stack[-1][0] >= indent:
                stack.pop()
        stack.append((indent, match["key"]))
        entries.append(([key for _, key in stack], value.strip().strip("\"'"), comment.strip()))
    plugins: dict[tuple[str, ...], str] = {}  # (connectors, <instance>) or (crm,) -> its plugin
    for keys, value, _ in entries:
        if keys[0] == "connectors" and len(keys) == 3 and keys[2] == "plugin":
            plugins[tuple(keys[:2])] = value
        elif keys == ["crm", "plugin"]:
            plugins[("crm",)] = value
    comments: dict[str, str] = {}
    for keys, _, comment in entries:
        if not comment:
            continue
        comments.setdefault(_name(keys, plugins), comment)  # the first example explains, later ones vary
    return comments


def _name(keys: list[str], plugins: dict[tuple[str, ...], str]) -> str:
    if keys[0] == "connectors" and len(keys) >= 3:
        return f"connectors[{plugins.get(tuple(keys[:2]), '?')}]." + ".".join(keys[2:])
    if keys[0] == "crm" and len(keys) >= 2:
        return f"crm[{plugins.get(('crm',), '?')}]." + ".".join(keys[1:])
    if keys[0] in PLACEHOLDERS and len(keys) >= 2:
        keys = [keys[0], PLACEHOLDERS[keys[0]], *keys[2:]]
    return ".".join(keys)
