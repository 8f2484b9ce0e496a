"""The SQL schema of ctid's store (SQLAlchemy Core), portable across SQLite, PostgreSQL and MS SQL Server.

Portability rules followed here:

- every key or indexed text column is a bounded ``Unicode(n)`` (MS SQL cannot index ``NVARCHAR(max)``
  and limits index keys to 900/1700 bytes; ``Unicode`` is ``NVARCHAR`` there so Cyrillic names survive);
- JSON documents are stored as text (:class:`JSONText`), read and written identically everywhere;
- timestamps are :class:`UTCDateTime`: timezone-aware in Python, stored as UTC (``timestamptz`` on
  PostgreSQL, ``DATETIMEOFFSET`` on MS SQL, ISO text on SQLite), always read back as aware UTC;
- constraint and index names follow one naming convention, so migrations can address them by name.

The Alembic migrations in ``ctid/store/migrations`` must produce exactly this metadata
(``tests/test_migrations.py`` compares them).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    TypeDecorator,
    Unicode,
    UnicodeText,
    UniqueConstraint,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: Autoincrementing surrogate key: BIGINT on servers, INTEGER on SQLite (where only
#: ``INTEGER PRIMARY KEY`` is the rowid alias that autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """A timezone-aware datetime stored as UTC; naive values are refused (they are always a bug)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":  # stored as text: one fixed offset keeps text order == time order
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: orjson options that give what ``json.dumps(..., default=str)`` gives: datetimes and dataclasses
#: through ``default=str``, non-string keys as strings (a plain Enum, never stored, gives its value).
_ORJSON_AS_STDLIB = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


class JSONText(TypeDecorator):
    """A JSON document kept as text: ``json.dumps`` on the way in, ``json.loads`` on the way out."""

    impl = UnicodeText
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        try:  # orjson: a tenth of the stdlib encoder's time on the writer thread, same text
            return orjson.dumps(value, default=str, option=_ORJSON_AS_STDLIB).decode()
        except (orjson.JSONEncodeError, TypeError):  # e.g. integers beyond 64 bits
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        if value is None:
            return None
        return json.loads(value)


def _ts(name: str, *, nullable: bool = True, index: bool = False) -> Column:
    return Column(name, UTCDateTime(), nullable=nullable, index=index)


#: Every accepted PBX event. ``(connector, key)`` is the idempotency key: a redelivered event is ignored.
events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("connector", Unicode(100), nullable=False),
    Column("key", Unicode(200), nullable=False),
    Column("call_id", Unicode(36), nullable=False, index=True),
    Column("kind", Unicode(20), nullable=False),
    _ts("at"),
    _ts("received_at", nullable=False),
    Column("payload", JSONText(), nullable=False),  # CallEvent.to_json()
    UniqueConstraint("connector", "key"),
)

#: The derived state of every call (latest wins); ``data`` is the public Call JSON.
calls = Table(
    "calls",
    metadata,
    Column("id", Unicode(36), primary_key=True),
    Column("connector", Unicode(100), nullable=False),
    Column("pbx_call_id", Unicode(200), nullable=False),
    Column("direction", Unicode(20), nullable=False),
    Column("state", Unicode(20), nullable=False),
    Column("outcome", Unicode(20), nullable=True),
    Column("remote_number", Unicode(64), nullable=True, index=True),
    Column("line_number", Unicode(64), nullable=True),
    Column("agent", Unicode(100), nullable=True, index=True),
    Column("group_name", Unicode(100), nullable=True),
    _ts("started_at", index=True),
    _ts("answered_at"),
    _ts("ended_at"),
    Column("wait_seconds", Float(), nullable=True),
    Column("talk_seconds", Float(), nullable=True),
    Column("hold_seconds", Float(), nullable=True),
    _ts("updated_at", nullable=False, index=True),
    Column("data", JSONText(), nullable=False),
    # Report columns (ctid.reports.columns), derived when the row is written: local date / hour /
    # minute of the day / ISO weekday of started_at in ``reports.timezone``, times as epoch seconds
    # (portable differences), who answered, the PBX's facts and the cost.
    Column("local_date", Unicode(10), nullable=True),
    Column("local_hour", Integer(), nullable=True),
    Column("local_minute", Integer(), nullable=True),
    Column("local_weekday", Integer(), nullable=True),
    Column("started_epoch", Float(), nullable=True),
    Column("ended_epoch", Float(), nullable=True),
    Column("answered_by", Unicode(100), nullable=True),
    Column("transfers", Integer(), nullable=True),
    Column("campaign", Unicode(200), nullable=True),
    Column("channel", Unicode(100), nullable=True),
    Column("utm_source", Unicode(200), nullable=True),
    Column("utm_medium", Unicode(200), nullable=True),
    Column("utm_campaign", Unicode(200), nullable=True),
    Column("cost", Float(), nullable=True),
    Column("cost_currency", Unicode(3), nullable=True),
    Column("cost_source", Unicode(10), nullable=True),
    Column("rating", Float(), nullable=True),
    Column("new_contact", Boolean(create_constraint=False), nullable=True),
    # every agent entitled to see the call, "|a|b|": an agent's /api/calls filters on it (ctid.store.participants)
    Column("participants", UnicodeText(), nullable=True),
    UniqueConstraint("connector", "pbx_call_id"),
    # Covering indexes of the reports (docs/reports.md, "Indexes"): a period's calls by day, the
    # follow-up of a missed call (the next answered call with the same number), an agent's calls.
    # ix_calls_report_day covers every column of the KPI aggregates (ctid.reports.queries.kpi_columns):
    # a report reads the index alone, never the rows with their JSON (bench/reports.py).
    Index("ix_calls_report_day", "local_date", "state", "direction", "outcome", "group_name", "answered_by", "agent",
          "wait_seconds", "talk_seconds", "hold_seconds", "transfers", "rating", "cost", "local_hour",
          "local_weekday", "campaign"),
    Index("ix_calls_followup", "remote_number", "started_epoch", "outcome", "direction", "answered_by"),
    Index("ix_calls_agent_day", "answered_by", "local_date"),
)

#: Daily rollup of the report aggregates (ctid.reports.rollup): per closed local day, one row per
#: hour (dims ``total`` and ``group``) or per day (``local_hour`` -1: dims ``agent`` and ``campaign``)
#: with the sums of ctid.reports.queries.kpi_columns. Built lazily by the first report that needs a
#: day, rebuilt when calls of that day change or the KPI settings change. ``dim_value`` '' = none.
report_rollup = Table(
    "report_rollup",
    metadata,
    Column("local_date", Unicode(10), nullable=False),
    Column("dim", Unicode(10), nullable=False),
    Column("dim_value", Unicode(200), nullable=False),
    Column("local_hour", Integer(), nullable=False),
    *(Column(name, Integer(), nullable=False) for name in (
        "offered_all", "answered", "short_abandons", "abandoned", "answered_in_sl", "abandoned_in_sl",
        "short_calls", "target", "transfers", "outbound", "outbound_connected", "rating_n", "new_contacts")),
    *(Column(name, Float(), nullable=True) for name in (
        "abandon_wait_sum", "wait_sum", "wait_max", "talk_sum", "hold_sum", "outbound_talk", "rating_sum",
        "cost_sum")),
    PrimaryKeyConstraint("local_date", "dim", "dim_value", "local_hour"),
)

#: Answered inbound calls per whole second of wait, per closed local day and group / hour (dim
#: ``group``: ``dim_value`` the group; ``hour``: the local hour as text; ``total``: ''), for the
#: wait percentiles of the queue report (ctid.reports.rollup).
report_wait_rollup = Table(
    "report_wait_rollup",
    metadata,
    Column("local_date", Unicode(10), nullable=False),
    Column("dim", Unicode(10), nullable=False),
    Column("dim_value", Unicode(200), nullable=False),
    Column("wait_s", Integer(), nullable=False),
    Column("n", Integer(), nullable=False),
    PrimaryKeyConstraint("local_date", "dim", "dim_value", "wait_s"),
)

#: Each missed inbound call of a closed local day with its follow-up (the first answered call with the
#: same number after it): the rows of ctid.reports.queries.missed_followups, kept per day (rebuilt when
#: a call with that number changes) for the missed-calls and agents reports.
report_missed = Table(
    "report_missed",
    metadata,
    Column("local_date", Unicode(10), nullable=False),
    Column("id", Unicode(36), nullable=False),
    Column("group_name", Unicode(100), nullable=True),
    Column("agent", Unicode(100), nullable=True),
    Column("wait_seconds", Float(), nullable=True),
    Column("started_epoch", Float(), nullable=True),
    Column("ended_epoch", Float(), nullable=True),
    Column("local_minute", Integer(), nullable=True),
    Column("local_weekday", Integer(), nullable=True),
    Column("remote_number", Unicode(64), nullable=True),
    Column("next_epoch", Float(), nullable=True),
    Column("next_direction", Unicode(20), nullable=True),
    Column("next_agent", Unicode(100), nullable=True),
    Column("next_dialer", Unicode(100), nullable=True),
    PrimaryKeyConstraint("local_date", "id"),
)

#: Calls, priced calls, cost and talk per closed local day, cost key (``dim``: direction, agent,
#: group, campaign, cost_source) and currency, for the cost report (ctid.reports.rollup).
report_cost_rollup = Table(
    "report_cost_rollup",
    metadata,
    Column("local_date", Unicode(10), nullable=False),
    Column("dim", Unicode(12), nullable=False),
    Column("dim_value", Unicode(200), nullable=False),
    Column("currency", Unicode(3), nullable=False),
    Column("calls", Integer(), nullable=False),
    Column("priced", Integer(), nullable=False),
    Column("cost", Float(), nullable=True),
    Column("talk", Float(), nullable=True),
    PrimaryKeyConstraint("local_date", "dim", "dim_value", "currency"),
)

#: Seconds per closed local day, agent and presence status (available / away / dnd), for the load
#: report (ctid.reports.presence).
report_presence = Table(
    "report_presence",
    metadata,
    Column("local_date", Unicode(10), nullable=False),
    Column("agent_id", Unicode(100), nullable=False),
    Column("status", Unicode(20), nullable=False),
    Column("seconds", Float(), nullable=False),
    PrimaryKeyConstraint("local_date", "agent_id", "status"),
)

#: The local days ``report_rollup`` holds, and when each was built.
report_rollup_days = Table(
    "report_rollup_days",
    metadata,
    Column("local_date", Unicode(10), primary_key=True),
    _ts("built_at", nullable=False),
)

#: Each agent's status (available / away / dnd / offline) and since when; who set it (``user``,
#: ``launcher``, ``lease``; NULL before migration 0002 = ``user``) and the launcher's lease, if held.
agents_presence = Table(
    "agents_presence",
    metadata,
    Column("agent_id", Unicode(100), primary_key=True),
    Column("status", Unicode(20), nullable=False),
    _ts("since", nullable=False),
    Column("source", Unicode(20), nullable=True),
    _ts("lease_until"),
)

#: Every status change, for reports (time in status).
presence_history = Table(
    "presence_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("agent_id", Unicode(100), nullable=False),
    Column("status", Unicode(20), nullable=False),
    _ts("at", nullable=False),
    Column("source", Unicode(20), nullable=True),  # who set it (agents_presence.source)
    Index(None, "agent_id", "at"),
)

#: Callback tasks; ``data`` is the public Task JSON, ``crm_ref`` the CRM record once created.
tasks = Table(
    "tasks",
    metadata,
    Column("id", Unicode(36), primary_key=True),
    Column("number", Unicode(64), nullable=False, index=True),
    Column("status", Unicode(20), nullable=False, index=True),
    Column("owner", Unicode(100), nullable=True, index=True),
    Column("data", JSONText(), nullable=False),
    _ts("updated_at", nullable=False, index=True),
    Column("crm_ref", Unicode(200), nullable=True),
)

#: Durable queue of CRM jobs. ``next_attempt_at`` is NULL once a job is done or given up,
#: so the due-jobs index only holds live work. ``dedupe_key`` is NOT NULL (MS SQL allows one
#: NULL per unique index): jobs enqueued without one get a generated unique value.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", Unicode(40), nullable=False),
    Column("ref", Unicode(100), nullable=False, index=True),
    Column("payload", JSONText(), nullable=False),
    _ts("created_at", nullable=False),
    Column("attempts", Integer(), nullable=False, default=0),
    _ts("next_attempt_at", index=True),
    _ts("done_at"),
    Column("last_error", UnicodeText(), nullable=True),
    Column("dedupe_key", Unicode(200), nullable=False),
    UniqueConstraint("dedupe_key"),
)

#: Backs :class:`ctid.services.PluginStorage`: a small key-value store per plugin and record kind.
plugin_records = Table(
    "plugin_records",
    metadata,
    Column("plugin", Unicode(64), nullable=False),
    Column("kind", Unicode(64), nullable=False),
    Column("key", Unicode(200), nullable=False),
    Column("data", JSONText(), nullable=False),
    _ts("updated_at", nullable=False),
    PrimaryKeyConstraint("plugin", "kind", "key"),
)

#: Installation-wide values, e.g. the generated token-signing secret shared by all instances.
settings = Table(
    "settings",
    metadata,
    Column("key", Unicode(100), primary_key=True),
    Column("value", UnicodeText(), nullable=False),
)

#: Webhooks whose connector raised (ctid/store/deadletters.py): the raw request, kept for an admin to
#: re-submit or delete through ``/api/dead-letters``.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("connector", Unicode(100), nullable=False, index=True),
    _ts("received_at", nullable=False),
    Column("error_id", Unicode(100), nullable=False),
    Column("error", UnicodeText(), nullable=False),
    Column("method", Unicode(10), nullable=False),
    Column("subpath", Unicode(1000), nullable=True),
    Column("remote_addr", Unicode(100), nullable=True),
    Column("headers", JSONText(), nullable=False),
    Column("query", JSONText(), nullable=False),
    Column("body", LargeBinary(), nullable=False),
)
