"""KPI formulas shared by the reports and the live KPIs: rates, service level by abandon treatment,
averages and percentiles from a per-second histogram. Pure functions; docs/reports.md states each."""

from __future__ import annotations

from collections.abc import Iterable


def ratio(part: float | None, whole: float | None) -> float | None:
    """``part / whole``; ``None`` when the denominator is zero or unknown (shown as "—")."""
    if part is None or not whole:
        return None
    return part / whole


def mean(total: float | None, count: int | None) -> float | None:
    return ratio(total or 0.0, count) if count else None


def service_level(answered_in_sl: int, abandoned_in_sl: int, offered: int, abandoned: int,
                  treatment: str) -> float | None:
    """Share of offered calls (short abandons already left out) answered within the threshold.

    - ``ignore``: answered in SL / (offered − abandoned)  (abandons do not count at all)
    - ``negative``: answered in SL / offered  (every abandon counts against)
    - ``positive``: (answered in SL + abandoned in SL) / offered  (abandons within SL count as met)
    """
    if treatment == "ignore":
        return ratio(answered_in_sl, offered - abandoned)
    if treatment == "positive":
        return ratio(answered_in_sl + abandoned_in_sl, offered)
    return ratio(answered_in_sl, offered)


def percentile(histogram: Iterable[tuple[float, int]], p: float) -> float | None:
    """Nearest-rank percentile ``p`` (0..100) of values given as ``(value, count)`` pairs."""
    pairs = sorted((value, count) for value, count in histogram if value is not None and count)
    total = sum(count for _, count in pairs)
    if not total:
        return None
    rank = max(1, -(-total * p // 100))  # ceil(total * p / 100)
    seen = 0
    for value, count in pairs:
        seen += count
        if seen >= rank:
            return value
    return pairs[-1][0]
