"""Report parameters from the CLI and REST, checked once: every bad value is a RequestError with a
stable error id (``unknown_report``, ``bad_period``, ``period_too_long``, ``bad_format``,
``bad_group_by``, ``bad_filter``, ``bad_lang``) and a one-line message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ctid.errors import RequestError

FORMATS = ("table", "csv", "xlsx", "json", "html")
LANGS = ("en", "ru")
_MAX_FILTER = 100


@dataclass(frozen=True, slots=True)
class ReportParams:
    name: str
    date_from: date
    date_to: date
    group_by: str | None = None
    agent: str | None = None
    group: str | None = None
    lang: str = "en"

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1

    def to_json(self) -> dict[str, Any]:
        return {"from": self.date_from.isoformat(), "to": self.date_to.isoformat(), "group_by": self.group_by,
                "agent": self.agent, "group": self.group, "lang": self.lang}


def _date(value: Any, name: str) -> date:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"--{name} must be a date YYYY-MM-DD", error_id="bad_period")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise RequestError(f"--{name} must be a date YYYY-MM-DD, not {value.strip()[:40]!r}",
                           error_id="bad_period") from None


def _filter(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > _MAX_FILTER or not value.isprintable():
        raise RequestError(f"--{name} must be a printable name of at most {_MAX_FILTER} characters",
                           error_id="bad_filter")
    return value


def parse(name: Any, *, date_from: Any, date_to: Any, group_by: Any = None, agent: Any = None,
          group: Any = None, lang: Any = None, max_days: int = 366, today: date | None = None) -> ReportParams:
    """Check the parameters of report ``name`` against the catalogue; ``from``/``to`` default to today."""
    from ctid.reports.catalogue import CATALOGUE

    if not isinstance(name, str) or name not in CATALOGUE:
        shown = name[:40] if isinstance(name, str) else name
        raise RequestError(f"unknown report {shown!r}; reports: {', '.join(CATALOGUE)}", error_id="unknown_report")
    spec = CATALOGUE[name]
    today = today or date.today()
    start = _date(date_from, "from") if date_from not in (None, "") else today
    end = _date(date_to, "to") if date_to not in (None, "") else (start if date_from not in (None, "") else today)
    if start > end:
        raise RequestError(f"--from {start} is after --to {end}", error_id="bad_period")
    if end - start >= timedelta(days=max_days):
        raise RequestError(f"the period {start} .. {end} is longer than reports.max_days ({max_days} days)",
                           error_id="period_too_long")
    if group_by in (None, ""):
        group_by = spec.group_by[0] if spec.group_by else None
    elif group_by not in spec.group_by:
        choices = ", ".join(spec.group_by) or "none"
        shown = group_by[:40] if isinstance(group_by, str) else group_by
        raise RequestError(f"--group-by {shown!r} is not one of {choices} for report {name}",
                           error_id="bad_group_by")
    if lang in (None, ""):
        lang = "en"
    if lang not in LANGS:
        raise RequestError("--lang must be en or ru", error_id="bad_lang")
    return ReportParams(name=name, date_from=start, date_to=end, group_by=group_by, agent=_filter(agent, "agent"),
                        group=_filter(group, "group"), lang=lang)


def check_format(value: Any) -> str:
    if value not in FORMATS:
        shown = value[:40] if isinstance(value, str) else value
        raise RequestError(f"--format {shown!r} is not one of {', '.join(FORMATS)}", error_id="bad_format")
    return value
