"""A lean ASGI path for PBX webhooks in front of the Quart app: ``POST /hooks/{instance}``.

Quart builds a request context, a Request with its header multidict, routing and a Response object
for every request: about 0.4 ms of CPU, a sixth of a webhook's whole cost under load (measured with
``bench/ingest.py`` and py-spy). A webhook needs none of it. This wrapper does exactly what the
Quart route ``_webhook`` in :mod:`ctid.web.app` does for the common case, and hands everything else
to the app unchanged: other paths and methods, ``/hooks/{instance}/{subpath}``, an unknown instance,
a body without ``Content-Length`` or larger than ``server.max_body_bytes`` (Quart answers those).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from ctid.connector import WebhookRequest
from ctid.errors import CtidError
from ctid.limits import query_args
from ctid.webhooks import take

log = logging.getLogger("ctid.web.app")

PREFIX = "/hooks/"
BODY_TIMEOUT = 30  # seconds, as the app's BODY_TIMEOUT


class WebhookFastPath:
    """ASGI app: webhooks handled here, everything else passed to ``app`` (the Quart app)."""

    def __init__(self, app: Any, daemon: Any):
        self.app = app
        self.daemon = daemon
        self.max_body = app.config["MAX_CONTENT_LENGTH"]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        connector, length = self._match(scope)
        if connector is None:
            await self.app(scope, receive, send)
            return
        await self._webhook(connector, length, scope, receive, send)

    def _match(self, scope: dict) -> tuple[Any, int]:
        """The connector of a plain webhook POST with a body length this path may read, else None."""
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(PREFIX):
            return None, 0
        instance = scope["path"][len(PREFIX):]
        if not instance or "/" in instance:
            return None, 0
        connector = self.daemon.connectors.get(instance)
        if connector is None or not connector.accepts_webhooks:
            return None, 0
        lengths = [v for k, v in scope["headers"] if k.lower() == b"content-length"]
        if len(lengths) != 1 or not lengths[0].isdigit() or int(lengths[0]) > self.max_body:
            return None, 0
        return connector, int(lengths[0])

    async def _webhook(self, connector: Any, length: int, scope: dict, receive: Any, send: Any) -> None:
        daemon, instance = self.daemon, connector.name
        chunks: list[bytes] = []
        with trio.move_on_after(BODY_TIMEOUT) as timeout:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
        if timeout.cancelled_caught:
            error = CtidError("Request Timeout", error_id="request_timeout", status=408)
            await self._send(send, *self._error(error))
            return
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        client = scope.get("client")
        try:
            try:
                query = query_args(scope.get("query_string", b""))  # the app's before_request rules
                hook_request = WebhookRequest(
                    method="POST", subpath="", headers=headers, query=query, body=b"".join(chunks),
                    remote_addr=client[0] if client else None,
                )
                result = await take(daemon, connector, hook_request)
            except CtidError as exc:
                daemon.metrics.webhooks.labels(connector=instance, status=str(exc.status)).inc()
                if exc.status >= 500:
                    log.warning("%s: %s", exc.error_id, exc)
                await self._send(send, *self._error(exc))
                return
        except Exception:
            log.exception("unexpected error on POST %s", scope["path"])
            error = CtidError("internal error; see the server log", error_id="internal", status=500)
            await self._send(send, *self._error(error))
            return
        daemon.metrics.webhooks.labels(connector=instance, status=str(result.status)).inc()
        if isinstance(result.body, bytes | str):
            body = result.body.encode() if isinstance(result.body, str) else result.body
            content_type = result.media_type or "text/plain; charset=utf-8"
        else:
            body = self._json(result.body if result.body is not None else {})
            content_type = "application/json"
        headers = {"content-type": content_type}
        headers.update((k.lower(), v) for k, v in result.headers.items())  # as Response.headers.update
        await self._send(send, result.status, body, headers)

    def _json(self, value: Any) -> bytes:
        """As Quart's ``jsonify``: the app's JSON provider (sorted keys, ASCII), compact, newline."""
        return (self.app.json.dumps(value, separators=(",", ":")) + "\n").encode()

    def _error(self, exc: CtidError) -> tuple[int, bytes, dict[str, str]]:
        """As ``ctid.web.app.error_response``."""
        status = exc.status if 400 <= exc.status < 600 else 500
        headers = {"content-type": "application/json"}
        if exc.status == 401:
            headers["www-authenticate"] = 'Bearer realm="ctid"'
        return status, self._json({"error": exc.error_id, "message": str(exc)}), headers

    @staticmethod
    async def _send(send: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
        raw = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()
               if k.lower() != "content-length"]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
