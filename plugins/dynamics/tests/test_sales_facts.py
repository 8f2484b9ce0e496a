"""sales_facts: the callers' contacts and leads, their opportunities created in the window, won and
lost ones, read with eq filters and date ranges over paged answers of the fake organization."""

from __future__ import annotations

from datetime import UTC, datetime

from ctid.crm import SALES_FACTS

SINCE = datetime(2026, 3, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)


def _seed(world, fake):
    for record in (world.jane, world.acme):  # created in the window
        table = "contacts" if record == world.jane else "accounts"
        fake.records[table][record]["createdon"] = "2026-03-02T09:00:00Z"
    fake.records["leads"][world.lead]["createdon"] = "2026-02-20T09:00:00Z"  # before the window
    won = fake.add_opportunity("Big deal", customer=world.jane, statecode=1, estimatedvalue=900.0,
                               actualvalue=1000.0, actualclosedate="2026-03-20T00:00:00Z",
                               createdon="2026-03-05T10:00:00Z", owner=world.bob_user)
    lost = fake.add_opportunity("Lost deal", lead=world.lead, statecode=2, estimatedvalue=50.0,
                                createdon="2026-03-06T10:00:00Z")
    fake.add_opportunity("Old deal", customer=world.jane, createdon="2026-01-05T10:00:00Z")  # before the window
    fake.add_opportunity("Someone else's", customer=world.shared[0], createdon="2026-03-05T10:00:00Z")
    return won, lost


async def test_funnel_facts_of_the_callers(adapter, world, fake):
    assert adapter.supports(SALES_FACTS)
    won, lost = _seed(world, fake)
    facts = await adapter.sales_facts(["+74951234567", "+79161112233", "+79990000000"], SINCE, UNTIL)
    got = sorted((f.kind, f.record_id, f.phone, f.amount, f.owner) for f in facts)
    assert got == sorted([
        ("contact", world.jane, "+74951234567", None, "bob"),
        ("opportunity", won, "+74951234567", 900.0, "bob"),
        ("won", won, "+74951234567", 1000.0, "bob"),
        ("opportunity", lost, "+79161112233", 50.0, None),
        ("lost", lost, "+79161112233", 50.0, None),
    ])
    assert next(f for f in facts if f.kind == "won").at == datetime(2026, 3, 20, tzinfo=UTC)
    queries = [s for s in fake.seen if s.method == "GET" and s.path in ("contacts", "leads", "opportunities")]
    for seen in queries:
        assert "contains(" not in seen.query["$filter"] and "endswith(" not in seen.query["$filter"]
        assert "odata.maxpagesize=" in seen.headers["prefer"]
    opportunity_query = next(s for s in queries if s.path == "opportunities").query["$filter"]
    assert "createdon ge 2026-03-01T00:00:00Z and createdon lt 2026-04-01T00:00:00Z" in opportunity_query


async def test_many_callers_are_chunked_and_pages_followed(adapter, world, fake):
    numbers = [f"+7916{n:07d}" for n in range(45)]
    for n, number in enumerate(numbers[:32]):
        contact = fake.add_contact(f"Caller {n}", telephone1=number)
        fake.records["contacts"][contact]["createdon"] = "2026-03-03T00:00:00Z"
    facts = await adapter.sales_facts(numbers, SINCE, UNTIL)
    assert len([f for f in facts if f.kind == "contact"]) == 32
    assert {f.phone for f in facts} <= set(numbers)


async def test_a_failing_crm_is_a_crm_error(adapter, world, fake):
    import pytest

    from ctid.errors import CRMError

    fake.down = True
    with pytest.raises(CRMError):
        await adapter.sales_facts(["+74951234567"], SINCE, UNTIL)


async def test_pages_are_followed(adapter, world, fake, monkeypatch):
    from ctid_dynamics import sales

    monkeypatch.setattr(sales, "PAGE", 2)
    monkeypatch.setattr(sales, "NUMBERS_PER_QUERY", 50)
    numbers = [f"+7926{n:07d}" for n in range(7)]
    for n, number in enumerate(numbers):
        contact = fake.add_contact(f"Paged {n}", mobilephone=number)
        fake.records["contacts"][contact]["createdon"] = "2026-03-03T00:00:00Z"
    facts = await adapter.sales_facts(numbers, SINCE, UNTIL)
    assert sorted(f.phone for f in facts if f.kind == "contact") == numbers
    assert any("$skiptoken" in s.query for s in fake.seen if s.path == "contacts")
