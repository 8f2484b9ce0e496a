"""Exceptions raised by plugin code: logged once with the traceback, counted, kept for health.

"Plugins fail alone": ctid catches what a plugin's code raises where it calls it (observer hooks,
registration hooks, plugin HTTP routes, and through :mod:`ctid.supervise` connectors and CRM
adapters) and hands it to :meth:`PluginErrors.record`, which logs it with the traceback and the
plugin's name (the same error again in the same place: one debug line), counts it in the Prometheus counter
``ctid_plugin_errors_total{plugin,where}`` (:class:`ctid.metrics.Metrics`) and keeps the last error
per plugin and place for the health answers (``/readyz``'s ``plugin_errors``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ctid.model import iso, utcnow

log = logging.getLogger("ctid.plugins")


@dataclass(slots=True)
class PluginErrorStat:
    """How often one plugin failed in one place, and its last error."""

    plugin: str
    where: str
    count: int
    last_error: str
    last_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "where": self.where, "count": self.count,
                "last_error": self.last_error, "last_at": iso(self.last_at)}


class PluginErrors:
    """The record of plugin failures of one process (one per plugin manager)."""

    def __init__(self) -> None:
        self.stats: dict[tuple[str, str], PluginErrorStat] = {}
        #: ``ctid_plugin_errors_total``; the daemon binds its own (tests without one count here only).
        self.counter: Any = None

    def record(self, plugin: str, where: str, exc: BaseException) -> None:
        """Log ``exc`` (with its traceback) as a failure of ``plugin`` in ``where``; count it."""
        text = " ".join(str(exc).split())
        error = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        stat = self.stats.get((plugin, where))
        if stat is not None and stat.last_error == error:  # the same failure again: no flood of tracebacks
            log.debug("plugin %s failed again in %s: %s", plugin, where, error)
        else:
            log.error("plugin %s failed in %s: %s", plugin, where, error, exc_info=exc)
        if stat is None:
            stat = self.stats[plugin, where] = PluginErrorStat(plugin, where, 0, error, utcnow())
        stat.count += 1
        stat.last_error = error
        stat.last_at = utcnow()
        if self.counter is not None:
            self.counter.labels(plugin=plugin, where=where).inc()

    def count(self, plugin: str | None = None, where: str | None = None) -> int:
        return sum(stat.count for stat in self.stats.values()
                   if plugin in (None, stat.plugin) and where in (None, stat.where))

    def to_json(self) -> list[dict[str, Any]]:
        return [stat.to_json() for stat in sorted(self.stats.values(), key=lambda s: (s.plugin, s.where))]
