"""The load generator of the benchmarks, in its own process (aiohttp on uvloop): MegaFon ``event``
pushes, INCOMING then COMPLETED per call, as form posts to ``/hooks/mf``.

``pop``: open loop at ``--rate`` calls/s for ``--duration`` s, calls spread round-robin over the
agents; records ``time.perf_counter()`` right before each INCOMING request is handed to aiohttp
(the clients' process timestamps arrivals with the same clock).
``ingest``: closed loop, ``--concurrency`` workers posting back-to-back for ``--duration`` s (every
200 means the event was committed); reports webhooks/s.

Prints one JSON object on stdout. Usually run by screenpop.py / ingest.py, not by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import agent_ids, login_of, megafon_push, phone_for, raise_nofile  # noqa: E402

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
perf = time.perf_counter


async def post(session: aiohttp.ClientSession, url: str, body: bytes, stats: dict) -> float:
    started = perf()
    try:
        async with session.post(url, data=body, headers=FORM) as response:
            await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        stats["errors"][type(exc).__name__] = stats["errors"].get(type(exc).__name__, 0) + 1
        return float("nan")
    stats["status"][str(status)] = stats["status"].get(str(status), 0) + 1
    return perf() - started


async def pop(args, session: aiohttp.ClientSession) -> dict:
    agents = agent_ids(args.agents)
    stats = {"status": {}, "errors": {}}
    sends: list[tuple[str, str, float]] = []
    acks: list[float] = []
    url = args.url[0] + "/hooks/mf"
    pending: set[asyncio.Task] = set()

    async def call(index: int) -> None:
        agent = agents[index % len(agents)]
        callid = f"{args.prefix}{index:07d}"
        phone = phone_for(args.offset + index)
        body = megafon_push("INCOMING", callid, login_of(agent), phone)
        sends.append((callid, agent, perf()))
        acks.append(await post(session, url, body, stats))
        await asyncio.sleep(args.hold)
        await post(session, url, megafon_push("COMPLETED", callid, login_of(agent), phone), stats)

    total = int(args.rate * args.duration)
    started = perf()
    index = 0
    while index < total:
        now = perf()
        due = int((now - started) * args.rate) + 1
        while index < min(due, total):
            task = asyncio.create_task(call(index))
            pending.add(task)
            task.add_done_callback(pending.discard)
            index += 1
        await asyncio.sleep(max(0.0, started + index / args.rate - perf()))
    sent_for = perf() - started
    if pending:
        await asyncio.wait(pending, timeout=args.drain)
    return {"mode": "pop", "calls": total, "seconds": sent_for, "rate": total / sent_for if sent_for else 0,
            "sends": sends, "acks": [a for a in acks if a == a], "unfinished": len(pending), **stats}


async def ingest(args, session: aiohttp.ClientSession) -> dict:
    agents = agent_ids(args.agents)
    stats = {"status": {}, "errors": {}}
    latencies: list[float] = []
    counter = itertools.count()
    stop_at = perf() + args.duration
    urls = [u + "/hooks/mf" for u in args.url]

    async def worker(number: int) -> None:
        url = urls[number % len(urls)]
        while perf() < stop_at:
            index = next(counter)
            agent = agents[index % len(agents)]
            callid = f"{args.prefix}{index:07d}"
            phone = phone_for(args.offset + index)
            for state in ("INCOMING", "COMPLETED"):
                latencies.append(await post(session, url, megafon_push(state, callid, login_of(agent), phone),
                                            stats))

    started = perf()
    await asyncio.gather(*(worker(n) for n in range(args.concurrency)))
    elapsed = perf() - started
    ok = stats["status"].get("200", 0)
    return {"mode": "ingest", "seconds": elapsed, "webhooks": len(latencies), "ok": ok,
            "calls": next(counter), "rate": ok / elapsed, "latencies": [x for x in latencies if x == x], **stats}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("pop", "ingest"))
    parser.add_argument("--url", action="append", required=True, help="server base URL (repeat: round-robin)")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100, help="pop: calls per second")
    parser.add_argument("--duration", type=float, default=5, help="seconds of load")
    parser.add_argument("--hold", type=float, default=0.2, help="pop: seconds between INCOMING and COMPLETED")
    parser.add_argument("--concurrency", type=int, default=32, help="ingest: workers")
    parser.add_argument("--connections", type=int, default=512, help="HTTP connections (keep-alive pool)")
    parser.add_argument("--prefix", default="B", help="PBX call id prefix (unique per run)")
    parser.add_argument("--offset", type=int, default=0, help="first caller number index")
    parser.add_argument("--drain", type=float, default=30, help="pop: seconds to wait for late answers")
    args = parser.parse_args()
    raise_nofile()
    connector = aiohttp.TCPConnector(limit=args.connections, limit_per_host=args.connections)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        result = await (pop(args, session) if args.mode == "pop" else ingest(args, session))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
