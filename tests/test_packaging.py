"""What ctid's wheel promises: every third-party module the code imports is a declared dependency (or
an extra), nothing declared goes unused, PostgreSQL's driver is an extra with a clear error, and the
package data named in pyproject.toml exists. scripts/wheel-smoke builds and runs the real wheels."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

from ctid.config.models import CtidConfig

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Imported only where an extra is installed (the SQL drivers SQLAlchemy loads, ctid.testing's tools).
EXTRA_ONLY = {"psycopg": "postgres", "pyodbc": "mssql"}
#: Subpackages used only with an extra: the pytest plugin (test) and the mkdocs hook (docs).
EXTRA_PACKAGES = {"testing": "test", "docgen": "docs"}
#: Modules a declared distribution brings with it, pinned to it (not separately versioned for users).
PROVIDED = {"pydantic_core": "pydantic"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", item, maxsplit=1)[0].lower().replace("_", "-") for item in requirements}


def _imports(paths) -> dict[str, set[str]]:
    """Top-level third-party module -> files importing it."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("ctid", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@functools.cache
def _installed() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distribution(module: str) -> str:
    if module in PROVIDED:
        return PROVIDED[module]
    dists = _installed().get(module)
    assert dists, f"{module} is imported by ctid but no installed distribution provides it"
    return dists[0].lower().replace("_", "-")


def test_every_import_of_ctid_is_a_declared_dependency():
    runtime = _names(PYPROJECT["project"]["dependencies"])
    extras = {name: _names(items) for name, items in PYPROJECT["project"]["optional-dependencies"].items()}
    code = [p for p in (ROOT / "ctid").rglob("*.py") if not set(EXTRA_PACKAGES) & set(p.parts)]
    problems = []
    for module, files in _imports(code).items():
        if module in EXTRA_ONLY:
            assert EXTRA_ONLY[module] in extras, f"{module} belongs to the {EXTRA_ONLY[module]} extra"
            continue
        if _distribution(module) not in runtime:
            problems.append(f"{module} ({_distribution(module)}) imported by {sorted(files)}")
    for package, extra in EXTRA_PACKAGES.items():
        for module, files in _imports((ROOT / "ctid" / package).rglob("*.py")).items():
            if module in EXTRA_ONLY:
                continue
            if _distribution(module) not in runtime | extras[extra]:
                problems.append(f"{module} ({_distribution(module)}) imported by {sorted(files)}: declare it "
                                f"in the {extra} extra")
    assert problems == [], "undeclared dependencies:\n" + "\n".join(problems)


def test_redis_py_is_no_runtime_dependency():
    """The backplane speaks RESP on Trio itself (redis-py's async client is asyncio-only); only
    ctid.testing's server helpers use redis-py's sync client, so it belongs to the test extra."""
    assert "redis" not in _names(PYPROJECT["project"]["dependencies"])
    assert "redis" in _names(PYPROJECT["project"]["optional-dependencies"]["test"])
    code = [p for p in (ROOT / "ctid").rglob("*.py") if "testing" not in p.parts]
    assert "redis" not in _imports(code)


def test_postgresql_driver_is_an_extra_with_a_clear_error(monkeypatch):
    assert "psycopg" not in _names(PYPROJECT["project"]["dependencies"])
    assert "psycopg" in _names(PYPROJECT["project"]["optional-dependencies"]["postgres"])
    url = {"database": {"url": "postgresql+psycopg://ctid@db/ctid"}}
    assert CtidConfig.model_validate(url)  # installed here
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install 'ctid\[postgres\]'"):
        CtidConfig.model_validate(url)
    assert CtidConfig.model_validate({"database": {"url": "sqlite:///x.db"}})  # SQLite needs nothing


def test_declared_package_data_exists_and_the_panel_is_built_in():
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["ctid"]
    for pattern in patterns:
        assert list((ROOT / "ctid").glob(pattern)), f"package data {pattern!r} matches no file"
    setup = (ROOT / "setup.py").read_text()
    assert 'Path(self.build_lib) / "ctid" / "panel"' in setup and (ROOT / "panel" / "index.html").is_file()
    assert "graft panel" in (ROOT / "MANIFEST.in").read_text()  # the sdist carries it to the wheel


def test_the_app_finds_the_panel_inside_the_package_first(tmp_path, monkeypatch):
    from ctid.web import panel

    package = tmp_path / "site" / "ctid"
    (package / "panel").mkdir(parents=True)
    monkeypatch.setattr(panel, "_PACKAGE", package)
    assert panel.panel_dir() is None  # neither a wheel's ctid/panel nor a source tree's panel/
    (package / "panel" / "index.html").write_text("<!DOCTYPE html>")
    assert panel.panel_dir() == package / "panel"
