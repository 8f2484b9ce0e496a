"""Real PostgreSQL and Redis servers for tests: use the local ones, or start private ones.

``postgres_server()`` / ``redis_server()`` are context managers yielding a server URL. They use the
server on the default local port when it answers; otherwise they start a throw-away server from the
system binaries (Debian's ``/usr/lib/postgresql/*/bin``, ``redis-server``) in a temporary directory on
a free port, and stop it afterwards. When neither works they raise :class:`ServiceUnavailable`; the
pytest fixtures turn that into a failure when ``CI`` is set, and a skip otherwise.

Environment overrides: ``CTID_TEST_POSTGRES_URL`` / ``CTID_TEST_REDIS_URL`` name a server to use;
``CTID_TEST_START_SERVERS=1`` ignores the default ports and always starts private servers.

``chromium()`` is Debian's Chromium driven by Playwright (never a downloaded browser), for tests of
the panel; ``CTID_CHROMIUM`` names another binary.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

POSTGRES_USERS = ("postgres", "root")


class ServiceUnavailable(RuntimeError):
    """Neither a running server nor a private one could be had; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_private() -> bool:
    return os.environ.get("CTID_TEST_START_SERVERS", "") not in ("", "0")


# --- PostgreSQL ---------------------------------------------------------------------------------


def _pg_connect(url: str):  # noqa: ANN202
    import psycopg

    return psycopg.connect(url, connect_timeout=3, autocommit=True)


def _pg_answers(host: str, port: int) -> str | None:
    """A libpq URL of the server's maintenance database if it accepts one of our users."""
    import psycopg

    for user in POSTGRES_USERS:
        url = f"postgresql://{user}@{host}:{port}/postgres"
        try:
            with _pg_connect(url):
                return url
        except psycopg.Error:
            continue
    return None


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ServiceUnavailable(
            "running as root and runuser is missing: cannot start PostgreSQL as 'postgres'"
        )
    return [runuser, "-u", "postgres", "--"]


@contextlib.contextmanager
def _private_postgres() -> Iterator[str]:
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = binaries[-1] if binaries else shutil.which("initdb")
    if initdb is None:
        raise ServiceUnavailable("no PostgreSQL answers on 127.0.0.1:5432 and initdb is not installed")
    pg_ctl = os.path.join(os.path.dirname(initdb), "pg_ctl")
    prefix = _as_postgres_user()
    workdir = tempfile.mkdtemp(prefix="ctid-pg-")
    datadir = os.path.join(workdir, "data")
    if prefix:
        shutil.chown(workdir, "postgres", "postgres")
    port = free_port()
    log = os.path.join(workdir, "server.log")

    def run(*args: str) -> None:
        proc = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise ServiceUnavailable(
                f"{os.path.basename(args[0])} failed: {(proc.stderr or proc.stdout).strip()}"
            )

    try:
        run(initdb, "-D", datadir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(pg_ctl, "-D", datadir, "-l", log, "-o", options, "-w", "-t", "60", "start")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*prefix, pg_ctl, "-D", datadir, "-m", "immediate", "-w", "stop"], capture_output=True
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a libpq URL (``postgresql://user@host:port/postgres``) of a server we may create databases on."""
    explicit = os.environ.get("CTID_TEST_POSTGRES_URL")
    if explicit:
        yield explicit
        return
    if not _start_private():
        url = _pg_answers("127.0.0.1", 5432)
        if url is not None:
            yield url
            return
    with _private_postgres() as url:
        yield url


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """Create a fresh, uniquely named database on ``server_url``; yield its SQLAlchemy URL; drop it."""
    from sqlalchemy.engine import make_url

    name = f"ctid_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with _pg_connect(server_url) as conn:
        if make_url(server_url).host in ("127.0.0.1", "localhost", None) and os.path.isdir("/proc/self"):
            _drop_orphans(conn)
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(drivername="postgresql+psycopg", database=name).render_as_string(False)
    finally:
        with _pg_connect(server_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_orphans(conn) -> None:  # noqa: ANN001
    """Drop test databases left by sessions of this host that died without cleaning up."""
    rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'ctid\\_test\\_%'").fetchall()
    for (name,) in rows:
        pid = name.split("_")[2]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgres_schema(database_url: str) -> Iterator[str]:
    """Create an empty schema in the database at ``database_url`` and yield a URL whose connections
    use it (``search_path``); drop it with everything in it afterwards. Cheap per-test isolation."""
    from sqlalchemy.engine import make_url

    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = make_url(database_url)
    libpq = url.set(drivername="postgresql").render_as_string(False)
    with _pg_connect(libpq) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with _pg_connect(libpq) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- Redis --------------------------------------------------------------------------------------


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def _private_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable("no Redis answers on 127.0.0.1:6379 and redis-server is not installed")
    workdir = tempfile.mkdtemp(prefix="ctid-redis-")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", workdir, "--daemonize", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 15
        while not _redis_answers(url):
            if proc.poll() is not None:
                raise ServiceUnavailable(
                    f"redis-server exited: {proc.stderr.read().decode(errors='replace').strip()}"
                )
            if time.monotonic() > deadline:
                raise ServiceUnavailable("redis-server did not answer within 15 s")
            time.sleep(0.05)  # real time: waiting for an external process to boot
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Yield a ``redis://`` URL of a server (shared: isolate with key/channel prefixes, never FLUSHALL)."""
    explicit = os.environ.get("CTID_TEST_REDIS_URL")
    if explicit:
        yield explicit
        return
    if not _start_private() and _redis_answers("redis://127.0.0.1:6379/0"):
        yield "redis://127.0.0.1:6379/0"
        return
    with _private_redis() as url:
        yield url


def delete_redis_prefix(url: str, prefix: str) -> None:
    """Delete every key starting with ``prefix``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def require_npm_packages(directory: Path, package: str) -> None:
    """Make sure ``node`` runs and ``package`` is installed in ``directory/node_modules`` (running
    ``npm ci`` there when it is missing). When that fails: :func:`fail_or_skip`."""
    problem = None
    if shutil.which("node") is None or shutil.which("npm") is None:
        problem = "node/npm are not installed"
    elif not (directory / "node_modules" / package).is_dir():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=directory, capture_output=True,
                              text=True, timeout=300)
        if done.returncode != 0:
            problem = f"npm ci failed: {done.stderr[-500:]}"
    if problem:
        fail_or_skip(problem)


def fail_or_skip(problem: str) -> None:
    """A real part a test needs is missing: a test failure under CI (the ``CI`` environment
    variable), where it must be there, and a skip saying why elsewhere."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


CHROMIUM = os.environ.get("CTID_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright ``Browser`` of Debian's Chromium (``CTID_CHROMIUM``), headless. Playwright's
    ``expect`` waits up to 10 s: a real server and browser on a shared 2-core machine. Without
    Chromium or the ``playwright`` package: :func:`fail_or_skip`."""
    found = shutil.which(CHROMIUM)
    if not found or not Path(found).is_file():
        fail_or_skip(f"Chromium not found at {CHROMIUM} (Debian package 'chromium')")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        fail_or_skip("the Python package 'playwright' is not installed (the test extra)")
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()
