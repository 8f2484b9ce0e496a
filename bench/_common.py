"""Shared helpers of the benchmarks: machine description, ctid/peer server processes, configs,
MegaFon payloads, percentiles and row counts. Every benchmark command imports this module."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

BENCH_DIR = Path(__file__).resolve().parent
CRM_TOKEN = "bench-crm-token-0123456789"
MF_API_KEY = "bench-mf-api-key"
ADMIN_KEY = "bench-admin-key-0123456789"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


# -- the machine ---------------------------------------------------------------------------------

def machine() -> str:
    """One line: CPU model, cores, memory, Python (what every result must be printed with)."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    load = os.getloadavg()[0]
    return (f"{model}, nproc={os.cpu_count()}, RAM {mem_kb / 1048576:.1f} GiB, "
            f"Python {platform.python_version()}, load avg {load:.2f} at start")


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard limit (inherited by child processes)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of unsorted ``values``; NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds of latencies given in seconds."""
    return {name: percentile(values, q) * 1000 for name, q in
            (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))}


# -- agents and payloads -------------------------------------------------------------------------

def agent_ids(n: int) -> list[str]:
    return [f"ag{i:05d}" for i in range(n)]


def agent_key(agent: str) -> str:
    return f"bench-key-{agent}-0123456789"


def login_of(agent: str) -> str:
    return f"u{agent}"


def megafon_push(state: str, callid: str, login: str, phone: str) -> bytes:
    """One MegaFon ``cmd=event`` push, form-encoded as the PBX sends it (reference §3.3)."""
    return urlencode({
        "cmd": "event", "type": state, "direction": "in", "user": login, "callid": callid,
        "phone": phone, "diversion": "74950000001", "crm_token": CRM_TOKEN,
    }).encode()


def phone_for(index: int) -> str:
    return f"7916{index % 10_000_000:07d}"


# -- ctid configuration and process --------------------------------------------------------------

def ctid_config(workdir: Path, *, port: int, agents: int, db_url: str, backplane: str = "memory",
                settle: float = 2.0, log_level: str = "warning") -> Path:
    """Write a ctid YAML config: one MegaFon instance ``mf`` (no reconciliation, fake tenant URL,
    nothing reachable is called on the webhook path), ``agents`` agents each with an API key."""
    ids = agent_ids(agents)
    config: dict[str, Any] = {
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"},
        "database": {"url": db_url},
        "hub": {"backplane": backplane},
        "data_dir": str(workdir / "var"),
        "log": {"level": log_level},
        "auth": {
            "secret": "bench-shared-auth-secret-0123456789",
            "api_keys": [{"name": "admin", "key": ADMIN_KEY, "role": "admin"}]
            + [{"name": a, "key": agent_key(a), "role": "agent", "agent": a} for a in ids],
        },
        "agents": {a: {"name": a, "pbx": {"mf": login_of(a)}} for a in ids},
        "connectors": {"mf": {
            "plugin": "megafon", "crm_token": CRM_TOKEN, "api_url": "http://127.0.0.1:9",
            "api_key": MF_API_KEY, "settle_seconds": settle, "reconcile_interval": None,
        }},
    }
    path = workdir / f"ctid-{port}.yaml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


def ctid_exe() -> list[str]:
    """The ctid command: ``$BENCH_CTID_CMD`` if set (e.g. a wrapper for experiments), else ``ctid``."""
    if os.environ.get("BENCH_CTID_CMD"):
        return os.environ["BENCH_CTID_CMD"].split()
    exe = shutil.which("ctid")
    return [exe] if exe else [sys.executable, "-m", "ctid"]


@dataclass
class Server:
    """A server process (ctid or the peer) with its URL and a log file."""

    name: str
    proc: subprocess.Popen
    url: str
    log: Path
    started: float = 0.0
    ready_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60, expect: int = 200) -> float:
    """Poll ``url`` until it answers ``expect``; returns the seconds waited (raises if the process died)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == expect:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def start_server(name: str, cmd: list[str], workdir: Path, *, port: int, ready_path: str,
                 env: dict[str, str] | None = None) -> Server:
    """Start ``cmd`` (a server listening on ``port``) in ``workdir``, logging to a file there, and
    wait until ``ready_path`` answers 200; on failure print the log's tail and stop it."""
    log = workdir / f"{name}-{port}.log"
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    server = Server(name, proc, url, log, started)
    try:
        server.ready_seconds = wait_http(url + ready_path, proc)
    except RuntimeError:
        print(server.tail(), file=sys.stderr)
        server.stop()
        raise
    return server


def start_ctid(workdir: Path, *, port: int, agents: int, db_url: str, backplane: str = "memory",
               settle: float = 2.0, name: str = "ctid", env: dict[str, str] | None = None) -> Server:
    config = ctid_config(workdir, port=port, agents=agents, db_url=db_url, backplane=backplane, settle=settle)
    return start_server(name, [*ctid_exe(), "serve", "--config", str(config)], workdir, port=port,
                        ready_path="/readyz", env=env)


def start_peer(workdir: Path, *, port: int, agents: int) -> Server:
    return start_server("peer", [sys.executable, str(BENCH_DIR / "peer.py"), "--port", str(port),
                                 "--agents", str(agents)], workdir, port=port, ready_path="/healthz")


# -- databases -----------------------------------------------------------------------------------

@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database URL: ``sqlite`` (a file in ``workdir``, WAL) or ``postgresql``
    (a new database on the local server, dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    if kind != "postgresql":
        raise SystemExit(f"unknown database {kind!r}: sqlite or postgresql")
    import sqlalchemy as sa

    name = f"ctid_bench_{os.getpid()}_{int(time.time())}"
    admin = sa.create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def persisted(db_url: str, prefix: str) -> dict[str, int]:
    """Rows stored for calls whose PBX id starts with ``prefix``: calls, ring events and the
    agents' leg-end events (the COMPLETED pushes; settle's own leg ends excluded)."""
    import sqlalchemy as sa

    url = db_url.replace("postgresql://", "postgresql+psycopg://")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            calls = conn.execute(sa.text("SELECT count(*) FROM calls WHERE pbx_call_id LIKE :p"),
                                 {"p": prefix + "%"}).scalar_one()
            rows = conn.execute(sa.text(
                "SELECT e.kind, count(*) FROM events e JOIN calls c ON c.id = e.call_id "
                "WHERE c.pbx_call_id LIKE :p AND e.key NOT LIKE 'settle:%' GROUP BY e.kind"),
                {"p": prefix + "%"}).all()
    finally:
        engine.dispose()
    kinds = dict(rows)
    return {"calls": calls, "ring": kinds.get("ring", 0), "leg_end": kinds.get("leg_end", 0)}


def workdir(keep: bool = False) -> Path:
    path = Path(tempfile.mkdtemp(prefix="ctid-bench-"))
    if not keep:
        import atexit

        atexit.register(shutil.rmtree, path, True)
    return path


# -- process resource usage ----------------------------------------------------------------------

def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
