"""Build step of the ctid distribution: the operator panel goes into the wheel as package data.

The panel's files live in the repository's top-level ``panel/`` directory (the layout is fixed: the
panel is plain files edited and tested in place). ``build_py`` copies them to ``ctid/panel/`` in
the build tree, so a wheel serves ``/panel/`` (``ctid.web.panel.panel_dir`` looks there first). An
editable install or a checkout reads ``panel/`` beside the ``ctid`` package instead; the sdist
carries ``panel/`` through ``MANIFEST.in``. Everything else is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PANEL = Path(__file__).resolve().parent / "panel"
SKIP = shutil.ignore_patterns("tests", "node_modules", "*.map", ".*")


class build_py_with_panel(build_py):  # noqa: N801 (setuptools' command naming)
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # served from the source tree
        if not (PANEL / "index.html").is_file():
            raise SystemExit(f"ctid build: the panel is missing ({PANEL}/index.html); refusing to build a wheel without it")
        target = Path(self.build_lib) / "ctid" / "panel"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(PANEL, target, ignore=SKIP)


setup(cmdclass={"build_py": build_py_with_panel})
