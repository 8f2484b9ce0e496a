"""The documentation site leaves nothing out: every hook and every configuration key is documented,
every page is in the navigation, the REST reference covers the OpenAPI document (datasette's
tests/test_docs.py is the model). `scripts/docs-build` builds the site itself with --strict."""

from __future__ import annotations

import sys
import tomllib
import types
import typing
from pathlib import Path

import pluggy
import pytest
import yaml
from pydantic import BaseModel

from ctid import hookspecs
from ctid.config.models import CtidConfig
from ctid.connector import ConnectorConfig
from ctid.crm import CRMConfig
from ctid.docgen import pages
from ctid.docgen.configref import config_sections, render_config_reference
from ctid.docgen.hookref import hook_problems, render_hook_reference
from ctid.docgen.restref import fetch_openapi, render_rest_reference
from ctid.plugins import get_plugin_manager

REPO = Path(__file__).resolve().parent.parent

def hook_names() -> list[str]:
    pm = pluggy.PluginManager("ctid")
    pm.add_hookspecs(hookspecs)
    return sorted(name for name in vars(pm.hook) if name.startswith("ctid_"))


def test_every_hook_is_documented() -> None:
    assert hook_problems() == []


def test_hook_reference_has_every_hook_and_parameter() -> None:
    page = render_hook_reference()
    assert len(hook_names()) >= 9
    for name in hook_names():
        assert f"### `{name}` {{#{name}}}" in page, f"{name} is missing from the hook reference"
        code = getattr(hookspecs, name).__code__
        for param in code.co_varnames[: code.co_argcount]:
            assert f"| `{param}` |" in page, f"{name}: parameter {param} is missing from the hook reference"


def test_the_plugin_author_guide_mentions_every_hook() -> None:
    """The hand-written guide (docs/plugins.md) says what each hook is for, as datasette's docs do."""
    guide = (REPO / "docs" / "plugins.md").read_text()
    missing = [name for name in hook_names() if f"`{name}`" not in guide and f"{name}(" not in guide]
    assert missing == [], f"hooks the plugin author guide (docs/plugins.md) does not mention: {missing}"


UNDOCUMENTED_SPECS = '''
"""Hooks of a test."""
import pluggy

hookspec = pluggy.HookspecMarker("ctid")


@hookspec
def ctid_silent(call) -> None:
    pass


@hookspec(firstresult=True)
def ctid_half(call, agent) -> str:
    """Called sometimes.

    :param call: the call.
    :param caller: not a parameter.

    .. versionadded:: 2.0
    """
'''


def test_an_undocumented_hook_fails_the_check(tmp_path, monkeypatch) -> None:
    (tmp_path / "ctid_fake_specs.py").write_text(UNDOCUMENTED_SPECS)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import ctid_fake_specs  # type: ignore[import-not-found]

        problems = hook_problems(ctid_fake_specs)
        page = render_hook_reference(ctid_fake_specs)
    finally:
        sys.modules.pop("ctid_fake_specs", None)
    assert problems == [
        "ctid_silent: no docstring saying when it is called",
        "ctid_silent: parameter 'call' has no ':param call:'",
        "ctid_silent: no '.. versionadded::'",
        "ctid_half: parameter 'agent' has no ':param agent:'",
        "ctid_half: ':param caller:' documents no parameter of the hook",
        "ctid_half: returns a value but has no ':return:'",
        "ctid_half: firstresult hook without the sentence 'Stops at first non-None result'",
    ]
    assert "### `ctid_half` {#ctid_half}" in page and "pluggy: `firstresult=True`" in page


def model_paths(model: type[BaseModel], prefix: str) -> set[str]:
    """Every key of ``model``, walked independently of ctid.docgen."""
    found = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}" if prefix else (field.alias or name)
        found.add(path)
        annotation = field.annotation
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = options[0] if len(options) == 1 else annotation
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= model_paths(annotation, path)
        elif origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            found |= model_paths(args[0], path + "[]")
        elif origin is dict and isinstance(args[1], type) and issubclass(args[1], BaseModel):
            found |= model_paths(args[1], path + (".<id>" if name == "agents" else ".<name>"))
    return found


def every_config_key() -> set[str]:
    pm = get_plugin_manager()
    keys = model_paths(CtidConfig, "") - {"connectors", "crm"}
    keys |= model_paths(ConnectorConfig, "connectors.<instance>") | model_paths(CRMConfig, "crm")
    for cls in pm.connector_classes().values():
        keys |= model_paths(cls.Config, "connectors.<instance>")
    for cls in pm.crm_classes().values():
        keys |= model_paths(cls.Config, "crm")
    return keys


def test_every_config_key_is_in_the_reference() -> None:
    page = render_config_reference()
    keys = every_config_key()
    assert {"server.listen", "auth.users[].role", "agents.<id>.pbx", "connectors.<instance>.secret"} <= keys
    missing = sorted(key for key in keys if f"| `{key}` |" not in page)
    assert missing == [], f"configuration keys missing from the reference: {missing}"


def bundled_sections() -> list:
    """The reference's sections of ctid's own models, its built-in plugins and the plugin
    distributions of this repository (``plugins/*``); a third-party plugin installed beside them
    answers for its own documentation."""
    dists = {tomllib.loads(path.read_text())["project"]["name"] for path in REPO.glob("plugins/*/pyproject.toml")}
    bundled = {name for row in get_plugin_manager().describe() if row.get("builtin") or row["dist"] in dists
               for name in [*row["connectors"], *row["crms"]]}
    return [section for section in config_sections()
            if " with plugin: " not in section.title or section.title.rsplit(" ", 1)[-1] in bundled]


def test_every_config_key_has_a_description() -> None:
    """No allow-list: every key of the core and of every bundled plugin says what it is."""
    sections = bundled_sections()
    titles = {section.title for section in sections}
    assert {"server", "connectors.<instance> with plugin: generic", "connectors.<instance> with plugin: megafon",
            "connectors.<instance> with plugin: comagic", "connectors.<instance> with plugin: avaya",
            "crm with plugin: dynamics"} <= titles
    undescribed = sorted({f"{section.title}: {key.path}" for section in sections for key in section.keys
                          if not key.section and not key.description})
    assert undescribed == [], (
        f"keys without a description: {undescribed}; give them Field(description=...) "
        "or a comment in config/example-full.yaml"
    )


def test_the_reference_says_what_a_key_is() -> None:
    rows = {line.split(" | ")[0].strip("| `"): line for line in render_config_reference().splitlines()
            if line.startswith("| `")}
    assert rows["server.max_body_bytes"] == (
        "| `server.max_body_bytes` | integer (≥ 1024) | `1048576` | Largest accepted request body. |")
    # no Field description: the comment of config/example-full.yaml explains it
    assert "connections kept open" in rows["database.pool_size"]
    assert "secret string" in rows["auth.users[].password_hash"]
    assert "**required**" in rows["auth.users[].password_hash"]


@pytest.fixture(scope="module")
def served_openapi() -> dict:
    return fetch_openapi()


def test_rest_reference_covers_the_served_document(served_openapi: dict) -> None:
    page = render_rest_reference(served_openapi)
    operations = [(method, path) for path, item in served_openapi["paths"].items() for method in item]
    assert ("get", "/api/calls") in operations and ("post", "/hooks/{instance}") in operations
    for method, path in operations:
        assert f"### `{method.upper()} {path}`" in page, f"{method.upper()} {path} is missing"
    for name in served_openapi["components"]["schemas"]:
        assert f"### {name} {{#schema-{name.lower()}}}" in page


def nav_pages(nav) -> list[str]:
    found = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        found += nav_pages(value) if isinstance(value, list) else [value]
    return found


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    listed = nav_pages(config["nav"])
    written = {str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md")}
    generated = set(pages())
    assert sorted(written - set(listed)) == [], "docs pages missing from the nav in mkdocs.yml"
    assert sorted(set(listed) - written - generated) == [], "nav entries with no page"
    assert not written & generated, "a generated page is also written by hand"
