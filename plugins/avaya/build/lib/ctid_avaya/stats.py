"""Counters of one connector instance's sockets, for health and Prometheus.

``ctid_avaya_wire_errors_total{connector,stream,reason}`` counts bad bytes and broken links
(``stream`` = devlink3 / smdr), ``ctid_avaya_records_total{connector,stream}`` what was read. The
collector is registered once in prometheus_client's process-wide registry [the daemon's own
``/metrics`` registry is not reachable from a plugin today; see the README].
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_LIVE: weakref.WeakSet[Stats] = weakref.WeakSet()


@dataclass(eq=False)
class Stats:
    connector: str
    errors: Counter = field(default_factory=Counter)  # (stream, reason) -> count
    records: Counter = field(default_factory=Counter)  # stream -> count

    def __post_init__(self) -> None:
        _LIVE.add(self)
        _register_once()

    def error(self, stream: str, reason: str, message: str, *args) -> None:
        """Log one line (no traceback: bad bytes are the peer's fault, not ours) and count it."""
        self.errors[(stream, reason)] += 1
        log.warning("%s: %s: " + message, self.connector, stream, *args)

    def error_count(self, stream: str | None = None) -> int:
        return sum(n for (s, _r), n in self.errors.items() if stream in (None, s))


class _Collector:
    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        errors = CounterMetricFamily("ctid_avaya_wire_errors", "Bad bytes and broken links on IP Office sockets",
                                     labels=["connector", "stream", "reason"])
        records = CounterMetricFamily("ctid_avaya_records", "DevLink3 and SMDR records read",
                                      labels=["connector", "stream"])
        for stats in list(_LIVE):
            for (stream, reason), count in stats.errors.items():
                errors.add_metric([stats.connector, stream, reason], count)
            for stream, count in stats.records.items():
                records.add_metric([stats.connector, stream], count)
        yield errors
        yield records


_registered = False


def _register_once() -> None:
    global _registered
    if _registered:
        return
    from prometheus_client import REGISTRY

    REGISTRY.register(_Collector())
    _registered = True
