"""The fake Dynamics refuses what Dynamics refuses, so the adapter's tests mean something."""

from __future__ import annotations

import ssl
import uuid

import httpx
import pytest

from ctid_dynamics.client import ODATA_HEADERS


@pytest.fixture
async def api(fake, world, ca_file):
    verify = ssl.create_default_context(cafile=str(ca_file))
    async with httpx.AsyncClient(base_url=f"{fake.url}/api/data/v9.2/", verify=verify, headers=ODATA_HEADERS) as client:
        answer = await client.post(
            f"{fake.url}/{fake.tenant}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": fake.client_id,
                  "client_secret": fake.client_secret, "scope": f"{fake.url}/.default"},
        )
        client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        yield client


def error(response):
    return response.status_code, response.json()["error"]["code"]


async def test_entity_set_names_are_case_sensitive(api):
    assert error(await api.get("Contacts")) == (404, "0x8006088a")
    assert (await api.get("contacts", params={"$top": "1"})).status_code == 200


async def test_leading_wildcards_time_out(api):
    response = await api.get("contacts", params={"$filter": "endswith(telephone1,'4567')"})
    assert error(response) == (400, "0x80048573")


async def test_unencoded_plus_is_a_space(api, world):
    raw = await api.get("contacts?$select=fullname&$filter=telephone1 eq '+74957770000'")
    assert raw.json()["value"] == []
    encoded = await api.get("contacts?$select=fullname&$filter=telephone1%20eq%20'%2B74957770000'")
    assert [r["fullname"] for r in encoded.json()["value"]] == ["Shared 1"]


async def test_headers_and_token_are_required(api, fake):
    assert (await api.get("contacts", headers={"Authorization": "Bearer nope"})).status_code == 401
    response = await api.get("contacts", headers={"OData-Version": "3.0"})
    assert response.status_code == 400


async def test_binds_parties_and_states_are_checked(api, world):
    pc = f"phonecalls({uuid.uuid4()})"
    bad_bind = await api.patch(pc, json={"subject": "x", "regardingobjectid_contact_phonecall@odata.bind": f"/accounts({world.acme})"})
    assert error(bad_bind)[0] == 400
    short_form = await api.patch(pc, json={"subject": "x", "regardingobjectid_contact@odata.bind": f"/contacts({world.jane})"})
    assert error(short_form)[0] == 400
    missing = await api.patch(pc, json={"subject": "x", "regardingobjectid_contact_phonecall@odata.bind": f"/contacts({uuid.uuid4()})"})
    assert error(missing)[0] == 404
    bad_mask = await api.patch(pc, json={"subject": "x", "phonecall_activity_parties": [
        {"partyid_contact@odata.bind": f"/contacts({world.jane})", "participationtypemask": 9}]})
    assert error(bad_mask)[0] == 400
    created = await api.patch(pc, headers={"If-None-Match": "*"}, json={"subject": "x", "statecode": 1, "statuscode": 4})
    assert created.status_code == 204
    again = await api.patch(pc, headers={"If-None-Match": "*"}, json={"subject": "y"})
    assert again.status_code == 412
    state = (await api.get(pc, params={"$select": "statecode,statuscode"})).json()
    assert (state["statecode"], state["statuscode"]) == (0, 1)  # statecode on create is ignored
    assert error(await api.patch(pc, json={"statecode": 1, "statuscode": 3}))[0] == 400  # 3 belongs to state 2
    assert (await api.patch(pc, json={"statecode": 1, "statuscode": 4})).status_code == 204
    assert error(await api.patch(pc, json={"subject": "late"}))[0] == 400  # closed: read-only
    assert error(await api.patch(pc, json={"statecode": 1, "statuscode": 4}))[0] == 400  # second close
    assert (await api.patch(pc, json={"statecode": 0, "statuscode": 1})).status_code == 204  # reopen
    assert error(await api.patch(f"tasks({uuid.uuid4()})", headers={"If-Match": "*"}, json={"subject": "x"}))[0] == 404


async def test_throttle_and_failures_are_served_in_order(api, fake):
    fake.throttle(times=1, retry_after=4)
    fake.fail(times=1, status=502)
    first = await api.get("contacts")
    assert first.status_code == 429 and first.headers["Retry-After"] == "4"
    assert error(first) == (429, "0x80072322")
    assert (await api.get("contacts")).status_code == 502
    assert (await api.get("contacts")).status_code == 200


async def test_batch_needs_multipart_parts_of_application_http(api, world):
    assert error(await api.post("$batch", content=b"{}", headers={"Content-Type": "application/json"}))[0] == 400
    body = (b"--b1\r\nContent-Type: text/plain\r\n\r\nGET contacts HTTP/1.1\r\n\r\n\r\n--b1--\r\n")
    assert error(await api.post("$batch", content=body, headers={"Content-Type": 'multipart/mixed; boundary="b1"'}))[0] == 400
    good = (f"--b1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            f"GET {api.base_url}contacts?$select=fullname&$top=1 HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n--b1--\r\n").encode()
    answer = await api.post("$batch", content=good, headers={"Content-Type": 'multipart/mixed; boundary="b1"'})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_")
    assert b"HTTP/1.1 200 OK" in answer.content


async def test_max_lengths_are_enforced_with_the_documented_error(api, world):
    task = f"tasks({uuid.uuid4()})"
    response = await api.patch(task, headers={"If-None-Match": "*"}, json={"subject": "x" * 201})
    assert error(response) == (400, "0x80044331")
    assert response.json()["error"]["message"] == (
        "A validation error occurred. The length of the 'subject' attribute of the 'task' entity exceeded "
        "the maximum allowed length of '200'.")
    too_long = await api.patch(task, headers={"If-None-Match": "*"}, json={"subject": "x", "description": "d" * 2001})
    assert error(too_long) == (400, "0x80044331") and "'description' attribute of the 'task'" in too_long.json()["error"]["message"]
    assert (await api.patch(task, headers={"If-None-Match": "*"},
                            json={"subject": "x" * 200, "description": "d" * 2000})).status_code == 204
    call = f"phonecalls({uuid.uuid4()})"
    assert error(await api.patch(call, json={"subject": "s" * 201}))[1] == "0x80044331"
    assert error(await api.patch(call, json={"subject": "s", "phonenumber": "7" * 201}))[1] == "0x80044331"
    phone = await api.patch(f"contacts({world.jane})", headers={"If-Match": "*"}, json={"telephone1": "1" * 51})
    assert error(phone) == (400, "0x80044331")


@pytest.mark.parametrize(("column", "value", "edm"), [
    ("directioncode", "false", "Edm.Boolean"),
    ("directioncode", 0, "Edm.Boolean"),
    ("actualstart", "2026-03-02 09:30", "Edm.DateTimeOffset"),
    ("actualend", "2026-03-02T09:30:00", "Edm.DateTimeOffset"),  # no offset
    ("actualend", "2026-02-30T09:30:00Z", "Edm.DateTimeOffset"),
    ("actualdurationminutes", "3", "Edm.Int32"),
    ("actualdurationminutes", True, "Edm.Int32"),
    ("subject", 5, "Edm.String"),
])
async def test_boolean_datetime_and_number_types_are_enforced(api, column, value, edm):
    response = await api.patch(f"phonecalls({uuid.uuid4()})", json={"subject": "x", column: value})
    assert response.status_code == 400
    assert f"to the expected type '{edm}'" in response.json()["error"]["message"]


async def test_well_typed_values_are_accepted(api):
    response = await api.patch(f"phonecalls({uuid.uuid4()})", json={
        "subject": "x", "directioncode": False, "actualstart": "2026-03-02T09:30:00.000Z",
        "actualend": "2026-03-02T12:30:00+03:00", "actualdurationminutes": 3, "description": None})
    assert response.status_code == 204
