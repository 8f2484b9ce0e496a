"""HTTP floor: what the HTTP server alone costs per request, before any application work, for
hypercorn on Trio (h11) as released, ctid's serving stack (the same with ctid's keep-alive timer,
ctid/web/serving.py) and the peer's (uvicorn on uvloop, httptools).

All serve ``floorapp.py`` (read the body, answer ``200 ok``). The load is ingest.py's: one load
process (load.py ``ingest``, aiohttp on uvloop) posting MegaFon pushes back to back from
``--concurrency`` workers for ``--duration`` s. Prints requests/s, the server's CPU per request and
the ceiling that CPU allows on one core; ctid's own webhook costs (bench/ingest.py) are on top of it.

    python bench/httpfloor.py --duration 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BENCH_DIR,
    cpu_seconds,
    free_port,
    machine,
    raise_nofile,
    start_server,
    summary_ms,
    workdir,
)
from ingest import load  # noqa: E402

STACKS = {
    "hypercorn-trio": "hypercorn (h11) on Trio, as released",
    "ctid-serving": "ctid's stack: hypercorn on Trio with ctid's keep-alive timer (ctid/web/serving.py)",
    "uvicorn": "the peer's stack: uvicorn (httptools) on uvloop",
}


def run_stack(name: str, args, work: Path) -> dict:
    port = free_port()
    server = start_server(name, [sys.executable, str(BENCH_DIR / "floorapp.py"), name, str(port)], work,
                          port=port, ready_path="/")
    try:
        load([server.url], procs=1, concurrency=args.concurrency, duration=1, agents=50, prefix="W")  # warm-up
        cpu0 = cpu_seconds(server.pid)
        result = load([server.url], procs=1, concurrency=args.concurrency, duration=args.duration,
                      agents=50, prefix="F")
        result["cpu_ms"] = (cpu_seconds(server.pid) - cpu0) * 1000 / max(1, result["webhooks"])
    finally:
        server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default=",".join(STACKS), help=f"comma-separated: {', '.join(STACKS)}")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per stack")
    parser.add_argument("--concurrency", type=int, default=32, help="load workers")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    raise_nofile()
    work = workdir()
    print(f"machine: {machine()}")
    print(f"HTTP floor: an empty ASGI app, 1 load process x {args.concurrency} workers, {args.duration:g} s per stack")
    results = {}
    for name in args.stacks.split(","):
        if name not in STACKS:
            raise SystemExit(f"unknown stack {name!r}: {', '.join(STACKS)}")
        r = results[name] = run_stack(name, args, work)
        lat = summary_ms(r.pop("latencies"))
        print(f"  {name:15} {r['rate']:7.0f} requests/s, server CPU {r['cpu_ms']:.3f} ms/request "
              f"(one core's ceiling {1000 / r['cpu_ms']:,.0f}/s); latency p50 {lat['p50']:.1f} p99 {lat['p99']:.1f} ms; "
              f"non-200 {dict((k, v) for k, v in r['status'].items() if k != '200') or 0} "
              f"- {STACKS[name]}", flush=True)
    for a, b in (("ctid-serving", "hypercorn-trio"), ("ctid-serving", "uvicorn"), ("hypercorn-trio", "uvicorn")):
        if a in results and b in results:
            print(f"CPU per request, {a} / {b}: {results[a]['cpu_ms'] / results[b]['cpu_ms']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
