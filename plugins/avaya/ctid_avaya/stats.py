"""Counters of one connector instance's sockets, for health and Prometheus.

``ctid_avaya_wire_errors_total{connector,stream,reason}`` counts bad bytes and broken links
(``stream`` = devlink3 / smdr), ``ctid_avaya_records_total{connector,stream}`` what was read. One
collector per metrics registry (``Services.metrics_registry``, the one the daemon serves at
``/metrics``) reports every live connector instance that registry was given to.
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Stats:
    connector: str
    registry: Any = None  # the prometheus_client registry to report in (None: counted, not exported)
    errors: Counter = field(default_factory=Counter)  # (stream, reason) -> count
    records: Counter = field(default_factory=Counter)  # stream -> count

    def __post_init__(self) -> None:
        if self.registry is not None:
            _collector_for(self.registry).live.add(self)

    def error(self, stream: str, reason: str, message: str, *args) -> None:
        """Log one line (no traceback: bad bytes are the peer's fault, not ours) and count it."""
        self.errors[(stream, reason)] += 1
        log.warning("%s: %s: " + message, self.connector, stream, *args)

    def error_count(self, stream: str | None = None) -> int:
        return sum(n for (s, _r), n in self.errors.items() if stream in (None, s))


class _Collector:
    def __init__(self) -> None:
        self.live: weakref.WeakSet[Stats] = weakref.WeakSet()

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        errors = CounterMetricFamily("ctid_avaya_wire_errors", "Bad bytes and broken links on IP Office sockets",
                                     labels=["connector", "stream", "reason"])
        records = CounterMetricFamily("ctid_avaya_records", "DevLink3 and SMDR records read",
                                      labels=["connector", "stream"])
        for stats in list(self.live):
            for (stream, reason), count in stats.errors.items():
                errors.add_metric([stats.connector, stream, reason], count)
            for stream, count in stats.records.items():
                records.add_metric([stats.connector, stream], count)
        yield errors
        yield records


_COLLECTORS: weakref.WeakKeyDictionary[Any, _Collector] = weakref.WeakKeyDictionary()


def _collector_for(registry: Any) -> _Collector:
    collector = _COLLECTORS.get(registry)
    if collector is None:
        collector = _COLLECTORS[registry] = _Collector()
        registry.register(collector)
    return collector
