"""Configuration of one IP Office unit (``connectors.<instance>`` with ``plugin: avaya``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from ctid.connector import ConnectorConfig
from ctid.limits import ascii_digits

DEVLINK3_TLS_PORT = 50796
DEVLINK3_TCP_PORT = 50797
DMCC_TLS_PORT = 4722


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _host_port(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not ascii_digits(port) or not 0 <= int(port) <= 65535:
        raise ValueError(f"{what} must be HOST:PORT, e.g. 0.0.0.0:8808")
    return host.strip("[]") or "0.0.0.0", int(port)


class DevLink3Config(_Strict):
    """The DevLink3 event stream (needs a CTI Link Pro licence and a service user with the DevLink3 right)."""

    enabled: bool = Field(default=True, description="Connect to the DevLink3 stream (off: SMDR only).")
    transport: Literal["tls", "tcp"] = Field(
        default="tls", description="tls = port 50796 (always on); tcp = 50797 (only with 'Unsecured Interfaces')."
    )
    port: int | None = Field(default=None, ge=1, le=65535, description="Default 50796 (tls) / 50797 (tcp).")
    username: str = Field(min_length=1, description="The IP Office service user in a rights group with DevLink3.")
    password: SecretStr = Field(description="The service user's password (use $env / $file).")
    app_name: str = Field(default="ctid", max_length=60, description="Sent in the Authenticate request.")
    flags: str = Field(default="", description="EventRequest flags, e.g. '-SIPTrack' (none = Delta3 of this node).")
    tls_verify: bool = Field(default=False, description="Verify the unit's certificate (IP Office's own CA is "
                             "usually self-signed: give ca_file).")
    ca_file: Path | None = Field(default=None, description="PEM file of the CA that signed the unit's certificate.")
    allow_plain_password: bool = Field(
        default=True, description="Answer the PLAIN challenge IP Office may send over TLS (never over TCP)."
    )
    keepalive: float = Field(default=30, ge=1, description="Seconds between Test packets; no answer within "
                             "this long again means the link is dead.")
    connect_timeout: float = Field(default=10, gt=0, description="Seconds to connect and log in.")
    backoff_initial: float = Field(default=1, gt=0, description="First wait before reconnecting, seconds (doubles).")
    backoff_max: float = Field(default=60, gt=0, description="Longest wait between reconnects, seconds.")
    auth_failure_backoff: float = Field(
        default=600, ge=10, description="Wait after a refused login (IP Office locks accounts on repeated failures)."
    )
    resync_grace: float = Field(
        default=10, ge=0, description="After a reconnect, calls IP Office did not re-report within this long "
        "are ended (IP Office re-sends every call in progress at once)."
    )

    @field_validator("flags")
    @classmethod
    def _flags(cls, value: str) -> str:
        known = {"-SCN", "-SIPTrack", "-CMExtn", "-CONN", "-TEXT"}
        for flag in value.split():
            if flag in ("-CD2",):
                raise ValueError("-CD2 switches IP Office to legacy Delta2 records, which ctid does not read")
            if flag not in known:
                raise ValueError(f"unknown EventRequest flag {flag!r} (known: {', '.join(sorted(known))})")
        return " ".join(value.split())

    def effective_port(self) -> int:
        return self.port or (DEVLINK3_TLS_PORT if self.transport == "tls" else DEVLINK3_TCP_PORT)


class SmdrConfig(_Strict):
    """The SMDR stream: CSV lines, one per finished call leg (System -> SMDR on IP Office Manager)."""

    enabled: bool = Field(default=True, description="Collect SMDR (the call log).")
    mode: Literal["listen", "connect"] = Field(
        default="listen", description="listen = ctid listens, IP Office sends to it (SMDR IP Address = ctid); "
        "connect = IP Office listens (SMDR IP Address 0.0.0.0) and ctid connects to it."
    )
    listen: str = Field(default="0.0.0.0:8808", description="listen mode: where ctid accepts IP Office's SMDR.")
    port: int | None = Field(default=None, ge=1, le=65535,
                             description="connect mode: the SMDR TCP port set on IP Office (it has no default).")
    allowed_peers: list[str] = Field(default_factory=list,
                                     description="listen mode: source IPs accepted (empty = the unit's host only).")
    seen_window: float = Field(default=86400, ge=60, description="Health: an SMDR record must have arrived "
                               "within this many seconds (a quiet site needs a long window).")
    group_timeout: float = Field(default=7200, ge=60, description="A Call ID whose last record (Continuation=0) "
                                 "never came is closed after this long.")
    join_tolerance: float = Field(default=120, ge=0, description="Seconds of clock skew allowed when matching an "
                                  "SMDR record to the DevLink3 call it belongs to.")
    max_line: int = Field(default=8192, ge=256, description="A line longer than this is garbage and skipped.")
    backoff_initial: float = Field(default=1, gt=0, description="connect mode: first wait before reconnecting (doubles).")
    backoff_max: float = Field(default=60, gt=0, description="connect mode: longest wait between reconnects.")

    def listen_address(self) -> tuple[str, int]:
        return _host_port(self.listen, "smdr.listen")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _host_port(value, "smdr.listen")
        return value


class TapiControl(_Strict):
    """IP Office TAPI (third-party mode): inside ctid on Windows (local) or through ``ctid avaya tapi-bridge``."""

    backend: Literal["tapi"] = Field(description="IP Office TAPI.")
    mode: Literal["local", "bridge"] = Field(default="bridge", description="local = TAPI in this (Windows) process; "
                                             "bridge = `ctid avaya tapi-bridge` on a Windows host.")
    bridge_url: str | None = Field(default=None, description="bridge mode: http(s)://windows-host:port of the bridge.")
    bridge_token: SecretStr | None = Field(default=None, description="bridge mode: the bridge's --token.")
    timeout: float = Field(default=10, gt=0, description="Seconds a command may take.")

    @model_validator(mode="after")
    def _bridge(self) -> TapiControl:
        if self.mode == "bridge" and (not self.bridge_url or self.bridge_token is None):
            raise ValueError("mode 'bridge' needs bridge_url and bridge_token")
        return self


class TwsControl(_Strict):
    """Avaya Aura AES Telephony Web Service (SOAP): click-to-call, transfer, hang up."""

    backend: Literal["aes-tws"] = Field(description="Avaya Aura AES Telephony Web Service.")
    wsdl_url: str = Field(description="https://<aes>/axis/services/TelephonyService?wsdl")
    username: str = Field(description="name@switchName (HTTP Basic auth).")
    password: SecretStr = Field(description="The AES user's password.")
    tls_verify: bool = Field(default=True, description="Verify AES's HTTPS certificate.")
    timeout: float = Field(default=10, gt=0, description="Seconds a SOAP request may take.")


class DmccControl(_Strict):
    """Avaya Aura AES DMCC XML (TLS 4722): click-to-call, hold / retrieve, transfer, clear."""

    backend: Literal["aes-dmcc"] = Field(description="Avaya Aura AES DMCC XML.")
    host: str = Field(description="The AES server.")
    port: int = Field(default=DMCC_TLS_PORT, ge=1, le=65535, description="4722 = secure DMCC.")
    tls: bool = Field(default=True, description="TLS (port 4722); false only for an unencrypted lab port.")
    tls_verify: bool = Field(default=False, description="Verify AES's certificate against ca_file.")
    ca_file: Path | None = Field(default=None, description="PEM file of AES's CA.")
    username: str = Field(description="The CTI user on AES.")
    password: SecretStr = Field(description="Its password.")
    switch_name: str = Field(description="The CM switch connection name on AES.")
    switch_ip: str = Field(default="", description="The CM's IP in device ids (<ext>:<switch>:<ip>:0).")
    protocol: str = Field(default="http://www.ecma-international.org/standards/ecma-323/csta/ed3/privA",
                          description="The requested DMCC protocol version.")
    session_duration: int = Field(default=180, ge=10, le=3600, description="requestedSessionDuration, seconds.")
    cleanup_delay: int = Field(default=60, ge=0, description="sessionCleanupDelay: how long AES keeps a dropped "
                               "session for resume.")
    timeout: float = Field(default=10, gt=0, description="Seconds a DMCC request may take.")


ControlConfig = Annotated[TapiControl | TwsControl | DmccControl, Field(discriminator="backend")]


class SimulationConfig(_Strict):
    """Loopback sockets ``ctid simulate-call`` sends native DevLink3 / SMDR traffic to (off unless set)."""

    host: str = Field(default="127.0.0.1", description="Keep it on loopback: anything it receives becomes calls.")
    devlink3_port: int | None = Field(default=None, ge=0, le=65535,
                                      description="Where simulate-call plays the unit's DevLink3 side.")
    smdr_port: int | None = Field(default=None, ge=0, le=65535,
                                  description="Where simulate-call sends SMDR (default: smdr.listen in listen mode).")


class AvayaConfig(ConnectorConfig):
    """One IP Office unit: its DevLink3 stream, its SMDR stream and optionally a call-control backend."""

    plugin: Literal["avaya"] = "avaya"
    host: str = Field(description="The IP Office unit's address (DevLink3, SMDR connect mode, SMDR peer check).")
    timezone: str = Field(default="UTC", description="The unit's local time zone (SMDR times are local).")
    devlink3: DevLink3Config | None = Field(default=None, description="The DevLink3 event stream (screen pops).")
    smdr: SmdrConfig = Field(default_factory=SmdrConfig, description="The SMDR call log.")
    extensions: dict[str, str] = Field(
        default_factory=dict, description="IP Office extension -> ctid agent id, where agents.<id> does not "
        "already say extension / pbx.<instance>."
    )
    hunt_groups: dict[str, str] = Field(default_factory=dict,
                                        description="IP Office hunt group name or number -> ctid group.")
    control: list[ControlConfig] = Field(
        default_factory=list, description="Call-control backends, first that can do a command wins "
        "(none = monitor and log only)."
    )
    simulation: SimulationConfig | None = Field(default=None, description="Sockets for `ctid simulate-call` (off).")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Moscow)") from exc
        return value

    @model_validator(mode="after")
    def _modes(self) -> AvayaConfig:
        if self.smdr.enabled and self.smdr.mode == "connect" and self.smdr.port is None:
            raise ValueError("smdr.mode 'connect' needs smdr.port (the TCP port set on IP Office)")
        if self.devlink3 is None and not self.smdr.enabled:
            raise ValueError("enable devlink3 or smdr: the connector would receive nothing")
        return self

    @model_validator(mode="after")
    def _mappings_name_what_exists(self, info: ValidationInfo) -> AvayaConfig:
        """With the core's ``agents`` in the validation context (``ctid config check``, ``serve``), an
        ``extensions`` entry must name a configured agent and a ``hunt_groups`` entry a group some agent
        answers for: otherwise the mapping is silently useless. Without the context (a model validated
        on its own), nothing to check against."""
        agents = (info.context or {}).get("agents")
        if agents is None:
            return self
        for extension, agent_id in self.extensions.items():
            if agent_id not in agents:
                known = ", ".join(sorted(agents)) or "(none)"
                raise ValueError(f"extensions.{extension}: unknown agent {agent_id!r}; the agents are {known}")
        groups = {group for agent in agents.values() for group in getattr(agent, "groups", ())}
        for hunt_group, group in self.hunt_groups.items():
            if group not in groups:
                known = ", ".join(sorted(groups)) or "(none: no agent has groups)"
                raise ValueError(f"hunt_groups.{hunt_group}: unknown group {group!r} (no agent lists it in "
                                 f"groups); the groups are {known}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
