"""Reference pages of the documentation site, generated from ctid's own code at build time.

``mkdocs build`` runs :mod:`ctid.docgen.mkdocs_hook`, which adds these pages to the site; nothing
here is committed as Markdown. ``tests/test_docs.py`` uses the same functions to fail when a hook
or a configuration key is not documented.
"""

from __future__ import annotations

from collections.abc import Callable


def pages() -> dict[str, Callable[[], str]]:
    """Site path -> function returning the page's Markdown."""
    from ctid.docgen.configref import render_config_reference
    from ctid.docgen.hookref import render_hook_reference
    from ctid.docgen.restref import render_rest_reference

    return {
        "reference/hooks.md": render_hook_reference,
        "reference/configuration.md": render_config_reference,
        "reference/rest.md": render_rest_reference,
    }
