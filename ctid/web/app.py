"""The quart-trio application: webhooks, health, metrics, OpenAPI and the panel; REST in ``api.py``.

The daemon owns the nursery and serves this app with hypercorn; the app holds no background tasks.
Every error becomes JSON ``{"error": <stable id>, "message": ...}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import logging
import math

from quart import Response, jsonify, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ctid.connector import WebhookRequest
from ctid.errors import CtidError, NotFoundError, RequestError
from ctid.limits import check_target, query_args
from ctid.web.openapi import document, openapi_document
from ctid.web.panel import register_panel
from ctid.webhooks import take

log = logging.getLogger(__name__)

document(path="/hooks/{instance}", method="POST", tag="webhooks", auth=False,
         summary="PBX webhook of a connector instance (body and verification per connector)",
         errors={202: "the connector failed: the request is kept as a dead letter (docs/input-limits.md)",
                 400: "malformed body, or input beyond ctid's input limits", 401: "bad signature or token",
                 404: "unknown instance", 413: "body too large", 503: "database unavailable: retry"})
document(path="/hooks/{instance}", method="GET", tag="webhooks", auth=False,
         summary="Webhook URL check some PBXs make before sending events (answer per connector)",
         errors={404: "unknown instance", 405: "connector takes POST only"})
document(path="/healthz", method="GET", tag="operations", auth=False, summary="Liveness")
document(path="/readyz", method="GET", tag="operations", auth=False, summary="Readiness (database, writer)",
         errors={503: "not ready"})
document(path="/metrics", method="GET", tag="operations", auth=False, summary="Prometheus metrics",
         media_type="text/plain; version=0.0.4; charset=utf-8")
document(path="/openapi.json", method="GET", tag="operations", auth=False, summary="This document")
document(path="/hub/negotiate", method="POST", tag="realtime",
         summary="SignalR negotiate: a connection id and token for the WebSocket at /hub (docs/hub-protocol.md)",
         query={"negotiateVersion": {"type": "integer", "minimum": 0, "default": 0},
                "access_token": {"type": "string", "description": "the token, for clients that cannot set headers"}},
         response={"type": "object", "properties": {
             "negotiateVersion": {"type": "integer"},
             "connectionId": {"type": "string"},
             "connectionToken": {"type": "string", "description": "negotiateVersion 1 only; pass as ?id="},
             "availableTransports": {"type": "array", "items": {"type": "object"}},
             "error": {"type": "string", "description": "a bad negotiateVersion (HTTP 200, SignalR's convention)"}}})


def error_response(exc: CtidError) -> Response:
    response = jsonify({"error": exc.error_id, "message": str(exc)})
    response.status_code = exc.status if 400 <= exc.status < 600 else 500
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="ctid"'
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None and exc.status in (429, 503):
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def plugin_answer(body, status: int, media_type: str | None, headers) -> Response:
    """The HTTP answer of what plugin code returned (a webhook's result, a plugin route's): text or
    bytes as given (``media_type``, else plain text), anything else as JSON."""
    if isinstance(body, bytes | str):
        response = Response(body, status=status, content_type=media_type or "text/plain; charset=utf-8")
    else:
        response = jsonify(body if body is not None else {})
        response.status_code = status
    response.headers.update(headers)
    return response


def create_app(daemon) -> QuartTrio:
    from ctid.web.api import register_api

    app = QuartTrio("ctid", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = daemon.settings.core.server.max_body_bytes
    app.config["BODY_TIMEOUT"] = 30
    app.config["JSON_SORT_KEYS"] = False
    app.daemon = daemon  # type: ignore[attr-defined]
    daemon.web_app = app

    @app.before_request
    async def _target_limits():
        # every route, REST or not, before routing: a 400 bad_encoding rather than altered text or a 503
        check_target(request.scope.get("raw_path"), request.query_string)

    @app.errorhandler(CtidError)
    async def _ctid_error(exc: CtidError):
        if exc.status >= 500:
            log.warning("%s: %s", exc.error_id, exc)
        return error_response(exc)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException):
        ids = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large", 408: "request_timeout"}
        status = exc.code or 500
        response = error_response(CtidError(exc.description or exc.name, error_id=ids.get(status, "http_error"),
                                            status=status))
        if status == 405 and getattr(exc, "valid_methods", None):  # RFC 9110 §15.5.6: 405 carries Allow
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(CtidError("internal error; see the server log", error_id="internal", status=500))

    async def _webhook(instance: str, subpath: str = ""):
        connector = daemon.connectors.get(instance)
        if connector is None or not connector.accepts_webhooks:
            daemon.metrics.webhooks.labels(connector="unknown", status="404").inc()
            raise NotFoundError(f"no webhook connector instance {instance!r}", error_id="unknown_instance")
        try:
            body = await request.get_data(cache=False)
            hook_request = WebhookRequest(
                method=request.method,
                subpath=subpath,
                headers={k.lower(): v for k, v in request.headers.items()},
                query=query_args(request.query_string),
                body=body if isinstance(body, bytes) else body.encode(),
                remote_addr=request.remote_addr,
            )
            result = await take(daemon, connector, hook_request)
        except CtidError as exc:
            daemon.metrics.webhooks.labels(connector=instance, status=str(exc.status)).inc()
            raise
        daemon.metrics.webhooks.labels(connector=instance, status=str(result.status)).inc()
        return plugin_answer(result.body, result.status, result.media_type, result.headers)

    app.add_url_rule("/hooks/<instance>", "webhook", _webhook, methods=["POST", "GET"])
    app.add_url_rule("/hooks/<instance>/<path:subpath>", "webhook_sub", _webhook, methods=["POST", "GET"])

    @app.get("/healthz")
    async def healthz():
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    async def readyz():
        problems = []
        if not daemon.ready:
            problems.append("starting or stopping")
        try:
            await daemon.store.ping()
        except CtidError as exc:
            problems.append(f"database: {exc}")
        hub = daemon.hub.health() if daemon.hub is not None else None
        plugins = daemon.supervisor.health()  # plugin instances failing now, each with the exception named
        if problems:
            response = jsonify({"status": "not_ready", "error": "not_ready", "message": "; ".join(problems),
                                "plugins": plugins})
            response.status_code = 503
            return response
        return jsonify({"status": "ready", "hub": hub, "plugins": plugins})

    @app.get("/metrics")
    async def metrics():
        return Response(daemon.metrics.render(daemon.hub), content_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/openapi.json")
    async def openapi():
        from ctid.web.api import SCHEMAS

        return jsonify(openapi_document(SCHEMAS, app.plugin_route_docs))

    register_panel(app, daemon)
    register_api(app, daemon)
    from ctid.web.reports_api import register_reports

    register_reports(app, daemon)
    from ctid.web.plugin_routes import mount_plugin_routes

    app.plugin_route_docs = mount_plugin_routes(app, daemon)  # type: ignore[attr-defined]
    if daemon.hub is not None:
        daemon.hub.mount(app, cors_origins=daemon.settings.core.server.cors_origins or None)
    return app


def json_body() -> RequestError:
    return RequestError("body must be a JSON object", error_id="bad_json")
