"""Screen-pop lookups: exact variants across entities, 0/1/N matches, record and new-contact URLs, tokens."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from ctid.errors import CRMError


async def test_known_caller_gets_the_contact_card(adapter, world, fake):
    [match] = await adapter.lookup("+74951234567")
    assert match.entity == "contact"
    assert match.id == world.jane
    assert match.name == "Jane Doe"
    assert match.company == "Acme Ltd"  # formatted value of parentcustomerid
    assert match.owner == "bob"  # Bob's crm_user is his e-mail; resolved once to his systemuserid
    assert match.url == f"{fake.url}/main.aspx?etn=contact&id={world.jane}&pagetype=entityrecord"
    assert match.phones == ["8 (495) 123-45-67"]
    assert match.extra["owner_crm_id"] == world.bob_user


async def test_lookup_is_one_round_trip_and_never_a_wildcard(adapter, world, fake):
    await adapter.lookup("+74951234567")  # warm-up: token, connection, agents' CRM users
    before, round_trips = len(fake.seen), fake.http_requests
    await adapter.lookup("84951234567")
    assert fake.http_requests == round_trips + 1
    assert fake.token_requests == 1
    [batch, *parts] = fake.seen[before:]
    assert (batch.method, batch.path, batch.status) == ("POST", "$batch", 200)
    assert batch.headers["content-type"].startswith("multipart/mixed; boundary=")
    assert sorted(s.path for s in parts) == ["accounts", "contacts", "leads"]
    for seen in parts:
        assert seen.batch and seen.method == "GET" and seen.status == 200
        assert "contains(" not in seen.query["$filter"] and "endswith(" not in seen.query["$filter"]
        assert seen.query["$top"] == "5"
        assert "'+74951234567'" in seen.query["$filter"]  # '+' arrived as '+', so it was sent as %2B
        assert 'odata.include-annotations="*"' in seen.headers["prefer"]
    contacts = next(s for s in parts if s.path == "contacts")
    assert set(contacts.query["$select"].split(",")) >= {"contactid", "fullname", "_ownerid_value", "_parentcustomerid_value", "telephone1", "mobilephone"}


async def test_lookup_without_batch_is_one_get_per_entity_set(make_adapter, world, fake):
    adapter = make_adapter(batch_lookups=False)
    [match] = await adapter.lookup("+74951234567")
    assert match.id == world.jane
    before = len(fake.seen)
    await adapter.lookup("+74951234567")
    lookups = fake.seen[before:]
    assert sorted((s.method, s.path, s.batch) for s in lookups) == [
        ("GET", "accounts", False), ("GET", "contacts", False), ("GET", "leads", False)]
    assert all(s.headers["odata-version"] == "4.0" and s.headers["odata-maxversion"] == "4.0" for s in lookups)


async def test_an_error_inside_the_batch_is_raised_with_its_code(make_adapter, fake):
    adapter = make_adapter(entities={
        "contact": {"phone_fields": ["telephone1"]},
        "incident": {"phone_fields": ["new_phone"], "entity_set": "Incidents", "id_field": "incidentid", "name_field": "title"},
    })
    with pytest.raises(CRMError) as info:
        await adapter.lookup("+74951234567")
    assert info.value.code == "0x8006088a" and not info.value.retryable
    assert "GET Incidents (in $batch)" in str(info.value)


async def test_unknown_caller_gets_a_prefilled_new_contact_url(adapter, fake):
    assert await adapter.lookup("+74990000000") == []
    url = adapter.new_contact_url("8 499 000-00-00")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert url.startswith(f"{fake.url}/main.aspx?")
    assert query["etn"] == ["contact"] and query["pagetype"] == ["entityrecord"]
    assert query["extraqs"] == ["telephone1=+74990000000"]
    assert "%2B" in url  # the + of the number is encoded inside extraqs


async def test_three_contacts_sharing_a_number_are_all_returned(adapter, world):
    matches = await adapter.lookup("+7 (495) 777-00-00")
    assert sorted(m.id for m in matches) == sorted(world.shared)
    assert {m.company for m in matches} == {"Acme Ltd"}
    assert all(m.owner is None for m in matches)  # owned by the application user, not an agent


async def test_accounts_and_leads_match_too(adapter, world):
    [account] = await adapter.lookup("+74950000001")
    assert (account.entity, account.name, account.company) == ("account", "Acme Ltd", None)
    [lead] = await adapter.lookup("89161112233")
    assert (lead.entity, lead.name, lead.company) == ("lead", "Leo Lead", "Leads Inc")
    assert "etn=lead" in lead.url


async def test_configured_entities_and_normalized_column(make_adapter, fake, world):
    fake.entities["contacts"].columns.add("new_phonee164")
    fake.records["contacts"][world.jane]["new_phonee164"] = "+74951234567"
    adapter = make_adapter(entities={"contact": {"phone_fields": ["telephone1"], "normalized_field": "new_phonee164"}})
    before = len(fake.seen)
    [match] = await adapter.lookup("8 495 123 45 67")
    assert match.id == world.jane
    [seen] = [s for s in fake.seen[before:] if s.path == "contacts"]
    assert seen.query["$filter"] == "new_phonee164 eq '+74951234567'"


async def test_throttled_lookup_raises_with_retry_after(adapter, fake):
    await adapter.lookup("+74951234567")
    fake.throttle(times=1, retry_after=7)
    with pytest.raises(CRMError) as info:
        await adapter.lookup("+74951234567")
    assert info.value.retry_after == 7
    assert info.value.retryable
    assert info.value.code == "0x80072322"
    assert "429" in str(info.value)


async def test_one_token_for_many_requests_and_a_new_one_after_401(adapter, fake):
    for _ in range(5):
        await adapter.lookup("+74951234567")
    assert fake.token_requests == 1
    fake.revoke_tokens()  # Dynamics now answers 401 to the cached token
    assert len(await adapter.lookup("+74951234567")) == 1
    assert fake.token_requests == 2
    assert adapter.client.tokens.fetched == 2


async def test_token_is_renewed_before_it_expires(adapter, fake):
    now = [1_000_000.0]
    adapter.client.tokens.clock = lambda: now[0]
    await adapter.lookup("+74951234567")
    now[0] += 3599 - 301  # the token (3599 s) has more than the 300 s margin left
    await adapter.lookup("+74951234567")
    assert fake.token_requests == 1
    now[0] += 2  # now less than 300 s are left: renew before Dynamics refuses it
    await adapter.lookup("+74951234567")
    assert fake.token_requests == 2 and adapter.client.tokens.fetched == 2
    assert not any(s.status == 401 for s in fake.seen)


async def test_a_contact_wins_over_the_account_sharing_its_number(make_adapter, world, fake):
    fake.records["contacts"][world.jane]["telephone2"] = "+74950000001"  # Acme's switchboard
    [match] = await make_adapter().lookup("+74950000001")
    assert (match.entity, match.name) == ("contact", "Jane Doe")
    both = await make_adapter(lookup_mode="all").lookup("+74950000001")
    assert [(m.entity, m.name) for m in both] == [("contact", "Jane Doe"), ("account", "Acme Ltd")]
