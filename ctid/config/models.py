"""Pydantic models of ctid's own configuration keys (plugins bring models for their sections).

The keys documented in the README are public: external tests and users write them.
"""

from __future__ import annotations

import enum
import importlib.util
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


_LISTEN = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[^:\s]+):(?P<port>\d{1,5})$")


#: A DNS host name (letters, digits, hyphens; dots between labels). Anything else in a host (spaces,
#: quotes, ';', ',', '*') would end up as more Content-Security-Policy source expressions or directives.
_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$")
_ORIGIN_EXAMPLE = "https://contoso.crm4.dynamics.com"


def _http_url(value: str, *, origin_only: bool, csp: bool = True) -> str:
    """``value`` checked as an http(s) URL (``origin_only``: ``scheme://host[:port]``, a trailing ``/``
    allowed) whose host is a DNS name, an IPv4 address or a bracketed IPv6 address, without
    credentials; returns ``scheme://host[:port]`` lower-cased. ValueError saying why otherwise."""
    if not isinstance(value, str) or not value or any(ch.isspace() or ch in "'\";,*\\" or not ch.isprintable()
                                                      for ch in value):
        raise ValueError(f"{value!r} is not an http(s) origin such as {_ORIGIN_EXAMPLE} (no spaces, quotes, "
                         "';', ',' or '*')")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:  # a port that is not a number or out of range, a bad [IPv6]
        port, parts = -1, None
    host = (parts.hostname or "") if parts else ""
    if host.startswith("[") or ":" in host:
        try:
            ip_ok = ipaddress.ip_address(host.strip("[]")).version == 6
        except ValueError:
            ip_ok = False
    else:  # CSP's host-char is ALPHA / DIGIT / "-"; Docker-style names with '_' only where no CSP is written
        ip_ok = bool(_HOST.match(host if csp else host.replace("_", "-")))
    ok = (parts is not None and parts.scheme in ("http", "https") and ip_ok and port not in (0, -1)
          and "@" not in parts.netloc)
    if ok and origin_only:
        ok = parts.path in ("", "/") and not parts.query and not parts.fragment and "?" not in value \
            and "#" not in value
    if not ok:
        what = "an http(s) origin (scheme://host[:port], no path)" if origin_only else "an http(s) URL"
        raise ValueError(f"{value!r} is not {what} such as {_ORIGIN_EXAMPLE}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _origin(value: str) -> str:
    """``scheme://host[:port]`` of an http(s) origin; ValueError otherwise (see :func:`_http_url`)."""
    return _http_url(value, origin_only=True)


def _origin_of_url(value: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL that may have a path; ValueError otherwise."""
    return _http_url(value, origin_only=False)


#: A configured origin (written into the panel's Content-Security-Policy): errors name the list item.
Origin = Annotated[str, AfterValidator(_origin)]
#: An origin, or ``*`` (any page; panel.frame_ancestors).
OriginOrAny = Annotated[str, AfterValidator(lambda value: value if value == "*" else _origin(value))]
#: ``server.cors_origins``: compared with a browser's Origin header, never written into a policy, so a
#: Docker-style host name with ``_`` is allowed; ``*`` lets any page.
CorsOrigin = Annotated[str, AfterValidator(
    lambda value: value if value == "*" else _http_url(value, origin_only=True, csp=False))]


class ServerConfig(Strict):
    listen: str = Field(default="127.0.0.1:8080", description="host:port the HTTP server binds.")
    public_url: str | None = Field(default=None, description="URL users and PBXs reach ctid at.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest accepted request body.")
    cors_origins: list[CorsOrigin] = Field(default_factory=list, description="Origins allowed to call the API "
                                    "(scheme://host[:port]; '*' lets any page).")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        match = _LISTEN.match(value)
        if not match or not 0 < int(match["port"]) < 65536:
            raise ValueError("must be host:port, for example 127.0.0.1:8080")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number or out of range
            ok = False
        if not ok:
            raise ValueError("must be an http:// or https:// URL, for example https://ctid.example.com")
        return value

    @property
    def host(self) -> str:
        return _LISTEN.match(self.listen)["host"].strip("[]")  # type: ignore[index]

    @property
    def port(self) -> int:
        return int(_LISTEN.match(self.listen)["port"])  # type: ignore[index]

    def url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


class DatabaseConfig(Strict):
    url: str = Field(
        default="sqlite:///var/ctid.db",
        description="SQLAlchemy URL: sqlite:///file, postgresql+psycopg://..., mssql+pyodbc://...",
    )
    pool_size: int = Field(default=5, ge=1)
    commit_batch: int = Field(default=500, ge=1, description="Most events grouped in one commit.")
    threads: int = Field(default=4, ge=1, description="Worker threads for SQL.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        """The checks ctid.store.engine.normalize_url makes when ``ctid serve`` opens the database."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend, _, driver = make_url(value).drivername.partition("+")
        except (ArgumentError, ValueError):  # the URL itself is left out: it may hold a password
            raise ValueError(
                "not a database URL; use sqlite:///path/to/file.db, postgresql+psycopg://user:password@host/db "
                "or mssql+pyodbc://user:password@dsn"
            ) from None
        if backend not in _DRIVERS:
            raise ValueError(f"unsupported database {backend!r}: ctid supports sqlite, postgresql and mssql")
        if driver not in ("", *_DRIVERS[backend]):
            raise ValueError(_DRIVERS[backend][1].format(driver=driver))
        if backend in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None:
            raise ValueError("PostgreSQL needs the psycopg driver, an optional part of ctid: "
                             "pip install 'ctid[postgres]'")
        return value


#: Backend -> (the driver ctid uses, message for another driver), as ctid.store.engine.normalize_url.
_DRIVERS = {
    "sqlite": ("pysqlite", "unsupported SQLite driver {driver!r}: use sqlite:///path/to/file.db"),
    "postgresql": ("psycopg", "unsupported PostgreSQL driver {driver!r}: use postgresql+psycopg://"),
    "postgres": ("psycopg", "unsupported PostgreSQL driver {driver!r}: use postgresql+psycopg://"),
    "mssql": ("pyodbc", "unsupported MS SQL driver {driver!r}: use mssql+pyodbc://"),
}


class HubConfig(Strict):
    backplane: str = Field(default="memory", description="'memory' or a redis:// URL.")
    ping_interval: float = Field(default=15, gt=0)
    client_timeout: float = Field(default=30, gt=0)
    max_message_bytes: int = Field(default=65_536, ge=1024)

    @field_validator("backplane")
    @classmethod
    def _backplane(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be 'memory' or a redis:// URL")
        return value


class UserConfig(Strict):
    username: str = Field(min_length=1, description="The name the person signs in with (panel, `POST /api/auth/token`).")
    password_hash: SecretStr = Field(description="From `ctid auth hash-password`.")
    role: Role = Field(default=Role.AGENT, description="`agent`: own calls, presence and tasks; "
                       "`supervisor`: every call and agent, reports, the panel's Team section; `admin`: "
                       "also administration (dead letters, admin-only plugin routes).")
    agent: str | None = Field(default=None, description="Agent id this user acts as.")


class ApiKeyConfig(Strict):
    name: str = Field(min_length=1, description="Names the key's holder in logs and signed links "
                      "(subject `key:<name>`); give each key its own.")
    key: SecretStr
    role: Role = Field(default=Role.AGENT, description="What the key may do, as a user's `role`.")
    agent: str | None = Field(default=None, description="Agent id the key acts as (a launcher's key: its "
                              "agent's own presence and calls).")

    @field_validator("key")
    @classmethod
    def _key_length(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("API keys must be at least 16 characters")
        return value


class LoginThrottleConfig(Strict):
    """Soft lockout of password guessing (OWASP ASVS 2.2.1); docs/security.md explains it."""

    enabled: bool = Field(default=True, description="Throttle wrong passwords at all.")
    user_failures: int = Field(default=5, ge=1, description="Wrong passwords for one username (from any "
                               "address) before further attempts for it wait.")
    source_failures: int = Field(default=20, ge=1, description="Wrong passwords from one client address (any "
                                 "username; IPv6 by /64) before further attempts from it wait.")
    lockout_seconds: float = Field(default=30, gt=0, description="The first wait; it doubles with each "
                                   "further wrong password.")
    max_lockout_seconds: float = Field(default=900, gt=0, description="The longest wait.")
    forget_seconds: float = Field(default=3600, gt=0, description="A counter with no wrong password for this "
                                  "long starts over.")
    password_threads: int = Field(default=2, ge=1, le=64, description="Password checks (scrypt) running at "
                                  "once, in worker threads off the event loop.")
    trusted_seconds: float = Field(default=30 * 86_400, ge=0, description="An address a username signed in "
                                   "from within this long is not held by that username's wait (0: never).")


class AuthConfig(Strict):
    users: list[UserConfig] = Field(default_factory=list)
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    token_ttl: int = Field(default=43_200, ge=60, description="Seconds an access token is valid.")
    secret: SecretStr | None = Field(
        default=None,
        description="Token signing secret; when unset one is generated and kept in the database "
        "(shared by every instance using that database).",
    )
    throttle: LoginThrottleConfig = Field(default_factory=LoginThrottleConfig)
    link_ttl: int = Field(default=300, ge=10, le=86_400, description="Seconds a signed link (a recording "
                          "for the panel's player) stays valid.")


class PanelConfig(Strict):
    """Who may host the panel and where its Dynamics CIF library may come from (docs/panel.md)."""

    cif_origins: list[Origin] | None = Field(
        default=None, description="Origins the CIF library (?ucilib=) may be loaded from; default: the "
        "Dynamics organization of the crm section (none without one).")
    frame_ancestors: list[OriginOrAny] | None = Field(
        default=None, description="Origins allowed to frame the panel (Content-Security-Policy "
        "frame-ancestors); default: the CIF origins. The panel's own origin always may; '*' lets any page.")



class AgentConfig(Strict):
    name: str = Field(description="The agent's display name (panel, reports, CRM activities).")
    extension: str | None = None
    groups: list[str] = Field(default_factory=list, description="Groups (queues) the agent answers for; "
                              "a call's group picks its free agent and groups the reports.")
    pbx: dict[str, str] = Field(default_factory=dict, description="connector instance -> PBX login")
    crm_user: str | None = None

    @field_validator("extension", mode="before")
    @classmethod
    def _ext_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("pbx", mode="before")
    @classmethod
    def _pbx_str(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
        return value


class PhoneConfig(Strict):
    default_region: str = Field(default="RU", min_length=2, max_length=2, description="ISO 3166 region.")


class CallbackConfig(Strict):
    enabled: bool = True
    directions: list[str] = Field(default_factory=lambda: ["inbound"])


class TariffRule(Strict):
    """One line of the tariff table: what a call to numbers of a direction / prefix costs."""

    direction: str = Field(default="any", pattern="^(any|mobile|local|international|tollfree)$",
                           description="Which numbers the rule prices (ctid.reports.columns.direction_of): "
                                       "any, mobile, local (domestic fixed lines), international, tollfree. "
                                       "Price one city's fixed lines apart with prefixes, e.g. '+7495'.")
    prefixes: list[str] = Field(default_factory=list, description="E.164 prefixes, e.g. '+7495'; longest wins.")
    calls: list[str] = Field(default_factory=lambda: ["outbound"],
                             description="Directions of calls priced by this rule (inbound, outbound).")
    per_minute: float = Field(ge=0, description="Price of one billed minute.")
    increment_s: int = Field(default=60, ge=1, description="Billing increment in seconds.")
    first_block_s: int = Field(default=0, ge=0, description="Seconds billed at least once billing starts.")
    free_below_s: float = Field(default=0, ge=0, description="Talk shorter than this is free.")
    connect_fee: float = Field(default=0, ge=0, description="Added to every billed call.")


class CampaignConfig(Strict):
    """A campaign by number pool (static call tracking): calls to ``numbers`` belong to it."""

    name: str = Field(min_length=1, max_length=200)
    numbers: list[str] = Field(default_factory=list, description="Our numbers (the dialled line) in E.164.")
    spend: float = Field(default=0, ge=0, description="What the campaign cost over the reported period(s).")


class ReportsConfig(Strict):
    """KPI definitions and report settings (docs/reports.md); every report prints the values used."""

    timezone: str = Field(default="UTC", description="IANA zone of the local date / hour buckets.")
    service_level_seconds: float = Field(default=20, gt=0, description="Answered within this counts towards SL.")
    short_abandon_seconds: float = Field(default=5, ge=0, description="Unanswered calls shorter than this are "
                                         "short abandons: left out of offered for rates and SL.")
    abandon_treatment: str = Field(default="negative", pattern="^(ignore|negative|positive)$",
                                   description="Abandons in the service level (Cisco's names).")
    answered_min_talk_seconds: float = Field(default=0, ge=0, description="What counts as answered: an agent "
                                             "answered and talked at least this long (0: any answer).")
    short_call_seconds: float = Field(default=10, ge=0, description="Answered calls with less talk are short.")
    target_talk_seconds: float = Field(default=30, ge=0, description="Talk from this on makes a target call.")
    callback_sla_minutes: float = Field(default=30, gt=0, description="A missed caller reached within this is "
                                        "called back in time.")
    working_hours: str = Field(default="00:00-24:00", pattern=r"^\d\d:\d\d-\d\d:\d\d$",
                               description="Local hours counted as working time (HH:MM-HH:MM).")
    working_days: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7],
                                    description="ISO weekdays that are working days (1 = Monday).")
    max_days: int = Field(default=366, ge=1, le=3660, description="Longest period one report may cover.")
    live_interval: float = Field(default=2.0, ge=0.1, description="Least seconds between two live KPI pushes.")
    currency: str = Field(default="RUB", min_length=3, max_length=3, description="Currency of computed costs.")
    campaigns: list[CampaignConfig] = Field(default_factory=list)
    tariffs: list[TariffRule] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Moscow") from None
        return value

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        start, end = value.split("-")
        h1, m1 = map(int, start.split(":"))
        h2, m2 = map(int, end.split(":"))
        if not (h1 < 24 and m1 < 60 and (h2 < 24 or (h2, m2) == (24, 0)) and m2 < 60 and (h1, m1) < (h2, m2)):
            raise ValueError("must be HH:MM-HH:MM with the start before the end, e.g. 09:00-18:00")
        return value

    @field_validator("working_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= day <= 7 for day in value):
            raise ValueError("must list ISO weekdays 1 (Monday) .. 7 (Sunday)")
        return sorted(set(value))


class LogConfig(Strict):
    level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    format: str = Field(default="text", pattern="^(text|json)$")


class CtidConfig(Strict):
    """The whole configuration file. ``connectors`` and ``crm`` are validated by plugin models."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    hub: HubConfig = Field(default_factory=HubConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    connectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    crm: dict[str, Any] | None = None
    phone: PhoneConfig = Field(default_factory=PhoneConfig)
    callbacks: CallbackConfig = Field(default_factory=CallbackConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    panel: PanelConfig = Field(default_factory=PanelConfig)
    data_dir: Path = Field(default=Path("var"), description="Where ctid keeps files (recordings, SQLite).")

    def cif_origins(self) -> list[str]:
        """``panel.cif_origins``, else the Dynamics organization named by ``crm.url``."""
        if self.panel.cif_origins is not None:
            return list(self.panel.cif_origins)
        crm = self.crm or {}
        if crm.get("plugin") == "dynamics" and isinstance(crm.get("url"), str):
            try:
                return [_origin_of_url(crm["url"])]
            except ValueError:
                return []  # the plugin's own model reports a bad url
        return []

    def frame_ancestors(self) -> list[str]:
        return list(self.panel.frame_ancestors) if self.panel.frame_ancestors is not None else self.cif_origins()

    @model_validator(mode="after")
    def _references(self) -> CtidConfig:
        for index, user in enumerate(self.auth.users):
            if user.agent is not None and user.agent not in self.agents:
                raise ValueError(f"auth.users.{index}.agent: unknown agent {user.agent!r}")
        for index, key in enumerate(self.auth.api_keys):
            if key.agent is not None and key.agent not in self.agents:
                raise ValueError(f"auth.api_keys.{index}.agent: unknown agent {key.agent!r}")
        for agent_id, agent in self.agents.items():
            for instance in agent.pbx:
                if instance not in self.connectors:
                    raise ValueError(f"agents.{agent_id}.pbx.{instance}: unknown connector instance")
        # an ambiguous login -> agent mapping (as ctid.directory.StaticDirectory compares logins)
        extensions: dict[str, str] = {}
        logins: dict[tuple[str, str], str] = {}
        for agent_id, agent in self.agents.items():
            if agent.extension:
                other = extensions.setdefault(agent.extension.strip().casefold(), agent_id)
                if other != agent_id:
                    raise ValueError(
                        f"agents.{agent_id}.extension: extension {agent.extension!r} is also used by agent {other!r}"
                    )
            for instance, login in agent.pbx.items():
                other = logins.setdefault((instance, login.strip().casefold()), agent_id)
                if other != agent_id:
                    raise ValueError(
                        f"agents.{agent_id}.pbx.{instance}: login {login!r} on {instance} is also used by agent {other!r}"
                    )
        return self
