"""Serving the operator panel: where its files are, its Content-Security-Policy, its favicon and config.

The panel's files live in the repository's top-level ``panel/`` directory. A wheel carries them as
``ctid/panel/`` (``setup.py`` copies them in while building), a checkout or an editable install
reads them from ``panel/`` beside the ``ctid`` package. :func:`panel_dir` finds either.

Every panel response carries a strict Content-Security-Policy (docs/panel.md, "Security"): scripts
only from ctid itself and from the origins the Dynamics CIF library may come from
(``panel.cif_origins``, by default the organization of a ``dynamics`` CRM section), no inline
script or style, and ``frame-ancestors`` limited to ctid and ``panel.frame_ancestors`` (by default
those same CIF origins) so that only the CRM may embed the panel.
"""

from __future__ import annotations

from pathlib import Path

from quart import Response, jsonify, send_from_directory

import ctid
from ctid.errors import NotFoundError
from ctid.web.openapi import document

_PACKAGE = Path(ctid.__file__).resolve().parent

document(path="/panel/config.json", method="GET", tag="panel", auth=False,
         summary="What the panel needs before sign-in: the origins its Dynamics CIF library may come from",
         response={"type": "object", "properties": {"cif_origins": {"type": "array", "items": {"type": "string"}}}},
         errors={404: "the panel is not installed"})
document(path="/favicon.ico", method="GET", tag="panel", auth=False, summary="ctid's icon (SVG)",
         media_type="image/svg+xml", errors={404: "the panel is not installed"})


def panel_dir() -> Path | None:
    """The panel's files: ``ctid/panel`` inside an installed wheel, else ``panel/`` of the source tree."""
    for candidate in (_PACKAGE / "panel", _PACKAGE.parent / "panel"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


def content_security_policy(cif_origins: list[str], frame_ancestors: list[str]) -> str:
    cif = " ".join(cif_origins)
    ancestors = "*" if "*" in frame_ancestors else " ".join(["'self'", *frame_ancestors])
    directives = {
        "default-src": "'self'",
        "script-src": f"'self' {cif}",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "media-src": "'self'",
        "connect-src": f"'self' {cif}",  # 'self' covers the hub's ws(s):// on ctid's own host
        "frame-src": cif or "'none'",  # the CIF library talks to Dynamics through its own frames
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": ancestors,
    }
    return "; ".join(f"{name} {value.strip()}" for name, value in directives.items())


def register_panel(app, daemon) -> None:
    """``/panel/`` (files and ``config.json``), ``/favicon.ico`` and the ``/`` redirect."""
    core = daemon.settings.core
    cif_origins = core.cif_origins()
    policy = content_security_policy(cif_origins, core.frame_ancestors())
    files = panel_dir()

    def secure(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.get("/")
    async def root():
        return Response("", status=302, headers={"Location": "/panel/"})

    @app.get("/panel/config.json")
    async def panel_config():
        """What the panel must know before signing in: where the CIF library may come from."""
        response = jsonify({"cif_origins": cif_origins})
        response.headers["Cache-Control"] = "no-cache"
        return secure(response)

    @app.get("/favicon.ico")
    async def favicon():
        if files is None:
            raise NotFoundError("the panel is not installed", error_id="not_found")
        response = await send_from_directory(files, "favicon.svg", mimetype="image/svg+xml")
        return secure(response)

    @app.get("/panel/")
    @app.get("/panel/<path:name>")
    async def panel(name: str = "index.html"):
        if files is None:
            raise NotFoundError("the panel is not installed (no panel/ beside ctid, no ctid/panel in the wheel)",
                                error_id="panel_missing")
        return secure(await send_from_directory(files, name))
