"""Sales facts for ctid's funnel and campaign reports (``CRMAdapter.sales_facts``) over the Web API.

1. The callers' records: the configured phone entities (contact, account, lead) whose phone columns
   equal a spelling of one of the numbers, a few numbers per request (``eq`` filters: no leading
   wildcards, reference §1.4). Contacts give ``contact`` facts and leads ``lead`` facts, dated by
   ``createdon`` within ``[since, until)``.
2. Their opportunities: ``_customerid_value`` (contact / account) or ``_originatingleadid_value``
   (lead) among those records, created in ``[since, until)``: an ``opportunity`` fact each
   (``estimatedvalue``), and ``won`` (statecode 1; ``actualvalue``, dated ``actualclosedate``) or
   ``lost`` (statecode 2) for the closed ones (reports.md §1.1, opportunity.statecode).

Pages of ``Prefer: odata.maxpagesize`` are followed through ``@odata.nextLink``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ctid.crm import CRMFact
from ctid.errors import CRMError
from ctid.phone import normalize, variants

from .client import odata_quote

#: Caller numbers per lookup request and record ids per opportunity request (URL length stays
#: far below the 32 KiB Dynamics accepts in a GET).
NUMBERS_PER_QUERY = 10
IDS_PER_QUERY = 40
PAGE = 500
log = logging.getLogger(__name__)
OPPORTUNITY_COLUMNS = ("opportunityid,name,statecode,statuscode,estimatedvalue,actualvalue,actualclosedate,"
                       "createdon,modifiedon,_customerid_value,_originatingleadid_value,_ownerid_value")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _dt_literal(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amount(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def _pages(adapter: Any, entity_set: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every row of a query, page after page (``@odata.nextLink`` is followed as given)."""
    prefer = {"Prefer": f"odata.maxpagesize={PAGE}"}
    rows: list[dict[str, Any]] = []
    path, query = entity_set, params
    for _ in range(10_000):  # a CRM repeating one link forever must not hang the report
        response = await adapter.client.call("GET", path, params=query, headers=prefer)
        try:
            data = response.json()
        except ValueError as exc:
            raise CRMError(f"Dynamics answered GET {entity_set} with something that is not JSON",
                           error_id="crm_bad_answer") from exc
        rows.extend(data.get("value", []))
        link = data.get("@odata.nextLink")
        base = adapter.client.base
        if not link:
            return rows
        if not link.startswith(base):
            raise CRMError(f"Dynamics gave a next page outside {base}", error_id="crm_bad_answer")
        path, query = link[len(base):].lstrip("/"), None
    raise CRMError(f"Dynamics kept paging {entity_set}", error_id="crm_bad_answer")


async def sales_facts(adapter: Any, phones: Sequence[str], since: datetime, until: datetime) -> list[CRMFact]:
    region = adapter.region
    try:  # owners are reported as agent ids: map the agents' CRM users once
        await adapter._resolve_users()
    except CRMError as exc:
        log.warning("cannot map Dynamics users to agents for sales facts: %s", exc)
    wanted = {normalize(p, region) or p for p in phones if p}
    facts: list[CRMFact] = []
    customers: dict[str, str] = {}  # record id -> the caller's E.164 number (contacts, accounts, leads)
    window = f"createdon ge {_dt_literal(since)} and createdon lt {_dt_literal(until)}"
    numbers = sorted(wanted)
    for name, entity in adapter.config.entities.items():
        entity_set, id_field = str(entity.entity_set), str(entity.id_field)
        fields = [entity.normalized_field] if entity.normalized_field else list(entity.phone_fields)
        for start in range(0, len(numbers), NUMBERS_PER_QUERY):
            chunk = numbers[start:start + NUMBERS_PER_QUERY]
            spellings = {v: n for n in chunk for v in ([n] if entity.normalized_field else variants(n, region))}
            condition = " or ".join(f"{f} eq {odata_quote(v)}" for f in fields for v in spellings)
            select = [id_field, "createdon", "_ownerid_value", *fields] + (["statecode"] if name == "lead" else [])
            rows = await _pages(adapter, entity_set, {"$select": ",".join(dict.fromkeys(select)),
                                                      "$filter": condition})
            for row in rows:
                record_id = str(row.get(id_field, "")).lower()
                phone = next((spellings.get(row.get(f)) or normalize(str(row.get(f)), region)
                              for f in fields if row.get(f)), None)
                if not record_id or phone not in wanted:
                    continue
                customers[record_id] = phone
                created = _time(row.get("createdon"))
                kind = {"contact": "contact", "lead": "lead"}.get(name)
                if kind and created is not None and since <= created < until:
                    facts.append(CRMFact(kind=kind, record_id=record_id, phone=phone, at=created,
                                         owner=adapter._agent_for_user(row.get("_ownerid_value"))))
    ids = sorted(customers)
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start:start + IDS_PER_QUERY]
        who = " or ".join(f"{column} eq {record_id}" for record_id in chunk
                          for column in ("_customerid_value", "_originatingleadid_value"))
        rows = await _pages(adapter, "opportunities", {"$select": OPPORTUNITY_COLUMNS,
                                                        "$filter": f"({who}) and {window}"})
        for row in rows:
            record_id = str(row.get("opportunityid", "")).lower()
            customer = str(row.get("_customerid_value") or "").lower()
            lead = str(row.get("_originatingleadid_value") or "").lower()
            phone = customers.get(customer) or customers.get(lead)
            created = _time(row.get("createdon"))
            if not record_id or phone is None or created is None:
                continue
            owner = adapter._agent_for_user(row.get("_ownerid_value"))
            estimated = _amount(row.get("estimatedvalue"))
            facts.append(CRMFact(kind="opportunity", record_id=record_id, phone=phone, at=created,
                                 amount=estimated, stage=str(row.get("statuscode")), owner=owner))
            state = row.get("statecode")
            if state in (1, 2):
                closed = _time(row.get("actualclosedate")) or _time(row.get("modifiedon")) or created
                amount = _amount(row.get("actualvalue")) if state == 1 else None
                facts.append(CRMFact(kind="won" if state == 1 else "lost", record_id=record_id, phone=phone,
                                     at=closed, amount=amount if amount is not None else estimated,
                                     stage=str(row.get("statuscode")), owner=owner))
    return facts
