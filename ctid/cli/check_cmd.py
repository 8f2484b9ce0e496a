"""``ctid check``: health of the database, the CRM and each connector; exit 0 only if all healthy."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def check(
        config: Path = typer.Option(..., "--config", "-c", envvar="CTID_CONFIG", help="Configuration file."),
        as_json: bool = typer.Option(
            False, "--json", help='Print JSON: {"ok", "checks": [...]}, or {"ok": false, "error": {"id", "message"}} '
            "when the configuration or a plugin cannot be used (same exit code as without --json)."
        ),
        timeout: float = typer.Option(10.0, help="Seconds allowed for each check."),
    ) -> None:
        """Check the database, the CRM and every connector; exit 1 if any is unhealthy."""
        import trio

        from ctid.cli import fail
        from ctid.config.loader import load_config
        from ctid.errors import CtidError
        from ctid.plugins import get_plugin_manager

        try:
            pm = get_plugin_manager()
            settings = load_config(config, pm)
            pm.ensure_enabled_ok(settings)
            results = trio.run(_run_checks, settings, pm, timeout)
        except CtidError as exc:
            if not as_json:
                raise fail(exc) from None
            # a script reading --json gets JSON whatever happened; the exit code stays the error's
            typer.echo(json.dumps({"ok": False, "error": {"id": exc.error_id, "message": str(exc)}}, indent=2))
            raise typer.Exit(exc.exit_code) from None
        healthy = all(r["ok"] for r in results)
        if as_json:
            typer.echo(json.dumps({"ok": healthy, "checks": results}, indent=2))
        else:
            for r in results:
                mark = "ok  " if r["ok"] else "FAIL"
                typer.echo(f"{mark} {r['name']:<24} {r['detail']}")
                for sub, text in r.get("checks", {}).items():
                    typer.echo(f"       {sub}: {text}")
        raise typer.Exit(0 if healthy else 1)


async def _run_checks(settings, pm, budget: float) -> list[dict]:
    import trio

    from ctid.connector import Health
    from ctid.directory import StaticDirectory
    from ctid.errors import CtidError
    from ctid.services import Services
    from ctid.store import Store
    from ctid.store.deadletters import count_dead_letters
    from ctid.supervise import describe

    core = settings.core
    results: list[dict] = []
    store = Store(core.database.url, pool_size=1, threads=1, migrate=False)

    async def run(name: str, make_health) -> None:
        health: Health
        with trio.move_on_after(budget) as scope:
            try:
                health = await make_health()
            except CtidError as exc:
                health = Health(ok=False, detail=str(exc))
            except Exception as exc:  # a plugin's health() must not crash the command
                health = Health(ok=False, detail=describe(exc))
        if scope.cancelled_caught:
            health = Health(ok=False, detail=f"no answer within {budget:g} s")
        results.append({"name": name, **health.to_json()})

    async def db_health() -> Health:
        await store.open()
        try:
            await store.ping()
            stats = await store.outbox_stats()
            try:
                letters = str(await store._read(lambda conn: conn.execute(count_dead_letters()).one()[0]))
            except CtidError:
                letters = "unknown (run ctid db upgrade)"
        finally:
            await store.aclose()
        outbox = " ".join(f"{key}={stats[key]}" for key in ("pending", "due", "dead"))
        return Health(ok=True, detail=_redact_url(core.database.url),
                      checks={"outbox": outbox, "dead letters": letters})

    await run("database", db_health)
    services = Services(directory=StaticDirectory(core.agents), public_url=core.server.url(),
                        data_dir=core.data_dir, default_region=core.phone.default_region,
                        storage_factory=None)
    if settings.crm is not None:
        crm = pm.crm_classes()[settings.crm.plugin](settings.crm, services)
        try:
            await run(f"crm ({settings.crm.plugin})", crm.health)
        finally:
            await _close(crm)
    classes = pm.connector_classes()
    for name, cfg in settings.connectors.items():
        if not cfg.enabled:
            continue
        connector = classes[cfg.plugin](name, cfg, services)
        try:
            await run(f"connector {name} ({cfg.plugin})", connector.health)
        finally:
            await _close(connector)
    running = await _running_daemon(core.server, budget)
    if running is not None:
        results.append(running)
    return results


async def _close(plugin_object) -> None:
    """A connector's or CRM adapter's ``aclose``: plugin code, whose failure must not end the check."""
    import logging

    try:
        await plugin_object.aclose()
    except Exception as exc:
        logging.getLogger("ctid.plugins").warning("%s failed to close: %s", type(plugin_object).__name__, exc)


async def _running_daemon(server, budget: float) -> dict | None:
    """The plugins a ``ctid serve`` listening at ``server.listen`` reports failing (``/readyz``):
    red with each failure named. None when nothing answers there (ctid is not running here)."""
    import httpx

    host = server.host if server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    url = f"http://{host}:{server.port}/readyz" if ":" not in host else f"http://[{host}]:{server.port}/readyz"
    try:
        async with httpx.AsyncClient(timeout=min(budget, 3.0)) as client:
            answer = (await client.get(url)).json()
    except (httpx.HTTPError, ValueError):
        return None
    plugins = answer.get("plugins") if isinstance(answer, dict) else None
    if not isinstance(plugins, dict):
        return None
    checks = {}
    for plugin, state in sorted(plugins.items()):
        for failure in state.get("failures", ()):
            checks[f"{plugin} {failure.get('where')}"] = f"{failure.get('error')} (x{failure.get('count')})"
    detail = "plugins failing: " + ", ".join(sorted(plugins)) if plugins else "every plugin healthy"
    return {"name": f"running ctid ({url.rsplit('/', 1)[0]})", "ok": not plugins, "detail": detail,
            "checks": checks}


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"
