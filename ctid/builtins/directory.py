"""The ``directory`` CRM: contacts from a CSV or YAML file; activities and callback tasks kept in
ctid's own database. It is the embedded default, so the demo works without a real CRM.

Contacts file (YAML)::

    - id: c-001                    # optional; defaults to a stable hash of name + phones
      name: Anna Petrova
      company: Romashka LLC
      phones: ["+7 916 123-45-67", "84951234567"]
      owner: alice                 # ctid agent id responsible for the contact
      email: anna@example.com

CSV: a header row with ``id,name,company,phones,owner,email``; several phones separated by ``;``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import yaml
from pydantic import Field, field_validator

from ctid import hookimpl
from ctid.connector import Health
from ctid.crm import LOG_CALL, LOOKUP, RECORDINGS, TASKS, ContactMatch, CRMAdapter, CRMConfig
from ctid.errors import ConfigError
from ctid.model import Agent, Call, Task, iso
from ctid.phone import normalize

#: The plugin contract this plugin is written for (ctid.CONTRACT_VERSION, checked at load).
CTID_CONTRACT = "2.0"


class DirectoryConfig(CRMConfig):
    plugin: Literal["directory"] = "directory"
    contacts: Path | None = Field(default=None, description="CSV or YAML file of contacts.")
    record_url: str = Field(
        default="{public_url}/panel/#/contact/{id}",
        description="Template of the link that opens a contact ({public_url}, {id}).",
    )
    new_contact_url: str | None = Field(
        default="{public_url}/panel/#/contact/new?phone={phone}",
        description="Template of the link that creates a contact ({public_url}, {phone}).",
    )

    @field_validator("contacts")
    @classmethod
    def _contacts_readable(cls, value: Path | None) -> Path | None:
        """Read the file now, so `ctid config check` finds what `ctid serve` would stop on."""
        if value is not None:
            try:
                load_contacts(value, "RU")  # the region only changes how numbers are normalized
            except ConfigError as exc:
                raise ValueError(exc.reason) from None
        return value


def load_contacts(path: Path, region: str) -> list[ContactMatch]:
    """Read a contacts file; raise ConfigError naming the file and the row on bad content."""
    return [_contact(path, index, row, region) for index, row in enumerate(_rows(path))]


def _rows(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}", path="crm.contacts") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read contacts file: {exc}", path="crm.contacts") from exc
    if path.suffix.lower() == ".csv":
        try:
            return list(csv.DictReader(io.StringIO(text)))
        except csv.Error as exc:
            raise ConfigError(f"{path}: not valid CSV: {exc}", path="crm.contacts") from exc
    try:
        rows = yaml.safe_load(text) or []
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", path="crm.contacts") from exc
    if isinstance(rows, dict) and "contacts" in rows:
        rows = rows["contacts"]
    if not isinstance(rows, list):
        raise ConfigError(f"{path}: expected a list of contacts", path="crm.contacts")
    return rows


def _text(value: Any) -> str | None:
    """A text field: a string or an integer (YAML reads ``id: 7`` as a number); None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError("must be a string")


def _phones(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [p for p in value.split(";") if p.strip()]
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return value
    hint = ""
    if isinstance(value, int | float) or (isinstance(value, list) and any(isinstance(p, int | float) for p in value)):
        hint = " (quote phone numbers: YAML reads +79161234567 as a number and drops the + and leading zeros)"
    raise ValueError("must be a string or a list of strings" + hint)


def _contact(path: Path, index: int, row: Any, region: str) -> ContactMatch:
    where = f"{path}: contact #{index + 1}"
    if path.suffix.lower() == ".csv":
        where += f" (line {index + 2})"
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: must be a mapping of keys, not {type(row).__name__}", path="crm.contacts")
    fields: dict[str, Any] = {}
    for key in ("name", "id", "company", "owner", "email", "phones"):
        raw = row.get(key)
        if key == "phones" and raw in (None, ""):
            raw = row.get("phone")
        try:
            fields[key] = _phones(raw) if key == "phones" else _text(raw)
        except ValueError as exc:
            name = fields.get("name")
            raise ConfigError(f"{where}{f' ({name})' if name else ''}: {key}: {exc}", path="crm.contacts") from None
        if key == "name" and not fields["name"]:
            raise ConfigError(f"{where}: needs a name", path="crm.contacts")
    normalized = [n for n in (normalize(p, region) for p in fields["phones"]) if n]
    contact_id = fields["id"] or hashlib.sha256(
        (fields["name"] + "|" + "|".join(normalized)).encode()
    ).hexdigest()[:12]
    return ContactMatch(
        id=contact_id,
        entity="contact",
        name=fields["name"],
        company=fields["company"],
        owner=fields["owner"],
        phones=normalized,
        extra={"email": fields["email"]} if fields["email"] else {},
    )


class DirectoryCRM(CRMAdapter):
    plugin_name = "directory"
    Config = DirectoryConfig
    capabilities = frozenset({LOOKUP, LOG_CALL, TASKS, RECORDINGS})
    config: DirectoryConfig

    def __init__(self, config: DirectoryConfig, services):
        super().__init__(config, services)
        self._by_phone: dict[str, list[ContactMatch]] = {}
        self._contacts: list[ContactMatch] = []
        if config.contacts is not None:
            self._contacts = load_contacts(Path(config.contacts), services.default_region)
        for contact in self._contacts:
            contact.url = self.record_url(contact)
            for phone in contact.phones:
                self._by_phone.setdefault(phone, []).append(contact)

    def record_url(self, match: ContactMatch) -> str:
        return self.config.record_url.format(public_url=self.services.public_url.rstrip("/"), id=quote(match.id))

    def new_contact_url(self, phone: str) -> str | None:
        if not self.config.new_contact_url:
            return None
        return self.config.new_contact_url.format(
            public_url=self.services.public_url.rstrip("/"), phone=quote(phone)
        )

    async def lookup(self, phone: str) -> list[ContactMatch]:
        number = normalize(phone, self.services.default_region) or phone
        return list(self._by_phone.get(number, ()))

    def _storage(self):
        return self.services.storage("directory")

    async def log_call(self, call: Call, agent: Agent | None) -> str | None:
        matches = (call.contact or {}).get("matches") or []
        record = {
            "call_id": call.id,
            "direction": call.direction.value,
            "outcome": call.outcome.value if call.outcome else None,
            "number": call.remote_number,
            "agent": agent.id if agent else call.agent,
            "contact_id": matches[0]["id"] if len(matches) == 1 else None,
            "started_at": iso(call.started_at),
            "ended_at": iso(call.ended_at),
            "talk_seconds": call.talk_seconds,
            "recording_url": call.recording_url,
        }
        await self._storage().put("activity", call.id, record)
        return call.id

    async def create_callback_task(self, task: Task, owner: Agent | None) -> str | None:
        await self._storage().put(
            "task",
            task.id,
            {"number": task.number, "owner": owner.id if owner else task.owner, "status": task.status.value,
             "missed_count": task.missed_count, "last_missed_at": iso(task.last_missed_at)},
        )
        return task.id

    async def close_callback_task(self, task: Task) -> None:
        current = await self._storage().get("task", task.id) or {"number": task.number}
        current.update(status="done", closed_at=iso(task.closed_at), closed_by_call=task.closed_by_call)
        await self._storage().put("task", task.id, current)

    async def attach_recording(self, call: Call, url: str) -> None:
        current = await self._storage().get("activity", call.id) or {"call_id": call.id}
        current["recording_url"] = url
        await self._storage().put("activity", call.id, current)

    async def health(self) -> Health:
        source = str(self.config.contacts) if self.config.contacts else "no contacts file"
        return Health(ok=True, detail=f"{len(self._contacts)} contacts", checks={"contacts": source})


@hookimpl
def ctid_register_crms():
    return [DirectoryCRM]
