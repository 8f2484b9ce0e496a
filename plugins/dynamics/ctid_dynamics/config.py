"""Configuration model of the Dynamics CRM adapter (the ``crm:`` section with ``plugin: dynamics``)."""

from __future__ import annotations

import string
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ctid.crm import CRMConfig
from ctid.secret import AnySecret


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClientCredentialsAuth(_Strict):
    """Dynamics 365 online: an Entra app registration bound to an application user."""

    type: Literal["client_credentials"]
    tenant: str = Field(min_length=1, description="Entra tenant id or domain.")
    client_id: str = Field(min_length=1)
    client_secret: AnySecret | None = Field(default=None, description="The app registration's secret.")
    certificate: FilePath | None = Field(default=None, description="PEM file with the private key (instead of a secret).")
    thumbprint: str | None = Field(default=None, description="SHA-1 thumbprint of the certificate (hex).")
    authority: str | None = Field(
        default=None, description="Defaults to https://login.microsoftonline.com/<tenant>."
    )
    scope: str | None = Field(default=None, description="Defaults to <url>/.default.")
    instance_discovery: bool = Field(
        default=True, description="Ask login.microsoftonline.com to validate a non-Microsoft authority."
    )

    @model_validator(mode="after")
    def _credential(self) -> ClientCredentialsAuth:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret or certificate (+ thumbprint)")
        if self.certificate is not None and not self.thumbprint:
            raise ValueError("certificate needs its thumbprint")
        return self

    def authority_url(self) -> str:
        return (self.authority or f"https://login.microsoftonline.com/{self.tenant}").rstrip("/")


class NTLMAuth(_Strict):
    """On-premises without IFD: Windows (NTLM) credentials of a CRM user."""

    type: Literal["ntlm"]
    domain: str = Field(min_length=1)
    username: str = Field(min_length=1)
    password: AnySecret


class ADFSAuth(_Strict):
    """On-premises IFD: OAuth through AD FS (client secret, or a service account's username/password)."""

    type: Literal["adfs"]
    authority: str = Field(description="AD FS authority, e.g. https://adfs.example.com/adfs")
    client_id: str = Field(min_length=1)
    client_secret: AnySecret | None = None
    username: str | None = None
    password: AnySecret | None = None
    scope: str | None = Field(default=None, description="Defaults to <url>/user_impersonation.")

    @field_validator("authority")
    @classmethod
    def _adfs_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith("https://") or not value.lower().endswith("/adfs"):
            raise ValueError("must be the https URL of AD FS ending in /adfs")
        return value

    @model_validator(mode="after")
    def _credential(self) -> ADFSAuth:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.client_secret is None and self.username is None:
            raise ValueError("give client_secret, or username and password")
        return self


AuthConfig = Annotated[ClientCredentialsAuth | NTLMAuth | ADFSAuth, Field(discriminator="type")]


#: Entity set, primary key, name column and company column of the stock entities.
KNOWN_ENTITIES: dict[str, dict[str, str | None]] = {
    "contact": {"entity_set": "contacts", "id_field": "contactid", "name_field": "fullname",
                "company_field": "_parentcustomerid_value"},
    "account": {"entity_set": "accounts", "id_field": "accountid", "name_field": "name", "company_field": None},
    "lead": {"entity_set": "leads", "id_field": "leadid", "name_field": "fullname", "company_field": "companyname"},
}


class EntityConfig(_Strict):
    """One table searched by phone. Stock entities need only ``phone_fields``."""

    phone_fields: list[str] = Field(min_length=1, description="Phone columns compared with eq.")
    entity_set: str | None = Field(default=None, description="Web API entity set (plural) name, e.g. contacts; "
                                   "known for contact, account and lead.")
    id_field: str | None = Field(default=None, description="Primary key column, e.g. contactid (the record link).")
    name_field: str | None = Field(default=None, description="Column shown as the match's name, e.g. fullname.")
    company_field: str | None = Field(default=None, description="A lookup (_x_value) or text column.")
    normalized_field: str | None = Field(
        default=None, description="A custom column holding E.164 numbers; when set only it is queried."
    )


def _default_entities() -> dict[str, EntityConfig]:
    return {
        "contact": EntityConfig(phone_fields=["telephone1", "mobilephone", "telephone2", "telephone3"]),
        "account": EntityConfig(phone_fields=["telephone1", "telephone2", "telephone3"]),
        "lead": EntityConfig(phone_fields=["telephone1", "mobilephone", "telephone2", "telephone3"]),
    }


#: The fields each template may use, with sample values of the types the adapter passes.
PHONECALL_FIELDS: dict[str, Any] = {
    "label": "Incoming call from", "number": "+74951234567", "name": "Jane Doe", "agent": "Alice Agent",
    "line": "+74950001122", "group": "sales", "outcome": "answered",
}
TASK_FIELDS: dict[str, Any] = {
    "number": "+74951234567", "name": "Jane Doe", "count": 2, "first_missed": "2026-03-02 09:30 UTC",
    "last_missed": "2026-03-02 09:50 UTC", "group": "sales", "line": "+74950001122",
}


def check_template(template: str, fields: dict[str, Any]) -> str:
    """Refuse a template the adapter could not render: unbalanced braces, positional, unknown or
    attribute/index fields (``{number.real}``, ``{name[0]}``), nested or wrong format specs."""
    allowed = " ".join("{" + name + "}" for name in fields)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc}); write a literal brace as {{{{ or }}}}") from None
    for _literal, field, spec, _conversion in parts:
        if field is None:
            continue
        root = field.split(".", 1)[0].split("[", 1)[0]
        if root == "" or root.isdigit():
            raise ValueError(f"positional field {{{field}}} is not allowed; use named fields: {allowed}")
        if root not in fields:
            raise ValueError(f"unknown field {{{root}}}; the fields are {allowed}")
        if root != field:
            raise ValueError(f"{{{field}}}: attribute or index access is not allowed; use {{{root}}}")
        if spec and ("{" in spec or "}" in spec):
            raise ValueError(f"{{{field}:{spec}}}: nested fields in a format spec are not allowed")
    try:
        template.format_map(fields)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot be rendered: {exc}") from None
    return template


class CallbackTaskConfig(_Strict):
    subject: str = Field(
        default="Call back {number} {name} ({count} missed)",
        description="Template: {number} {name} {count} {first_missed} {last_missed} {group} {line}.",
    )
    due_in: float = Field(default=4, ge=0, description="Hours from the first missed call to the due date.")
    priority: int = Field(default=2, ge=0, le=2, description="0 low, 1 normal, 2 high.")
    owner_rule: list[Literal["contact_owner", "agent", "group_manager"]] = Field(
        default_factory=lambda: ["contact_owner", "agent", "group_manager"],
        description="Who owns the task: the first rule that yields a CRM user wins.",
    )
    group_managers: dict[str, str] = Field(default_factory=dict, description="group -> manager agent id")
    default_owner: str | None = Field(default=None, description="systemuserid when no rule matches.")

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        return check_template(value, TASK_FIELDS)

    @field_validator("default_owner")
    @classmethod
    def _default_owner(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(uuid.UUID(value.strip().strip("{}")))
        except ValueError:
            raise ValueError("must be a systemuserid (a GUID), e.g. 6f9a1c2e-0000-0000-0000-000000000000") from None


#: Built-in phonecall status reasons of the closed states (phonecall.md): Completed 2 Made / 4
#: Received, Canceled 3. Custom status reasons get option values from the publisher's prefix
#: (10000-99999) times 10000, so they start at 100000000.
MISSED_STATUSCODES = {"completed": {2: "Made", 4: "Received"}, "cancelled": {3: "Canceled"}}
CUSTOM_OPTION_MIN = 100_000_000


class PhoneCallConfig(_Strict):
    subject: str = Field(
        default="{label} {number} {name}",
        description="Template: {label} {number} {name} {agent} {line} {group} {outcome}.",
    )
    missed_status: Literal["cancelled", "completed"] = Field(
        default="cancelled", description="How an unanswered call is closed."
    )
    missed_statuscode: int | None = Field(
        default=None, description="A custom status reason for missed calls (must belong to the state)."
    )
    log_internal: bool = Field(default=False, description="Also log agent-to-agent calls.")

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        return check_template(value, PHONECALL_FIELDS)

    @field_validator("missed_statuscode")
    @classmethod
    def _missed_statuscode(cls, value: int | None, info: ValidationInfo) -> int | None:
        """A status reason of the state ``missed_status`` closes with: a built-in one of that state,
        or a custom one (whose state only Dynamics knows: a wrong one fails the first close)."""
        missed_status = info.data.get("missed_status")
        if value is None or value >= CUSTOM_OPTION_MIN or missed_status is None:
            return value
        allowed = MISSED_STATUSCODES[missed_status]
        if value not in allowed:
            builtin = ", ".join(f"{code} ({name})" for code, name in allowed.items())
            raise ValueError(
                f"{value} is not a status reason of the state missed_status: {missed_status} closes with; "
                f"use {builtin}, or a custom status reason of that state (>= {CUSTOM_OPTION_MIN})"
            )
        return value


class RecordingConfig(_Strict):
    mode: Literal["note", "url_field"] = Field(
        default="note", description="How ctid's recording link reaches the call's phonecall: note: a note "
        "(annotation) on it; url_field: written to the phonecall's URL column `url_field`.",
    )
    url_field: str | None = Field(default=None, description="URL column on phonecall, e.g. new_recordingurl.")

    @model_validator(mode="after")
    def _field(self) -> RecordingConfig:
        if self.mode == "url_field" and not self.url_field:
            raise ValueError("mode url_field needs url_field")
        return self


class DynamicsConfig(CRMConfig):
    """``crm:`` keys of the Dynamics adapter."""

    url: str = Field(description="Organization URL, e.g. https://contoso.crm4.dynamics.com or https://crm/ORG")
    api_version: str = Field(default="9.2", pattern=r"^\d+\.\d+$", description="8.x for CRM 2016 on-prem.")
    auth: AuthConfig = Field(description="How ctid signs in (`type`): client_credentials (Dynamics 365 online, an "
                             "Entra app registration), ntlm (on-premises), adfs (on-premises IFD).")
    entities: dict[str, EntityConfig] = Field(default_factory=_default_entities)
    default_region: str | None = Field(
        default=None, min_length=2, max_length=2, description="Overrides phone.default_region."
    )
    lookup_mode: Literal["first", "all"] = Field(
        default="first",
        description="first: matches of the first entity (in `entities` order) that has any, so a contact "
        "wins over the account whose switchboard number it shares; all: matches of every entity.",
    )
    batch_lookups: bool = Field(
        default=True, description="Send the lookups of all entities in one $batch request (one round trip)."
    )
    max_matches: int = Field(default=5, ge=2, le=50, description="$top per entity: how many matches a pop lists.")
    app_id: str | None = Field(default=None, description="Model-driven app id added to record URLs.")
    new_contact_entity: str = Field(default="contact", description="Entity of the Dynamics form the \"new contact\" link "
                                    "opens for an unknown caller.")
    new_contact_field: str = Field(default="telephone1", description="Column of that form filled with the "
                                   "caller's number.")
    phonecall: PhoneCallConfig = Field(default_factory=PhoneCallConfig)
    callback_task: CallbackTaskConfig = Field(default_factory=CallbackTaskConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    max_concurrency: int = Field(default=8, ge=1, le=50, description="Parallel requests (Dynamics caps at 52).")
    timeout: float = Field(default=10, gt=0, description="Seconds per HTTP request.")
    connect_timeout: float = Field(default=5, gt=0, description="Seconds to open a connection.")
    ca_bundle: FilePath | None = Field(default=None, description="CA file for a private CA (on-prem, AD FS).")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be the organization's http(s) URL")
        if "/api/data" in value:
            raise ValueError("give the organization URL without /api/data/...")
        return value

    @model_validator(mode="after")
    def _group_managers(self, info: ValidationInfo) -> DynamicsConfig:
        """With the core's ``agents`` in the validation context (``ctid config check``, ``serve``),
        a group manager must be a configured agent with a ``crm_user``."""
        agents = (info.context or {}).get("agents")
        if agents is None:
            return self
        for group, agent_id in self.callback_task.group_managers.items():
            agent = agents.get(agent_id)
            if agent is None:
                known = ", ".join(sorted(agents)) or "(none)"
                raise ValueError(f"callback_task.group_managers.{group}: unknown agent {agent_id!r}; the agents are {known}")
            if not agent.crm_user:
                raise ValueError(f"callback_task.group_managers.{group}: agent {agent_id!r} has no crm_user, so "
                                 "callback tasks cannot be assigned to them in Dynamics")
        return self

    @model_validator(mode="after")
    def _entities(self) -> DynamicsConfig:
        if not self.entities:
            raise ValueError("entities: at least one entity is needed")
        for name, entity in self.entities.items():
            known = KNOWN_ENTITIES.get(name, {})
            for key in ("entity_set", "id_field", "name_field", "company_field"):
                if getattr(entity, key) is None and known.get(key):
                    setattr(entity, key, known[key])
            if not (entity.entity_set and entity.id_field and entity.name_field):
                raise ValueError(f"entities.{name}: a custom entity needs entity_set, id_field and name_field")
        return self

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/data/v{self.api_version}"
