"""Screen-pop latency benchmark: ctid against the peer (python-socketio under uvicorn), same run.

A real ``ctid serve`` (SQLite + in-memory hub, or ``--db postgresql --backplane redis``) and the
peer (bench/peer.py) run side by side. One clients' process per server holds ``--agents``
connections (ctid: SignalR JSON protocol; peer: Socket.IO). For each rate of ``--rates``, a load
process (load.py, its own process) posts MegaFon INCOMING + COMPLETED pushes at that many calls/s,
round-robin over the agents, first to ctid, then to the peer. Latency is from the INCOMING request
leaving the load process to the ``callUpdated(ringing)`` frame arriving at that agent's client
(``time.perf_counter()`` in both processes: CLOCK_MONOTONIC, one machine). A pop that never
arrives at the agent is lost, a second one is a duplicate. Afterwards every call's events are
counted in ctid's database.

    python bench/screenpop.py --rates 100,200,500,1000,1500 --duration 5 --agents 50
    python bench/screenpop.py --db postgresql --backplane redis --rates 200,500,1000
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BENCH_DIR,
    REDIS_URL,
    database,
    free_port,
    machine,
    persisted,
    raise_nofile,
    start_ctid,
    start_peer,
    summary_ms,
    workdir,
)

KNEE_MS = 10.0


class Clients:
    """A clients' process (clients.py) speaking to one server."""

    def __init__(self, url: str, protocol: str, agents: int):
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "clients.py"), "--url", url, "--protocol", protocol,
             "--agents", str(agents)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY" or int(line[2]):
            raise RuntimeError(f"{protocol} clients did not connect: {line}")

    def dump(self) -> dict:
        self.proc.stdin.write("DUMP\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("QUIT\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def run_load(url: str, *, rate: float, duration: float, agents: int, hold: float, prefix: str,
             offset: int) -> dict:
    out = subprocess.run(
        [sys.executable, str(BENCH_DIR / "load.py"), "pop", "--url", url, "--rate", str(rate),
         "--duration", str(duration), "--agents", str(agents), "--hold", str(hold), "--prefix", prefix,
         "--offset", str(offset)],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def measure(load: dict, arrivals: list) -> dict:
    """Join the load's send times with the clients' arrival times."""
    sent = {callid: (agent, t) for callid, agent, t in load["sends"]}
    first: dict[str, float] = {}
    dup = misrouted = 0
    for callid, agent, t in arrivals:
        if callid not in sent:
            continue
        if agent != sent[callid][0]:
            misrouted += 1
        elif callid in first:
            dup += 1
        else:
            first[callid] = t
    latencies = [first[c] - t for c, (_, t) in sent.items() if c in first]
    result = summary_ms(latencies)
    result.update(calls=len(sent), lost=len(sent) - len(first), dup=dup, misrouted=misrouted,
                  rate=load["rate"], ack=summary_ms(load["acks"]), status=load["status"],
                  errors=load["errors"])
    return result


def knee(rows: list[tuple[float, dict]]) -> str:
    below = [r for r, m in rows if m["p99"] <= KNEE_MS and not m["lost"]]
    above = [r for r, m in rows if m["p99"] > KNEE_MS or m["lost"]]
    if not above:
        return f">{max(r for r, _ in rows):g} calls/s (p99 <= {KNEE_MS:g} ms at every rate tested)"
    first_above = min(above)
    last_below = max([r for r in below if r < first_above], default=0)
    return f"between {last_below:g} and {first_above:g} calls/s"


def fmt(m: dict | None) -> str:
    if m is None:
        return f"{'-':>42}"
    return (f"{m['p50']:6.1f} {m['p95']:6.1f} {m['p99']:6.1f} {m['max']:7.1f} "
            f"{m['lost']:5d} {m['dup']:4d} {m['rate']:6.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200,500,1000,1500", help="calls/s, comma-separated")
    parser.add_argument("--duration", type=float, default=5, help="seconds of load per rate and server")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--hold", type=float, default=0.2, help="seconds between INCOMING and COMPLETED")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of 20 calls/s before measuring")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--backplane", choices=("memory", "redis"), default="memory")
    parser.add_argument("--targets", default="ctid,peer", help="ctid, peer or both")
    parser.add_argument("--stop-ms", type=float, default=200,
                        help="stop raising a server's rate once its p99 passed this at two rates in a row")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per rate and server; the one with the lowest p99 is reported (shared machines)")
    parser.add_argument("--profile", metavar="FILE", help="py-spy record ctid during the run (collapsed stacks)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, SQLite file)")
    args = parser.parse_args()
    raise_nofile()
    rates = [float(r) for r in args.rates.split(",")]
    targets = args.targets.split(",")
    work = workdir(args.keep)
    print(f"machine: {machine()}")
    print(f"screen pop: {args.agents} agents, {args.duration:g} s per rate, hold {args.hold:g} s, "
          f"ctid on {args.db} + {args.backplane} hub; work dir {work}")
    results: dict[str, list[tuple[float, dict]]] = {t: [] for t in targets}
    with database(args.db, work) as db_url:
        servers, clients, profiler = {}, {}, None
        try:
            if "ctid" in targets:
                servers["ctid"] = start_ctid(work, port=free_port(), agents=args.agents, db_url=db_url,
                                             backplane=REDIS_URL if args.backplane == "redis" else "memory")
                clients["ctid"] = Clients(servers["ctid"].url, "signalr", args.agents)
            if "peer" in targets:
                servers["peer"] = start_peer(work, port=free_port(), agents=args.agents)
                clients["peer"] = Clients(servers["peer"].url, "socketio", args.agents)
            if args.profile and "ctid" in servers:
                profiler = subprocess.Popen(["py-spy", "record", "--pid", str(servers["ctid"].pid), "--format", "raw",
                                             "--rate", "200", "--nonblocking", "--threads", "--output", args.profile],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for target in targets:  # warm-up (lazy imports, caches, connection pools), not measured
                if args.warmup:
                    run_load(servers[target].url, rate=20, duration=args.warmup, agents=args.agents, hold=args.hold,
                             prefix=f"W{target[0].upper()}X", offset=9_000_000)
            stopped: set[str] = set()
            over: dict[str, int] = {}
            ctid_sent = 0
            prefixes: list[str] = []
            offset = 0
            for step, rate in enumerate(rates):
                for target in targets:
                    if target in stopped:
                        continue
                    tries = []
                    for attempt in range(args.repeat):
                        clients[target].dump()  # drop anything left from the previous step
                        prefix = f"{target[0].upper()}{step:02d}{attempt}X"
                        load = run_load(servers[target].url, rate=rate, duration=args.duration, agents=args.agents,
                                        hold=args.hold, prefix=prefix, offset=offset)
                        offset += load["calls"]
                        time.sleep(0.5)
                        m = measure(load, clients[target].dump()["arrivals"])
                        m["prefix"] = prefix
                        tries.append(m)
                        if attempt + 1 < args.repeat:
                            time.sleep(1.0)
                    m = min(tries, key=lambda t: (t["lost"], t["p99"]))
                    m["tries"] = [(t["p99"], t["lost"]) for t in tries]
                    if target == "ctid":
                        ctid_sent += sum(t["calls"] for t in tries)
                        prefixes.extend(t["prefix"] for t in tries)
                    results[target].append((rate, m))
                    print(f"  {target:4} {rate:6g} calls/s: p50 {m['p50']:.1f} p95 {m['p95']:.1f} p99 {m['p99']:.1f} "
                          f"max {m['max']:.1f} ms, lost {m['lost']}, dup {m['dup']}, misrouted {m['misrouted']}, "
                          f"sent at {m['rate']:.0f}/s, webhook ack p99 {m['ack']['p99']:.1f} ms, "
                          f"status {m['status']} {m['errors'] or ''}"
                          + (f" (p99 of each try: {[round(p, 1) for p, _ in m['tries']]})" if args.repeat > 1 else ""),
                          flush=True)
                    if m["p99"] > args.stop_ms or m["lost"] > m["calls"] // 10:
                        over[target] = over.get(target, 0) + 1
                        if over[target] >= 2:  # twice in a row: saturated, not a hiccup
                            stopped.add(target)
                    else:
                        over[target] = 0
                    time.sleep(1.0)
            if profiler is not None:
                profiler.send_signal(2)
                profiler.wait(30)
            if "ctid" in servers:
                time.sleep(2.5)  # the settle window closes the last calls; then count what is stored
                counts = [persisted(db_url, prefix) for prefix in prefixes]
        finally:
            for c in clients.values():
                c.close()
            for s in servers.values():
                s.stop()

    print()
    print("latency in ms from the INCOMING request leaving the load process to callUpdated(ringing) at the agent")
    head = f"{'p50':>6} {'p95':>6} {'p99':>6} {'max':>7} {'lost':>5} {'dup':>4} {'sent/s':>6}"
    print(f"{'calls/s':>8} | {'ctid ' + head:>48} | {'peer ' + head:>48} | p99 ctid/peer")
    by_rate = {t: dict(rows) for t, rows in results.items()}
    for rate in rates:
        c, p = by_rate.get("ctid", {}).get(rate), by_rate.get("peer", {}).get(rate)
        ratio = f"{c['p99'] / p['p99']:.2f}" if c and p and p["p99"] and not math.isnan(c["p99"]) else "-"
        print(f"{rate:8g} | {fmt(c):>48} | {fmt(p):>48} | {ratio}")
    for target, rows in results.items():
        if rows:
            print(f"knee ({target}, p99 > {KNEE_MS:g} ms or a lost pop): {knee(rows)}")
    if "ctid" in results and results["ctid"]:
        total = ctid_sent
        stored = {k: sum(c[k] for c in counts) for k in ("calls", "ring", "leg_end")}
        ok = all(stored[k] == total for k in stored)
        print(f"persisted ({args.db}): {stored['calls']} calls, {stored['ring']} INCOMING and {stored['leg_end']} "
              f"COMPLETED events for {total} calls sent -> {'every event stored' if ok else 'MISSING ROWS'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
