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
from pydantic import Field

from ctid import hookimpl
from ctid.connector import Health
from ctid.crm import ContactMatch, CRMAdapter, CRMConfig
from ctid.errors import ConfigError
from ctid.model import Agent, Call, Task, iso
from ctid.phone import normalize


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


def load_contacts(path: Path, region: str) -> list[ContactMatch]:
    """Read a contacts file; raise ConfigError naming the file and the row on bad content."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read contacts file: {exc}", path="crm.contacts") from exc
    if path.suffix.lower() == ".csv":
        rows: list[Any] = list(csv.DictReader(io.StringIO(text)))
    else:
        try:
            rows = yaml.safe_load(text) or []
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}", path="crm.contacts") from exc
        if isinstance(rows, dict) and "contacts" in rows:
            rows = rows["contacts"]
    if not isinstance(rows, list):
        raise ConfigError(f"{path}: expected a list of contacts", path="crm.contacts")
    contacts = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("name"):
            raise ConfigError(f"{path}: contact #{index + 1} needs a name", path="crm.contacts")
        phones = row.get("phones") or row.get("phone") or []
        if isinstance(phones, str):
            phones = [p for p in phones.split(";") if p.strip()]
        normalized = [n for n in (normalize(str(p), region) for p in phones) if n]
        contact_id = str(row.get("id") or "") or hashlib.sha256(
            (str(row["name"]) + "|" + "|".join(normalized)).encode()
        ).hexdigest()[:12]
        contacts.append(
            ContactMatch(
                id=contact_id,
                entity="contact",
                name=str(row["name"]),
                company=(str(row["company"]) if row.get("company") else None),
                owner=(str(row["owner"]) if row.get("owner") else None),
                phones=normalized,
                extra={"email": row["email"]} if row.get("email") else {},
            )
        )
    return contacts


class DirectoryCRM(CRMAdapter):
    plugin_name = "directory"
    Config = DirectoryConfig
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
