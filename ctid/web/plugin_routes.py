"""Mounts the plugins' HTTP routes (``ctid_register_routes``) under ``/plugins/{plugin}/`` and
documents them in ``/openapi.json``; every handler runs supervised (see :mod:`ctid.routes`)."""

from __future__ import annotations

import logging
from typing import Any

from quart import Response, request

from ctid.auth import bearer, require_role
from ctid.config.models import Role
from ctid.errors import CtidError
from ctid.routes import PluginRoute, RouteRequest, RouteResponse
from ctid.web.openapi import RouteDoc

log = logging.getLogger(__name__)


def mount_plugin_routes(app: Any, daemon: Any) -> list[RouteDoc]:
    """Add every plugin route to ``app``; return their OpenAPI documents."""
    docs: list[RouteDoc] = []
    for plugin, routes in sorted(daemon.pm.routes().items()):
        for route in routes:
            endpoint = f"plugin:{plugin}:{route.method}:{route.path}"
            app.add_url_rule(route.quart_rule(plugin) or "/", endpoint, _view(daemon, plugin, route),
                             methods=[route.method])
            docs.append(RouteDoc(path=route.openapi_path(plugin), method=route.method, summary=route.summary,
                                 tag=f"plugin:{plugin}", auth=route.auth is not None, request=route.request,
                                 response=route.response, query=dict(route.query),
                                 errors={**route.errors, 502: "the plugin failed (plugin_failed)"}))
    return docs


def _view(daemon: Any, plugin: str, route: PluginRoute):
    async def view(**params: str) -> Response:
        user = None
        if route.auth is not None:
            user = daemon.auth.authenticate(bearer(request.headers.get("Authorization")))
            if route.auth == "supervisor":
                require_role(user, Role.SUPERVISOR, Role.ADMIN)
            elif route.auth == "admin":
                require_role(user, Role.ADMIN)
        body = await request.get_data(cache=False)
        prefix = f"/plugins/{plugin}"
        route_request = RouteRequest(
            method=request.method,
            path=request.path[len(prefix):] or "/",
            params=dict(params),
            query={key: value for key, value in request.args.items()},
            headers={key.lower(): value for key, value in request.headers.items()},
            body=body if isinstance(body, bytes) else body.encode(),
            services=daemon.services,
            user=user,
        )
        try:
            result = await route.handler(route_request)
            return _answer(result)
        except CtidError as exc:  # its own error answer (the app's handler); a plugin's 500 is a 502
            if exc.status >= 500:
                _failed(daemon, plugin, exc)
                exc.status = 502
            raise
        except Exception as exc:
            _failed(daemon, plugin, exc)
            raise CtidError(f"plugin {plugin!r} failed on {route.method} {route.path}; see the server log",
                            error_id="plugin_failed", status=502) from exc

    view.__name__ = f"plugin_{plugin}_{route.method}_{route.path}"
    return view


def _failed(daemon: Any, plugin: str, exc: BaseException) -> None:
    """Record a route's failure: logged, ``ctid_plugin_errors_total{where="route"}``, health."""
    supervisor = getattr(daemon, "supervisor", None)
    if supervisor is not None:
        supervisor.failed(plugin, "route", exc)
    else:
        daemon.pm.errors.record(plugin, "route", exc)


def _answer(result: Any) -> Response:
    from ctid.web.app import plugin_answer

    if not isinstance(result, RouteResponse):
        result = RouteResponse(body=result)
    return plugin_answer(result.body, result.status, result.media_type, result.headers)
