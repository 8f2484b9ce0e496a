"""Ingest benchmark: the most MegaFon webhooks per second ctid acknowledges with every event
committed, on SQLite (WAL) and PostgreSQL, and with two instances sharing PostgreSQL behind the
Redis backplane.

The load processes (load.py ``ingest``, ``--load-procs`` of them, each its own process) run
``--concurrency`` closed-loop workers that post INCOMING then COMPLETED per call for ``--duration``
seconds; ctid answers 200 only after the commit, so the rate of 200s is the committed rate. The
stored rows are counted afterwards, and ctid's CPU time per webhook is printed.

    python bench/ingest.py --setups sqlite,postgresql,two --duration 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BENCH_DIR,
    REDIS_URL,
    cpu_seconds,
    database,
    free_port,
    machine,
    persisted,
    raise_nofile,
    start_ctid,
    summary_ms,
    workdir,
)


def load(urls: list[str], *, procs: int, concurrency: int, duration: float, agents: int, prefix: str) -> dict:
    """Run ``procs`` load processes at once; merge their results."""
    running = []
    for n in range(procs):
        cmd = [sys.executable, str(BENCH_DIR / "load.py"), "ingest", "--duration", str(duration),
               "--concurrency", str(concurrency), "--agents", str(agents), "--prefix", f"{prefix}{n}X",
               "--offset", str(n * 1_000_000)]
        for url in urls:
            cmd += ["--url", url]
        running.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    results = [json.loads(p.communicate()[0]) for p in running]
    merged = {"ok": sum(r["ok"] for r in results), "webhooks": sum(r["webhooks"] for r in results),
              "calls": sum(r["calls"] for r in results), "seconds": max(r["seconds"] for r in results),
              "latencies": [x for r in results for x in r["latencies"]], "status": {}, "errors": {}}
    for r in results:
        for field in ("status", "errors"):
            for k, v in r[field].items():
                merged[field][k] = merged[field].get(k, 0) + v
    merged["rate"] = merged["ok"] / merged["seconds"]
    merged["prefixes"] = [f"{prefix}{n}X" for n in range(procs)]
    return merged


def run_setup(setup: str, args, work: Path) -> dict:
    kind = "sqlite" if setup == "sqlite" else "postgresql"
    instances = 2 if setup == "two" else 1
    with database(kind, work) as db_url:
        servers = []
        try:
            for _ in range(instances):
                servers.append(start_ctid(work, port=free_port(), agents=args.agents, db_url=db_url,
                                          backplane=REDIS_URL if instances > 1 else "memory", settle=1.0))
            profiler = None
            if args.profile:
                profiler = subprocess.Popen(["py-spy", "record", "--pid", str(servers[0].pid), "--format", "raw",
                                             "--rate", "200", "--nonblocking", "--threads", "--output",
                                             f"{args.profile}.{setup}"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cpu0 = [cpu_seconds(s.pid) for s in servers]
            result = load([s.url for s in servers], procs=args.load_procs, concurrency=args.concurrency,
                          duration=args.duration, agents=args.agents, prefix=setup[0].upper())
            cpu = sum(cpu_seconds(s.pid) - c for s, c in zip(servers, cpu0, strict=True))
            if profiler is not None:
                profiler.send_signal(2)
                profiler.wait(30)
            time.sleep(1.5)  # settle-window leg ends of the last calls
            stored = {"calls": 0, "ring": 0, "leg_end": 0}
            for prefix in result["prefixes"]:
                for k, v in persisted(db_url, prefix).items():
                    stored[k] += v
        finally:
            for s in servers:
                s.stop()
    result["stored"] = stored
    result["cpu_ms_per_webhook"] = cpu * 1000 / max(1, result["webhooks"])
    result["instances"] = instances
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", default="sqlite,postgresql,two",
                        help="sqlite, postgresql, two (2 instances + Redis + PostgreSQL), comma-separated")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per setup")
    parser.add_argument("--concurrency", type=int, default=32, help="workers per load process")
    parser.add_argument("--load-procs", type=int, default=1, help="load processes")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--profile", metavar="FILE", help="py-spy record the (first) ctid into FILE.<setup>")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    raise_nofile()
    work = workdir(args.keep)
    print(f"machine: {machine()}")
    print(f"ingest: {args.load_procs} load process(es) x {args.concurrency} workers, {args.duration:g} s per setup")
    results = {}
    for setup in args.setups.split(","):
        r = run_setup(setup, args, work)
        results[setup] = r
        lat = summary_ms(r["latencies"])
        complete = r["stored"]["ring"] + r["stored"]["leg_end"]
        acked_events = r["status"].get("200", 0)
        print(f"  {setup:10} {r['instances']} instance(s): {r['rate']:7.0f} webhooks/s committed "
              f"({r['ok']} x 200 in {r['seconds']:.1f} s; other {dict((k, v) for k, v in r['status'].items() if k != '200')}"
              f" {r['errors'] or ''}); ack p50 {lat['p50']:.1f} p99 {lat['p99']:.1f} ms; "
              f"ctid CPU {r['cpu_ms_per_webhook']:.2f} ms/webhook; stored {complete} events for {acked_events} "
              f"acknowledged -> {'all stored' if complete >= acked_events else 'MISSING'}", flush=True)
        r.pop("latencies")
    if "two" in results and "postgresql" in results:
        print(f"two instances / one (PostgreSQL): {results['two']['rate'] / results['postgresql']['rate']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
