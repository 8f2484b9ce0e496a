"""Drives ctid's hub with the PyPI ``signalrcore`` client (threaded), run as a subprocess by
test_signalrcore.py: ``python signalrcore_client.py <hub url> <token>``.

Writes one JSON object per line to stdout; reads commands (``publish-done``, ``stop``) from stdin.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

from signalrcore.hub_connection_builder import HubConnectionBuilder


def out(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main(url: str, token: str) -> None:
    received: list[tuple[str, str]] = []
    lowercase_fired: list[object] = []

    def build(options: dict, name: str, reconnect: bool):
        builder = HubConnectionBuilder().with_url(url if name == "negotiated" else url.replace("http", "ws", 1), options=options)
        builder.configure_logging(logging.CRITICAL)
        if reconnect:  # only then does signalrcore ping
            builder.with_automatic_reconnect({"type": "raw", "keep_alive_interval": 1, "reconnect_interval": 1, "max_attempts": 3})
        hub = builder.build()
        opened = threading.Event()
        hub.on_open(opened.set)
        hub.on("callUpdated", lambda args: (received.append((name, args[0]["id"])), out(event="callUpdated", conn=name, call=args[0])))
        hub.on("callupdated", lowercase_fired.append)  # handler names are case-sensitive in signalrcore
        hub.start()
        if not opened.wait(5):
            raise SystemExit(f"{name}: no on_open")
        out(event="started", conn=name)
        return hub

    headers = {"X-Agent": "7"}
    negotiated = build({"access_token_factory": lambda: token, "headers": headers}, "negotiated", False)
    direct = build({"access_token_factory": lambda: token, "skip_negotiation": True}, "direct", True)

    errors: dict[str, str] = {}

    def on_error(message):  # Completion with an error
        errors[message.invocation_id] = message.error
        done[message.invocation_id].set()

    negotiated.on_error(on_error)
    done: dict[str, threading.Event] = {}

    def invoke(method: str, *args: object) -> None:
        results: list[object] = []
        event = threading.Event()
        def on_result(message):
            results.append(message.result)
            event.set()
        invocation = negotiated.invoke(method, list(args), on_invocation=on_result)
        done[invocation.invocation_id] = event
        if not event.wait(5):
            raise SystemExit(f"no completion for {method}")
        if invocation.invocation_id in errors:
            out(event="invoked", method=method, error=errors[invocation.invocation_id])
        else:
            out(event="invoked", method=method, result=results[0] if results else None)

    invoke("SetStatus", "available")
    invoke("Dial", "+74951234567")
    invoke("Hold", "call-1")
    invoke("Unhold", "call-1")
    invoke("Transfer", "call-1", "alice")
    invoke("Snapshot")
    invoke("Hangup", "call-1")
    invoke("Hangup", "call-404")
    invoke("NoSuchMethod")

    out(event="ready")
    assert sys.stdin.readline().strip() == "publish-done"
    deadline = time.monotonic() + 5
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(2.5)  # long enough for the pinging client to ping, and the silent one to be kept
    out(event="summary", calls=received, lowercase_fired=len(lowercase_fired))
    assert sys.stdin.readline().strip() == "stop"
    negotiated.stop()  # returns after the server's next frame (a Ping)
    direct.stop()
    out(event="done")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
