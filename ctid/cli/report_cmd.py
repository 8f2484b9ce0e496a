"""``ctid report NAME``: a report over a period as a terminal table, CSV, XLSX, JSON or HTML."""

from __future__ import annotations

from pathlib import Path

import typer

_HELP = """Run a report over local dates FROM .. TO (inclusive, reports.timezone).

Reports: summary, load, queue, by-group, by-hour, by-weekday, answer-rate, service-level, abandon,
agents, missed, campaigns, cost, funnel (docs/reports.md). Exit 2 on bad parameters."""


def register(app: typer.Typer) -> None:
    @app.command(help=_HELP)
    def report(
        name: str = typer.Argument(..., help="Report name (see above)."),
        config: Path = typer.Option(..., "--config", "-c", envvar="CTID_CONFIG", help="Configuration file."),
        date_from: str = typer.Option(None, "--from", help="First local date, YYYY-MM-DD (default: today)."),
        date_to: str = typer.Option(None, "--to", help="Last local date, YYYY-MM-DD (default: --from)."),
        group_by: str = typer.Option(None, "--group-by", help="Grouping key (each report lists its own)."),
        agent: str = typer.Option(None, "--agent", help="Only calls of this agent id."),
        group: str = typer.Option(None, "--group", help="Only calls of this group."),
        fmt: str = typer.Option("table", "--format", help="table | csv | xlsx | json | html"),
        out: Path = typer.Option(None, "--out", help="Write to this file (xlsx needs it unless stdout is a file)."),
        lang: str = typer.Option("en", "--lang", help="Labels: en | ru."),
    ) -> None:
        import sys

        import trio

        from ctid.cli import fail
        from ctid.errors import CtidError, RequestError

        try:
            body = trio.run(_run, config, name, fmt, dict(date_from=date_from, date_to=date_to, group_by=group_by,
                                                            agent=agent, group=group, lang=lang))
            if out is not None:
                try:
                    out.write_bytes(body)
                except OSError as exc:
                    raise RequestError(f"cannot write {out}: {exc.strerror or exc}", error_id="bad_out") from None
            elif fmt == "xlsx" and sys.stdout.isatty():
                raise RequestError("--format xlsx needs --out FILE (or a redirected stdout)", error_id="bad_out")
            else:
                sys.stdout.buffer.write(body)
                sys.stdout.flush()
        except CtidError as exc:
            raise fail(exc) from None


async def _run(config: Path, name: str, fmt: str, raw: dict) -> bytes:
    from ctid.config.loader import load_config
    from ctid.plugins import get_plugin_manager
    from ctid.reports.params import check_format, parse
    from ctid.reports.service import context_for, produce
    from ctid.store import Store

    check_format(fmt)  # parameters first: a bad one is reported without touching the database
    pm = get_plugin_manager()
    settings = load_config(config, pm)
    parse(name, max_days=settings.core.reports.max_days, **raw)
    store = Store(settings.core.database.url, pool_size=1, threads=1, migrate=False)
    await store.open()
    try:
        ctx = context_for(settings, store.engine, _crm(settings, pm))
        body, _, _ = await produce(ctx, name, fmt, **raw)
        return body
    finally:
        await store.aclose()


def _crm(settings, pm):
    """The configured CRM adapter, for the funnel and campaign figures (None when unusable)."""
    if settings.core.crm is None:
        return None
    try:
        from ctid.daemon import Daemon

        return Daemon(settings, pm).crm
    except Exception:  # the report runs without CRM figures and says so
        return None
