"""Every hook in ctid/hookspecs.py is documented like pytest's: when, each parameter, the return, since when."""

from __future__ import annotations

import inspect
import re

import pytest

from ctid import hookspecs
from ctid.plugins import CtidPluginManager


def hook_specs() -> list:
    return [
        function
        for name, function in vars(hookspecs).items()
        if inspect.isfunction(function) and hasattr(function, "ctid_spec")
    ]


def test_hookspecs_module_has_hooks() -> None:
    names = [function.__name__ for function in hook_specs()]
    assert {"ctid_register_connectors", "ctid_register_crms", "ctid_call_event"} <= set(names)
    assert all(name.startswith("ctid_") for name in names)
    # every public ctid_* function is a spec (a forgotten @hookspec would silently not be a hook)
    assert sorted(names) == sorted(name for name in vars(hookspecs) if name.startswith("ctid_"))


@pytest.mark.parametrize("spec", hook_specs(), ids=lambda spec: spec.__name__)
def test_hook_is_documented(spec) -> None:
    doc = inspect.getdoc(spec)
    assert doc, f"{spec.__name__} has no docstring"
    summary = doc.split("\n\n")[0]
    assert len(summary) > 20, f"{spec.__name__}: the first paragraph should say when the hook is called"
    signature = inspect.signature(spec)
    for parameter in signature.parameters:
        assert re.search(rf"^:param {parameter}:", doc, re.MULTILINE), (
            f"{spec.__name__}: no ':param {parameter}:'"
        )
    documented = set(re.findall(r"^:param (\w+):", doc, re.MULTILINE))
    assert documented <= set(signature.parameters), f"{spec.__name__} documents unknown parameters"
    assert re.search(r"^\.\. versionadded:: \d+\.\d+", doc, re.MULTILINE), f"{spec.__name__}: no versionadded"
    if signature.return_annotation not in ("None", None, inspect.Signature.empty):
        assert ":return:" in doc, f"{spec.__name__} returns {signature.return_annotation} without ':return:'"
    if spec.ctid_spec.get("firstresult"):
        assert "Stops at first non-None result" in doc, f"{spec.__name__} is firstresult: say so"


def test_manager_knows_every_spec() -> None:
    pm = CtidPluginManager()
    for spec in hook_specs():
        assert getattr(pm.hook, spec.__name__).has_spec()
