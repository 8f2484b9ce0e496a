"""The smallest ASGI application: reads the request body and answers ``200 ok``; accepts the
lifespan protocol. Served by hypercorn on Trio and by uvicorn in ``httpfloor.py`` to measure what
the HTTP server alone costs per request."""

from __future__ import annotations


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def main() -> None:
    """``python floorapp.py hypercorn-trio|ctid-serving|uvicorn PORT``: serve ``app`` in this process with
    stock hypercorn on Trio (``hypercorn.trio.serve``), as ctid serves its app (``ctid.web.serving``:
    hypercorn with ctid's keep-alive timer), or as the peer serves its own (``uvicorn.run``)."""
    import sys

    stack, port = sys.argv[1], int(sys.argv[2])
    if stack in ("hypercorn-trio", "ctid-serving"):
        import hypercorn.config
        import hypercorn.trio
        import trio

        config = hypercorn.config.Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        if stack == "ctid-serving":
            from ctid.web.serving import serve
        else:
            serve = hypercorn.trio.serve
        trio.run(serve, app, config)
    elif stack == "uvicorn":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
                    log_level="warning")
    else:
        raise SystemExit(f"unknown stack {stack!r}")


if __name__ == "__main__":
    main()
