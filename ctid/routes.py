"""HTTP routes of plugins: what ``ctid_register_routes`` returns, and how ctid serves it.

A plugin's routes live under ``/plugins/{plugin}/`` where ``{plugin}`` is its entry-point name, so
they never collide with ctid's own or another plugin's. A route is framework-free: its handler is
``async def handler(request: RouteRequest) -> Any`` and returns a JSON-serializable value (answered
200) or a :class:`RouteResponse`. It runs supervised: a :class:`~ctid.errors.CtidError` it raises
becomes its usual error answer (``{"error": <id>, "message": ...}`` with its 4xx status), any other
exception is recorded as the plugin's failure (logged, ``ctid_plugin_errors_total{where="route"}``,
health) and answered ``502 {"error": "plugin_failed"}`` — never a 500 with a traceback.

``auth`` picks who may call a route: ``None`` (anyone, for callbacks from upstream systems; verify
them yourself, for example with :func:`ctid.secrets.verify_signature`), ``"user"`` (any signed-in
user), ``"supervisor"`` or ``"admin"``. The route's OpenAPI description (``summary``, ``request``,
``response``, ``errors``, ``query``) is merged into ``/openapi.json`` under the tag ``plugin:<name>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ctid.errors import RequestError

if TYPE_CHECKING:
    from ctid.auth import Principal
    from ctid.services import Services

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
AUTH_LEVELS = (None, "user", "supervisor", "admin")
_SEGMENT = re.compile(r"^(?:[A-Za-z0-9._~-]+|\{[A-Za-z_][A-Za-z0-9_]*\})$")
#: Plugin names usable in a URL path (entry-point names; built-ins use their last dotted part).
_PLUGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(slots=True)
class RouteRequest:
    """An HTTP request to a plugin route, as its handler sees it."""

    method: str
    path: str  # relative to /plugins/{plugin}, e.g. "/items/42"
    params: dict[str, str]  # path parameters ({id} -> "42")
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    services: Services
    user: Principal | None = None  # the signed-in user (None for auth=None routes)

    def json(self) -> Any:
        """The body parsed as JSON; a :class:`RequestError` (``bad_json``, 400) when it is not."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RequestError(f"body is not JSON: {exc}", error_id="bad_json") from exc


@dataclass(slots=True)
class RouteResponse:
    """A full answer: ``body`` is sent as JSON unless it is ``str`` / ``bytes``."""

    body: Any = None
    status: int = 200
    media_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[RouteRequest], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class PluginRoute:
    """One HTTP route of a plugin, mounted at ``/plugins/{plugin}{path}``.

    .. versionadded:: 2.0
    """

    method: str
    path: str  # "/" or "/segment/{param}/..."
    handler: Handler
    summary: str
    auth: str | None = "user"
    request: dict[str, Any] | None = None  # JSON schema of the body
    response: dict[str, Any] | None = None  # JSON schema of the 200 answer
    errors: dict[int, str] = field(default_factory=dict)
    query: dict[str, dict[str, Any]] = field(default_factory=dict)

    def check(self) -> None:
        """Raise ``TypeError`` describing what is wrong with this route."""
        if self.method not in METHODS:
            raise TypeError(f"route method {self.method!r} is not one of {', '.join(sorted(METHODS))}")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise TypeError(f"route path {self.path!r} must start with '/'")
        segments = [part for part in self.path.split("/")[1:] if part != ""]
        if self.path != "/" + "/".join(segments) and self.path != "/":
            raise TypeError(f"route path {self.path!r} has empty segments or a trailing '/'")
        for part in segments:
            if not _SEGMENT.match(part):
                raise TypeError(f"route path {self.path!r}: segment {part!r} is not a name or a {{param}}")
        if not callable(self.handler):
            raise TypeError(f"route {self.method} {self.path}: handler is not callable")
        if self.auth not in AUTH_LEVELS:
            raise TypeError(f"route {self.method} {self.path}: auth must be one of {AUTH_LEVELS}")
        if not isinstance(self.summary, str) or not self.summary:
            raise TypeError(f"route {self.method} {self.path}: a summary is required (OpenAPI)")

    def quart_rule(self, plugin: str) -> str:
        return f"/plugins/{plugin}" + re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", r"<\1>", self.path).rstrip("/")

    def openapi_path(self, plugin: str) -> str:
        return f"/plugins/{plugin}" + self.path.rstrip("/")


def url_name(plugin: str) -> str:
    """The ``{plugin}`` part of a plugin's URLs: its entry-point name (``ctid.builtins.x`` -> ``x``)."""
    return plugin.rsplit(".", 1)[-1] if plugin.startswith("ctid.builtins.") else plugin


def check_routes(result: Any) -> list[PluginRoute]:
    """Validate what ``ctid_register_routes`` returned; raise ``TypeError`` describing garbage."""
    if result is None:
        return []
    if isinstance(result, (str, bytes)) or not isinstance(result, (list, tuple)):
        raise TypeError(f"returned {type(result).__name__}, expected a list of PluginRoute")
    seen: set[tuple[str, str]] = set()
    for route in result:
        if not isinstance(route, PluginRoute):
            raise TypeError(f"returned {route!r}, which is not a PluginRoute")
        route.check()
        key = (route.method, re.sub(r"\{[^}]+\}", "{}", route.path))
        if key in seen:
            raise TypeError(f"route {route.method} {route.path} is registered twice")
        seen.add(key)
    return list(result)
