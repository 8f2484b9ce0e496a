"""The clients' process of the benchmarks: many agents connected to ctid's hub (SignalR JSON
protocol) or to the peer (Socket.IO), with keep-alive, timestamping every ``callUpdated(ringing)``
frame with ``time.perf_counter()`` the moment it arrives.

Both protocols are spoken directly over aiohttp WebSockets (asyncio + uvloop), so the client-side
cost is the same for ctid and the peer: read a frame, take the time, parse the JSON.

Driven by its parent over stdin/stdout: prints ``READY <connected> <failed>`` once connected, then
answers each ``DUMP`` line with one JSON line ``{"arrivals": [[pbx_call_id, agent, t], ...],
"closed": n}`` (arrivals since the previous dump); ``QUIT`` ends it.

    python bench/clients.py --url http://127.0.0.1:8080 --protocol signalr --agents 50
    python bench/clients.py --url ... --protocol signalr --idle 5000 --key KEY   # idle connections
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import agent_ids, agent_key, raise_nofile  # noqa: E402

RS = "\x1e"
perf = time.perf_counter


class Recorder:
    def __init__(self) -> None:
        self.arrivals: list[tuple[str, str, float]] = []
        self.closed = 0

    def dump(self) -> str:
        out = json.dumps({"arrivals": self.arrivals, "closed": self.closed})
        self.arrivals = []
        return out


async def signalr_agent(session: aiohttp.ClientSession, url: str, key: str, agent: str | None,
                        rec: Recorder, ready: asyncio.Event, *, negotiate: bool, ping: float) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    ws_url = url.replace("http", "ws", 1) + "/hub"
    if negotiate:
        async with session.post(url + "/hub/negotiate?negotiateVersion=1", headers=headers) as response:
            response.raise_for_status()
            ws_url += "?id=" + (await response.json())["connectionToken"]
    async with session.ws_connect(ws_url, headers=headers, autoping=True, max_msg_size=0) as ws:
        await ws.send_str('{"protocol":"json","version":1}' + RS)
        answer = await ws.receive_str()
        if not answer.startswith("{}"):
            raise RuntimeError(f"handshake refused: {answer!r}")
        ready.set()

        async def keepalive() -> None:
            while True:
                await asyncio.sleep(ping)
                await ws.send_str('{"type":6}' + RS)

        pinger = asyncio.create_task(keepalive())
        try:
            async for msg in ws:
                now = perf()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                if agent is None or "callUpdated" not in msg.data:
                    continue
                for text in msg.data.split(RS):
                    if '"callUpdated"' in text:
                        call = json.loads(text)["arguments"][0]
                        if call["state"] == "ringing":
                            rec.arrivals.append((call["pbx_call_id"], agent, now))
        finally:
            pinger.cancel()
    rec.closed += 1


async def socketio_agent(session: aiohttp.ClientSession, url: str, key: str, agent: str | None,
                         rec: Recorder, ready: asyncio.Event, **_: object) -> None:
    ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    async with session.ws_connect(ws_url, autoping=True, max_msg_size=0) as ws:
        opened = await ws.receive_str()
        if not opened.startswith("0"):
            raise RuntimeError(f"unexpected Engine.IO open: {opened!r}")
        await ws.send_str("40" + json.dumps({"token": key}))
        answer = await ws.receive_str()
        if not answer.startswith("40"):
            raise RuntimeError(f"Socket.IO connect refused: {answer!r}")
        ready.set()
        async for msg in ws:
            now = perf()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            data = msg.data
            if data == "2":
                await ws.send_str("3")
            elif agent is not None and data.startswith("42"):
                name, call = json.loads(data[2:])
                if name == "callUpdated" and call["state"] == "ringing":
                    rec.arrivals.append((call["pbx_call_id"], agent, now))
    rec.closed += 1


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--protocol", choices=("signalr", "socketio"), default="signalr")
    parser.add_argument("--agents", type=int, default=50, help="one connection per agent (pop mode)")
    parser.add_argument("--idle", type=int, default=0, help="open this many idle connections instead")
    parser.add_argument("--key", default=None, help="access key of the idle connections")
    parser.add_argument("--ping", type=float, default=15.0, help="client keep-alive interval, seconds")
    parser.add_argument("--no-negotiate", action="store_true", help="SignalR skipNegotiation")
    parser.add_argument("--parallel", type=int, default=64, help="connections opened at once")
    parser.add_argument("--deadline", type=float, default=600, help="report READY after this long at the latest")
    args = parser.parse_args()
    raise_nofile()
    rec = Recorder()
    run = signalr_agent if args.protocol == "signalr" else socketio_agent
    if args.idle:
        plan = [(args.key or agent_key(agent_ids(1)[0]), None) for _ in range(args.idle)]
    else:
        plan = [(agent_key(a), a) for a in agent_ids(args.agents)]
    connector = aiohttp.TCPConnector(limit=0)
    gate = asyncio.Semaphore(args.parallel)
    counts = {"up": 0, "failed": 0}
    settled = asyncio.Event()

    async def one(session: aiohttp.ClientSession, key: str, agent: str | None) -> None:
        ready = asyncio.Event()
        async with gate:
            task = asyncio.create_task(run(session, args.url, key, agent, rec, ready,
                                           negotiate=not args.no_negotiate, ping=args.ping))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # failures are counted, not printed
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED, timeout=60)
            waiter.cancel()
        counts["up" if ready.is_set() else "failed"] += 1
        if counts["up"] + counts["failed"] == len(plan):
            settled.set()
        if not ready.is_set():
            if counts["failed"] <= 3:
                error = task.exception() if task.done() else "timeout"
                print(f"connect failed: {error!r}", file=sys.stderr)
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        tasks = [asyncio.create_task(one(session, k, a)) for k, a in plan]
        try:
            await asyncio.wait_for(settled.wait(), args.deadline)
        except TimeoutError:
            counts["failed"] = len(plan) - counts["up"]  # still connecting: reported as not up
        print(f"READY {counts['up']} {counts['failed']}", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            command = line.strip()
            if command == "DUMP":
                print(rec.dump(), flush=True)
            elif command in ("QUIT", ""):
                break
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
