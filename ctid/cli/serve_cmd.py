"""``ctid serve``: run the daemon until SIGTERM / SIGINT."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        config: Path = typer.Option(..., "--config", "-c", envvar="CTID_CONFIG", help="Configuration file (YAML)."),
        listen: str | None = typer.Option(None, help="Override server.listen (host:port)."),
    ) -> None:
        """Run ctid: webhooks, REST API, hub, CRM sync, until SIGTERM or Ctrl-C."""
        import logging

        import trio

        from ctid.cli import fail
        from ctid.config.loader import load_config
        from ctid.errors import CtidError
        from ctid.plugins import get_plugin_manager

        try:
            pm = get_plugin_manager()
            settings = load_config(config, pm)
            if listen:
                settings.core.server.listen = listen
                settings.core.server = type(settings.core.server).model_validate(settings.core.server.model_dump())
            pm.ensure_enabled_ok(settings)
        except CtidError as exc:
            raise fail(exc) from None
        logging.basicConfig(
            level=settings.core.log.level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        # httpx logs every request URL at INFO; PBX links can be capability URLs (secrets)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        for failure in pm.failures:
            logging.getLogger("ctid").warning("plugin %s failed to load (not used): %s", failure.name, failure.error)

        async def main() -> None:
            from ctid.daemon import Daemon, install_signal_handlers

            daemon = Daemon(settings, pm)
            async with trio.open_nursery() as nursery:
                await nursery.start(install_signal_handlers(daemon))
                await daemon.run()
                nursery.cancel_scope.cancel()

        # What is loaded by now (modules, config, the serving stack) lives as long as the process:
        # freezing it keeps the collector's full passes, which pause every screen pop, short.
        import gc

        import ctid.daemon
        import ctid.web.app  # noqa: F401

        gc.collect()
        gc.freeze()
        try:
            trio.run(main)
        except CtidError as exc:
            raise fail(exc) from None
        except BaseExceptionGroup as group:  # errors from inside the daemon's nursery
            ours = group.subgroup(CtidError)
            if ours is None:
                raise
            from ctid.daemon import _first_leaf

            raise fail(_first_leaf(ours)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
