"""The hook reference page, generated from ``ctid/hookspecs.py``, and the check that every hook is documented.

Hooks are listed in the order of the file, under its banner comments; each with its signature, its
pluggy options, its docstring, a table of its parameters and the version it appeared in.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from types import ModuleType

from ctid.docgen.rst import Docstring, parse

FIRSTRESULT_SENTENCE = "Stops at first non-None result"
_BANNER = re.compile(r"^# -{10,}\n# (?P<title>.+?)\n# -{10,}$", re.MULTILINE)


@dataclass
class HookDoc:
    name: str
    section: str
    signature: str
    params: list[str]
    options: dict[str, bool]
    doc: Docstring
    raw_doc: str


def hook_docs(module: ModuleType | None = None) -> list[HookDoc]:
    """Every hookspec of ``module`` (default: :mod:`ctid.hookspecs`), in source order."""
    if module is None:
        from ctid import hookspecs as module
    project = getattr(getattr(module, "hookspec", None), "project_name", "ctid")
    source = inspect.getsource(module)
    sections = [(match.start(), match["title"].strip()) for match in _BANNER.finditer(source)]
    found = []
    for name, function in vars(module).items():
        options = getattr(function, f"{project}_spec", None)
        if options is None or not callable(function):
            continue
        position = source.find(f"\ndef {name}(")
        section = next((title for start, title in reversed(sections) if start < position), "Hooks")
        signature = inspect.signature(function)
        found.append((position, HookDoc(
            name=name,
            section=section.rstrip("."),
            signature=_signature(name, signature),
            params=list(signature.parameters),
            options={key: bool(value) for key, value in options.items() if isinstance(value, bool)},
            doc=parse(function.__doc__),
            raw_doc=inspect.cleandoc(function.__doc__ or ""),
        )))
    return [doc for _, doc in sorted(found, key=lambda item: item[0])]


def _signature(name: str, signature: inspect.Signature) -> str:
    """``def name(a: T, b: U) -> R`` with the annotations as written (they are strings here)."""

    def text(annotation: object) -> str:
        return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)

    params = ", ".join(
        name if param.annotation is param.empty else f"{name}: {text(param.annotation)}"
        for name, param in signature.parameters.items()
    )
    returns = "" if signature.return_annotation is signature.empty else f" -> {text(signature.return_annotation)}"
    return f"def {name}({params}){returns}"


def hook_problems(module: ModuleType | None = None) -> list[str]:
    """What keeps a hook from being documented: each problem names the hook. Empty when all are."""
    problems = []
    for hook in hook_docs(module):
        if not hook.doc.text:
            problems.append(f"{hook.name}: no docstring saying when it is called")
        for param in hook.params:
            if not hook.doc.params.get(param):
                problems.append(f"{hook.name}: parameter {param!r} has no ':param {param}:'")
        for param in hook.doc.params:
            if param not in hook.params:
                problems.append(f"{hook.name}: ':param {param}:' documents no parameter of the hook")
        if not any(directive == "versionadded" for directive, _, _ in hook.doc.versions):
            problems.append(f"{hook.name}: no '.. versionadded::'")
        returns_value = "-> None" not in hook.signature
        if returns_value and not hook.doc.returns:
            problems.append(f"{hook.name}: returns a value but has no ':return:'")
        if hook.options.get("firstresult") and FIRSTRESULT_SENTENCE not in hook.raw_doc:
            problems.append(f"{hook.name}: firstresult hook without the sentence {FIRSTRESULT_SENTENCE!r}")
    return problems


def render_hook_reference(module: ModuleType | None = None) -> str:
    if module is None:
        from ctid import hookspecs as module
    from ctid import CONTRACT_VERSION

    intro = parse(module.__doc__)
    lines = [
        "# Hook reference",
        "",
        f"Plugin contract version **{CONTRACT_VERSION}**. This page is generated from `ctid/hookspecs.py` "
        "when the site is built; the [plugin author guide](../plugins.md) says how to use the hooks.",
        "",
        intro.text,
        "",
    ]
    hooks = hook_docs(module)
    section = None
    for hook in hooks:
        if hook.section != section:
            section = hook.section
            title, _, about = section.partition(": ")  # "Observers: react to ..." -> heading + sentence
            lines += [f"## {title}", ""] + ([about[:1].upper() + about[1:] + ".", ""] if about else [])
        lines += _hook(hook)
    summary = ["| hook | since | pluggy options |", "| --- | --- | --- |"]
    for hook in hooks:
        since = next((version for directive, version, _ in hook.doc.versions if directive == "versionadded"), "")
        options = ", ".join(key for key, value in sorted(hook.options.items()) if value) or ""
        summary.append(f"| [`{hook.name}`](#{hook.name}) | {since} | {options} |")
    return "\n".join([*lines[:6], "## All hooks", "", *summary, "", *lines[6:]]).rstrip() + "\n"


def _hook(hook: HookDoc) -> list[str]:
    lines = [f"### `{hook.name}` {{#{hook.name}}}", "", "```python", hook.signature, "```", ""]
    flags = [key for key, value in sorted(hook.options.items()) if value]
    if flags:
        lines += ["pluggy: " + ", ".join(f"`{flag}=True`" for flag in flags), ""]
    lines += [hook.doc.text, ""]
    if hook.doc.params:
        lines += ["| parameter | meaning |", "| --- | --- |"]
        lines += [f"| `{name}` | {_cell(text)} |" for name, text in hook.doc.params.items()]
        lines.append("")
    if hook.doc.returns:
        lines += [f"**Returns:** {hook.doc.returns}", ""]
    for exc, text in hook.doc.raises.items():
        lines += [f"**Raises** `{exc}`: {text}", ""]
    for directive, version, text in hook.doc.versions:
        label = {"versionadded": "Added in", "versionchanged": "Changed in", "deprecated": "Deprecated in"}[directive]
        lines += [f"*{label} {version}*" + (f": {text}" if text else ""), ""]
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
