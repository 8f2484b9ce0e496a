"""The core's side of a PBX webhook, shared by the fast path and the Quart route.

    limits (400) → connector.handle_webhook (supervised) → events checked → Daemon.submit → answer

1. The body is screened against ctid's input limits (:func:`ctid.limits.screen_json`): a JSON body
   with lone surrogates, deep nesting, huge numbers or huge strings is refused with 400 and a stable
   error id before the connector sees it.
2. The connector parses it under supervision (:mod:`ctid.supervise`). A ctid error is its answer
   (401, 400 ...). Anything else is a bug in the plugin: the raw request is kept as a dead letter
   (:mod:`ctid.store.deadletters`) and the PBX gets ``202`` with ``{"error": "plugin_failed",
   "dead_letter": id}``: accepted and kept, so it is not redelivered in a loop and not lost; an admin
   re-submits it once the plugin is fixed. If even the dead letter cannot be written, the answer is
   503 and the PBX retries.
3. The events the connector made are checked (every text must be real Unicode) before anything is
   stored, so no write can fail on them after the PBX was answered.
4. :meth:`ctid.daemon.Daemon.submit` reduces, publishes and commits them; the answer is sent after
   the commit.
"""

from __future__ import annotations

import logging
from typing import Any

from ctid.connector import WebhookRequest, WebhookResult
from ctid.errors import CtidError, PluginError, StoreError
from ctid.limits import check, clean_text, screen_json
from ctid.model import CallEvent
from ctid.supervise import describe

log = logging.getLogger("ctid.webhooks")

PLUGIN_FAILED = "plugin_failed"


def clean_events(connector: str, events: Any) -> list[CallEvent]:
    """The events a connector returned, checked: a list of CallEvent whose texts are Unicode.

    :class:`PluginError` when the connector returned something else (a plugin bug);
    :class:`~ctid.limits.LimitError` (400) when a text holds lone surrogates (the input did).
    """
    if not isinstance(events, list) or not all(isinstance(event, CallEvent) for event in events):
        raise PluginError(f"connector {connector} returned events that are not a list of CallEvent")
    for event in events:
        for name in ("pbx_call_id", "key", "remote_number", "line_number", "agent_login", "target_login",
                     "group", "leg_id", "recording"):
            value = getattr(event, name)
            if isinstance(value, str):
                clean_text(value)
        if event.facts:
            check(event.facts)
        extra = getattr(event, "extra", None)
        if extra:
            check(extra)
    return events


async def take(daemon: Any, connector: Any, request: WebhookRequest, *, keep: bool = True) -> WebhookResult:
    """Run one webhook through the core (module doc); a CtidError raised here is the answer.

    With ``keep`` false (re-submitting a dead letter) a failing plugin raises its PluginError instead
    of writing another dead letter."""
    screen_json(request.body, request.content_type)
    name = connector.name
    supervisor = daemon.supervisor
    try:
        result = await supervisor.call(name, "webhook", connector.handle_webhook, request)
        if not isinstance(result, WebhookResult):
            raise PluginError(f"handle_webhook returned {type(result).__name__}, not a WebhookResult")
        events = clean_events(name, result.events)
    except PluginError as exc:
        if exc.__cause__ is None:  # a bad return value: not recorded by the supervisor yet
            supervisor.failed(name, "webhook", exc)
        if not keep:
            raise
        return await _dead_letter(daemon, name, request, exc)
    if events:
        try:
            await daemon.submit(events)
        except CtidError:
            raise
        except Exception as exc:  # a core bug: keep the request rather than lose it
            log.exception("could not take the events of a webhook to %s", name)
            if not keep:
                raise PluginError(f"the events could not be taken: {describe(exc)}") from exc
            return await _dead_letter(daemon, name, request, exc, error_id="internal")
    return result


async def _dead_letter(daemon: Any, connector: str, request: WebhookRequest, exc: BaseException, *,
                       error_id: str = PLUGIN_FAILED) -> WebhookResult:
    message = str(exc) if isinstance(exc, CtidError) else describe(exc)
    try:
        letter = await daemon.dead_letters.add(connector, request, error_id, message)
    except CtidError as store_exc:
        log.error("could not keep a failed webhook to %s as a dead letter: %s", connector, store_exc)
        raise StoreError("the webhook failed and could not be kept; retry later",
                         error_id="store_unavailable") from store_exc
    daemon.metrics.dead_letters.labels(connector=connector).inc()
    log.warning("webhook to %s kept as dead letter %d: %s", connector, letter, message)
    return WebhookResult(status=202, body={
        "error": error_id, "dead_letter": letter,
        "message": f"the connector failed; the request is kept as dead letter {letter} for an admin",
    })
