"""``ctid serve``: run the daemon until SIGTERM / SIGINT."""

from __future__ import annotations

from pathlib import Path

import typer

#: Collector thresholds of ``ctid serve`` (CPython's default is 700, 10, 10). A webhook allocates
#: a few hundred objects, and the default young generation is collected every couple of webhooks;
#: objects of requests in flight survive it, pile into the old generation and make it reach the 25 %
#: growth that triggers a full collection again and again. Each full pass scans every call kept in
#: memory (ended calls stay two hours) and stops the event loop: with the defaults the collector took
#: 12 s of CPU during a screen-pop run and paused up to 0.4 s, with these 0.8 s and 45 ms
#: (bench/README.md, "Garbage collector").
GC_THRESHOLDS = (5000, 20, 10)


def freeze_startup_objects() -> None:
    """Move everything alive now to the collector's permanent generation, and use ctid's thresholds.

    What is built before serving (modules, configuration, the engine, the app, the listening
    server) lives as long as the process; left in the collected generations it makes every full
    collection scan it again.
    """
    import gc

    gc.set_threshold(*GC_THRESHOLDS)
    gc.collect()
    gc.freeze()


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
                async with trio.open_nursery() as serving:
                    await serving.start(daemon.run)
                    freeze_startup_objects()  # what opening the daemon built: database, app, server
                nursery.cancel_scope.cancel()

        import ctid.daemon
        import ctid.web.app  # noqa: F401

        freeze_startup_objects()  # modules, configuration
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
