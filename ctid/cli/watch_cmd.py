"""`ctid watch`: print live hub events (callUpdated, agentUpdated, taskUpdated) from a ctid server."""

from __future__ import annotations

import json
from typing import Any

import typer


def describe(target: str, payload: Any) -> str:
    """One human-readable line for a hub event."""
    if not isinstance(payload, dict):
        return f"{target} {json.dumps(payload, ensure_ascii=False)}"
    if target == "callUpdated":
        fields = ("state", "direction", "remote_number", "agent", "outcome")
        who = payload.get("id")
    elif target == "agentUpdated":
        fields = ("presence", "status", "current_call")
        who = payload.get("id")
    elif target == "taskUpdated":
        fields = ("status", "number", "owner", "missed_count")
        who = payload.get("id")
    else:
        return f"{target} {json.dumps(payload, ensure_ascii=False)}"
    parts = [f"{name}={payload[name]}" for name in fields if payload.get(name) not in (None, "", [])]
    return " ".join([f"{target:<13}", str(who), *parts])


def hub_url(url: str) -> str:
    """``url`` with ``/hub`` as its path when it has none (``http://host:8080`` -> ``http://host:8080/hub``)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return urlunsplit(parts._replace(path="/hub"))
    return url


async def watch(url: str, token: str, *, as_json: bool, snapshot: bool, skip_negotiation: bool, retries: int) -> None:
    import trio

    from ctid.hub.client import HubClosed, HubConnectionError, open_hub

    def emit(target: str, payload: Any) -> None:
        if as_json:
            typer.echo(json.dumps({"target": target, "data": payload}, ensure_ascii=False))
        else:
            typer.echo(describe(target, payload))

    failures = 0
    delay = 0.5
    connected_once = False
    while True:
        try:
            async with open_hub(url, token, skip_negotiation=skip_negotiation) as hub:
                connected_once, failures, delay = True, 0, 0.5
                if snapshot:
                    emit("snapshot", await hub.invoke("Snapshot"))
                async for target, arguments in hub.messages():
                    emit(target, arguments[0] if len(arguments) == 1 else arguments)
                closed = await hub.wait_closed()
        except HubClosed as exc:
            closed = exc
        except HubConnectionError as exc:
            if not connected_once:  # a wrong URL or a refused first connection is reported, not retried
                if str(exc).endswith("HTTP 404"):
                    raise HubConnectionError(
                        f"{exc}: no hub at {url} (the hub is at /hub on ctid's port, e.g. http://HOST:8080/hub)"
                    ) from None
                raise
            closed = HubClosed(lost=True)
        if not (closed.lost or closed.allow_reconnect):
            if closed.error:
                raise closed
            return  # the server closed the connection normally
        failures += 1
        if failures > retries:
            raise HubConnectionError(f"gave up after {retries} reconnect attempts ({closed})")
        typer.echo(f"ctid: {closed}; reconnecting in {delay:.1f}s", err=True)
        await trio.sleep(delay)
        delay = min(delay * 2, 10.0)


def register(app: typer.Typer) -> None:
    @app.command("watch")
    def watch_cmd(
        url: str = typer.Option(
            "http://127.0.0.1:8080/hub", "--url", envvar="CTID_HUB_URL",
            help="Hub URL (http(s)://host:port/hub); /hub is added to a URL without a path."
        ),
        token: str = typer.Option(
            ..., "--token", envvar="CTID_TOKEN", help="Access token or API key (or set CTID_TOKEN)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object per event."),
        snapshot: bool = typer.Option(False, "--snapshot", help="Print the current state first (Snapshot)."),
        skip_negotiation: bool = typer.Option(False, "--skip-negotiation", help="Open the WebSocket directly."),
        retries: int = typer.Option(10, "--retries", min=0, help="Reconnect attempts after a lost connection."),
    ) -> None:
        """Print live call, agent and task events from a ctid hub until interrupted."""
        import trio

        from ctid.cli import fail
        from ctid.errors import CtidError

        try:
            trio.run(lambda: watch(hub_url(url), token, as_json=as_json, snapshot=snapshot,
                                   skip_negotiation=skip_negotiation, retries=retries))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except CtidError as exc:
            raise fail(exc) from None
