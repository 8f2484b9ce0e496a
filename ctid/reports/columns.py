"""The report columns of a ``calls`` row, derived when the call is written (local date and hour in
the configured time zone, campaign, UTM, cost, rating, ...), so reports group and filter by plain
indexed columns on every database (docs/reports.md, "Stored at write time")."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ctid.model import Call, Outcome

#: Names of the columns this module fills (the schema declares them on ``calls``).
REPORT_COLUMNS = (
    "local_date", "local_hour", "local_minute", "local_weekday", "started_epoch", "ended_epoch",
    "answered_by", "transfers", "campaign", "channel", "utm_source", "utm_medium", "utm_campaign",
    "cost", "cost_currency", "cost_source", "rating", "new_contact",
)

_TEXT_LIMITS = {"campaign": 200, "channel": 100, "utm_source": 200, "utm_medium": 200, "utm_campaign": 200}


@dataclass(frozen=True)
class Tariff:
    """A tariff rule (``reports.tariffs``); see :class:`ctid.config.models.TariffRule`."""

    per_minute: float
    direction: str = "any"
    prefixes: tuple[str, ...] = ()
    calls: tuple[str, ...] = ("outbound",)
    increment_s: int = 60
    first_block_s: int = 0
    free_below_s: float = 0
    connect_fee: float = 0

    def price(self, talk_seconds: float) -> float:
        """``billed = 0 if talk < free_below else max(first_block, ceil(talk / increment) * increment)``;
        ``cost = billed / 60 * per_minute + connect_fee`` (nothing at all when nothing is billed)."""
        if talk_seconds <= 0 or talk_seconds < self.free_below_s:
            return 0.0
        billed = max(self.first_block_s, math.ceil(talk_seconds / self.increment_s) * self.increment_s)
        return round(billed / 60 * self.per_minute + self.connect_fee, 4)


def direction_of(number: str | None, region: str = "RU") -> str:
    """mobile | tollfree | international | local, from libphonenumber's metadata."""
    import phonenumbers

    if not number:
        return "local"
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return "local"
    if phonenumbers.region_code_for_number(parsed) not in (region, None) and \
            parsed.country_code != phonenumbers.country_code_for_region(region):
        return "international"
    kind = phonenumbers.number_type(parsed)
    if kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return "mobile"
    if kind == phonenumbers.PhoneNumberType.TOLL_FREE:
        return "tollfree"
    return "local"


@dataclass(frozen=True)
class ReportColumns:
    """What the derivation depends on: change any of it and stored rows are re-derived
    (:attr:`fingerprint`, checked when ``ctid serve`` opens the store)."""

    timezone: str = "UTC"
    currency: str = "RUB"
    region: str = "RU"
    campaigns: dict[str, str] = field(default_factory=dict)  # our number -> campaign name
    tariffs: tuple[Tariff, ...] = ()

    @classmethod
    def from_config(cls, reports: Any, region: str = "RU") -> ReportColumns:
        from ctid.phone import normalize

        numbers: dict[str, str] = {}
        for campaign in reports.campaigns:
            for number in campaign.numbers:
                numbers[normalize(number, region) or number] = campaign.name
        tariffs = tuple(
            Tariff(per_minute=t.per_minute, direction=t.direction, prefixes=tuple(t.prefixes), calls=tuple(t.calls),
                   increment_s=t.increment_s, first_block_s=t.first_block_s, free_below_s=t.free_below_s,
                   connect_fee=t.connect_fee)
            for t in reports.tariffs
        )
        return cls(timezone=reports.timezone, currency=reports.currency, region=region, campaigns=numbers,
                   tariffs=tariffs)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def fingerprint(self) -> str:
        data = json.dumps([self.timezone, self.currency, self.region, sorted(self.campaigns.items()),
                           [t.__dict__ for t in self.tariffs]], sort_keys=True, default=str)
        return hashlib.sha256(data.encode()).hexdigest()[:16]

    def tariff_for(self, call: Call) -> Tariff | None:
        number = call.remote_number or ""
        candidates = [t for t in self.tariffs if call.direction.value in t.calls]
        by_prefix = [(len(p), t) for t in candidates for p in t.prefixes if number.startswith(p)]
        if by_prefix:
            return max(by_prefix, key=lambda item: item[0])[1]
        kind = direction_of(number, self.region) if candidates else "local"
        for tariff in candidates:
            if not tariff.prefixes and tariff.direction in (kind, "any"):
                return tariff
        return None

    def values(self, call: Call) -> dict[str, Any]:
        """The report columns of ``call``'s row."""
        facts: dict[str, Any] = getattr(call, "facts", None) or {}
        started = call.started_at or call.answered_at or call.ended_at
        local = started.astimezone(self.zone) if started is not None else None
        answered = call.outcome is Outcome.ANSWERED or (call.outcome is None and call.answered_at is not None)
        row: dict[str, Any] = {
            "local_date": local.date().isoformat() if local else None,
            "local_hour": local.hour if local else None,
            "local_minute": local.hour * 60 + local.minute if local else None,
            "local_weekday": local.isoweekday() if local else None,
            "started_epoch": started.timestamp() if started else None,
            "ended_epoch": call.ended_at.timestamp() if call.ended_at else None,
            "answered_by": (call.agents[0] if call.agents else call.agent) if answered else None,
            "transfers": max(len(call.agents) - 1, 0) if call.agents else (1 if call.transferred_from else 0),
        }
        campaign = facts.get("campaign") or facts.get("utm_campaign") or self.campaigns.get(call.line_number or "")
        row["campaign"] = campaign
        for name in ("channel", "utm_source", "utm_medium", "utm_campaign"):
            row[name] = facts.get(name)
        for name, limit in _TEXT_LIMITS.items():
            if isinstance(row[name], str):
                row[name] = row[name][:limit]
            elif row[name] is not None:
                row[name] = str(row[name])[:limit]
        cost = facts.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
            row.update(cost=float(cost), cost_currency=(facts.get("currency") or self.currency)[:3], cost_source="pbx")
        else:
            tariff = self.tariff_for(call) if call.state.value == "ended" else None
            if tariff is not None:
                row.update(cost=tariff.price(call.talk_seconds or 0.0), cost_currency=self.currency,
                           cost_source="tariff")
            else:
                row.update(cost=None, cost_currency=None, cost_source=None)
        rating = facts.get("rating")
        row["rating"] = float(rating) if isinstance(rating, int | float) and not isinstance(rating, bool) \
            and math.isfinite(rating) else None
        first = facts.get("first_call")
        row["new_contact"] = first if isinstance(first, bool) else None
        return row


#: The derivation used when nothing was configured (UTC, no tariffs, no number pools).
DEFAULT = ReportColumns()


def epoch_to_utc(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def rows_with_columns(calls: Iterable[Call], columns: ReportColumns) -> list[dict[str, Any]]:
    return [columns.values(call) for call in calls]
