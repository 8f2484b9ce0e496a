"""Every hook in ctid/hookspecs.py is documented like pytest's: when, each parameter, the return, since when."""

from __future__ import annotations

import inspect
import re

import pluggy
import pytest

from ctid import hookspecs
from ctid.plugins import CtidPluginManager


def hook_specs() -> list:
    return [
        function
        for name, function in vars(hookspecs).items()
        if inspect.isfunction(function) and hasattr(function, "ctid_spec")
    ]


def problems(spec) -> list[str]:
    """What is missing from a hook's documentation (empty when it is complete)."""
    doc = inspect.getdoc(spec)
    if not doc:
        return ["no docstring"]
    found = []
    if len(doc.split("\n\n")[0]) < 20:
        found.append("the first paragraph should say when the hook is called")
    signature = inspect.signature(spec)
    for parameter in signature.parameters:
        if not re.search(rf"^:param {parameter}:", doc, re.MULTILINE):
            found.append(f"no ':param {parameter}:'")
    for parameter in re.findall(r"^:param (\w+):", doc, re.MULTILINE):
        if parameter not in signature.parameters:
            found.append(f"documents unknown parameter {parameter!r}")
    if not re.search(r"^\.\. versionadded:: \d+\.\d+", doc, re.MULTILINE):
        found.append("no '.. versionadded::'")
    if signature.return_annotation not in ("None", None, inspect.Signature.empty) and ":return:" not in doc:
        found.append("returns a value but has no ':return:'")
    if (getattr(spec, "ctid_spec", None) or {}).get(
        "firstresult"
    ) and "Stops at first non-None result" not in doc:
        found.append("firstresult hook without 'Stops at first non-None result'")
    return found


def test_hookspecs_module_has_hooks() -> None:
    names = [function.__name__ for function in hook_specs()]
    assert {"ctid_register_connectors", "ctid_register_crms", "ctid_call_event"} <= set(names)
    # every public ctid_* function is a spec (a forgotten @hookspec would silently not be a hook)
    assert sorted(names) == sorted(name for name in vars(hookspecs) if name.startswith("ctid_"))


@pytest.mark.parametrize("spec", hook_specs(), ids=lambda spec: spec.__name__)
def test_hook_is_documented(spec) -> None:
    assert problems(spec) == []


def test_the_checker_catches_undocumented_hooks() -> None:
    spec = pluggy.HookspecMarker("ctid")

    @spec
    def ctid_bare(call) -> None:
        pass

    @spec(firstresult=True)
    def ctid_sloppy(call, agent) -> str:
        """Called when something happens to a call, documented carelessly.

        :param call: the call.
        :param agnt: misspelled.
        """

    assert problems(ctid_bare) == ["no docstring"]
    assert problems(ctid_sloppy) == [
        "no ':param agent:'",
        "documents unknown parameter 'agnt'",
        "no '.. versionadded::'",
        "returns a value but has no ':return:'",
        "firstresult hook without 'Stops at first non-None result'",
    ]


def test_manager_knows_every_spec() -> None:
    pm = CtidPluginManager()
    for spec in hook_specs():
        assert getattr(pm.hook, spec.__name__).has_spec()
