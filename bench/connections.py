"""Connections benchmark: memory (RSS) and CPU of a ctid serve holding N idle hub connections
with keep-alive (SignalR Pings both ways every 15 s, as the JS client and ctid default to).

For each size a fresh ``ctid serve`` starts; clients' processes (clients.py ``--idle``, at most
``--per-proc`` connections each) open the connections (negotiate + WebSocket + handshake); once all
are up, ctid's RSS is read and its CPU time is measured over ``--window`` seconds of idling.
The open-files limit is raised to the hard limit (each connection is a file descriptor on both
sides); a size above what that limit allows is lowered and reported as such.

    python bench/connections.py --sizes 1000,5000,20000 --window 30
    python bench/connections.py --sizes 1000,5000 --targets ctid,peer    # also the Socket.IO peer
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BENCH_DIR,
    agent_ids,
    agent_key,
    cpu_seconds,
    database,
    free_port,
    machine,
    raise_nofile,
    rss_bytes,
    start_ctid,
    start_peer,
    workdir,
)

HEADROOM = 200  # descriptors the server needs besides its connections (listener, database, epoll...)


def open_clients(url: str, protocol: str, total: int, per_proc: int, ping: float,
                 deadline: float) -> tuple[list, int, float]:
    procs, started = [], time.perf_counter()
    key = agent_key(agent_ids(1)[0])
    remaining = total
    while remaining > 0:
        n = min(per_proc, remaining)
        remaining -= n
        procs.append(subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "clients.py"), "--url", url, "--protocol", protocol,
             "--idle", str(n), "--key", key, "--ping", str(ping), "--deadline", str(deadline)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1))
    up = 0
    for proc in procs:
        line = proc.stdout.readline().split()
        up += int(line[1]) if line and line[0] == "READY" else 0
    return procs, up, time.perf_counter() - started


def close_clients(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.stdin.write("QUIT\n")
            proc.stdin.flush()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000", help="connections, comma-separated")
    parser.add_argument("--window", type=float, default=30, help="seconds of idling over which CPU is measured")
    parser.add_argument("--per-proc", type=int, default=5000, help="connections per clients' process")
    parser.add_argument("--ping", type=float, default=15, help="client keep-alive interval, seconds")
    parser.add_argument("--targets", default="ctid", help="ctid and/or peer")
    parser.add_argument("--deadline", type=float, default=240, help="seconds allowed for opening the connections")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    limit = raise_nofile()
    work = workdir(args.keep)
    print(f"machine: {machine()}")
    print(f"connections: idle hub connections, client Ping every {args.ping:g} s, CPU over {args.window:g} s; "
          f"open-files limit {limit}")
    rows = []
    for target in args.targets.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            n = min(size, limit - HEADROOM)
            with database("sqlite", work) as db_url:
                if target == "ctid":
                    server = start_ctid(work, port=free_port(), agents=1, db_url=db_url)
                    protocol = "signalr"
                else:
                    server = start_peer(work, port=free_port(), agents=1)
                    protocol = "socketio"
                procs = []
                try:
                    time.sleep(1)
                    base = rss_bytes(server.pid)
                    procs, up, took = open_clients(server.url, protocol, n, args.per_proc, args.ping, args.deadline)
                    time.sleep(3)
                    rss = rss_bytes(server.pid)
                    cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
                    time.sleep(args.window)
                    cpu = (cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - t0)
                    alive = server.proc.poll() is None
                finally:
                    close_clients(procs)
                    server.stop()
            note = "" if n == size else f" (asked {size}; lowered to fit the open-files limit {limit})"
            row = (target, n, up, rss, base, cpu, took)
            rows.append(row)
            print(f"  {target:4} {n:6d} connections{note}: {up} up in {took:.1f} s; RSS {rss / 2**20:.0f} MiB "
                  f"(idle server {base / 2**20:.0f} MiB, {(rss - base) / max(up, 1) / 1024:.1f} KiB per connection); "
                  f"CPU {cpu * 100:.1f}% of one core while idle{'' if alive else '; SERVER DIED'}", flush=True)
    print()
    print(f"{'server':6} {'connections':>11} {'up':>6} {'RSS MiB':>8} {'KiB/conn':>8} {'CPU %':>6}")
    for target, n, up, rss, base, cpu, _ in rows:
        print(f"{target:6} {n:11d} {up:6d} {rss / 2**20:8.0f} {(rss - base) / max(up, 1) / 1024:8.1f} {cpu * 100:6.1f}")
    big = [r for r in rows if r[0] == "ctid" and r[1] >= 19_000]
    if big:
        _, n, up, rss, base, *_ = big[-1]
        per = (rss - base) / max(up, 1)
        print(f"ctid at 20,000 connections (extrapolated from {up}): {(base + per * 20_000) / 2**30:.2f} GiB RSS "
              f"(target <= 1 GiB)")


if __name__ == "__main__":
    main()
