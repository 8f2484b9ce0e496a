"""The public helpers plugins share: one phone normalisation, secret fields and comparisons,
signatures, and the fake-server scaffolding (ctid.phone, ctid.secret, ctid.testing.fakes)."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from ctid import phone
from ctid.secret import AnySecret, SecretValue, secrets_equal, sign, verify_signature
from ctid.testing.fakes import Answer, FakeRequest, FakeServer, json_answer, serving

# -- phone ------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.text(alphabet="0123456789+ ()-.", max_size=24), st.text(max_size=80),
                     st.from_regex(r"\+?[78]?9[0-9]{9}", fullmatch=True)),
       region=st.sampled_from(["RU", "KZ", "US", "DE"]))
def test_the_cached_normalisation_is_the_uncached_one(raw, region):
    for _ in range(2):  # the second answer comes from the cache
        assert phone.normalize(raw, region) == phone._normalize(raw, region)


def test_only_phone_sized_inputs_are_cached():
    long = "7" * 500
    before = phone._normalize_cached.cache_info().currsize
    assert phone.normalize(long) == long and phone.normalize(None) is None
    assert phone._normalize_cached.cache_info().currsize == before


def test_every_bundled_plugin_uses_the_cores_normalisation():
    import ctid_comagic.events
    import ctid_comagic.reports
    import ctid_dynamics.adapter
    import ctid_megafon.connector
    import ctid_megafon.events

    for module in (ctid_megafon.events, ctid_megafon.connector, ctid_dynamics.adapter, ctid_comagic.events,
                   ctid_comagic.reports):
        assert module.normalize is phone.normalize
    assert ctid_dynamics.adapter.variants is phone.variants


def test_variants_spell_a_number_as_people_type_it():
    assert phone.variants("+74951234567", "RU") == [
        "+74951234567", "74951234567", "84951234567", "4951234567", "+7 495 123-45-67", "8 (495) 123-45-67"]
    assert phone.variants("n/a 12", "RU") == ["n/a 12", "12"]


# -- secrets ----------------------------------------------------------------------------------------


class Config(BaseModel):
    token: SecretValue = Field(description="a webhook token")
    password: AnySecret | None = None


def test_secret_fields_are_redacted_checked_and_marked_in_the_schema():
    config = Config(token="0123456789", password="x")
    assert "0123456789" not in repr(config) and "0123456789" not in str(config.model_dump())
    with pytest.raises(ValidationError, match=r"at least 8 characters .*\$\{NAME\}"):
        Config(token="short")
    with pytest.raises(ValidationError, match="whitespace"):
        Config(token="0123456789\n")
    schema = Config.model_json_schema()["properties"]["token"]
    assert schema["writeOnly"] is True and schema["format"] == "password"


def test_secret_config_keys_are_redacted_by_ctid_config_show():
    from ctid.config.loader import load_config_dict
    from ctid.config.render import redacted

    settings_ = load_config_dict({"connectors": {"mf": {
        "plugin": "megafon", "crm_token": "token-0123456789", "api_url": "https://vats1.megapbx.ru",
        "api_key": "key-0123456789"}}})
    shown = redacted(settings_)["connectors"]["mf"]
    assert shown["crm_token"] == "***" and shown["api_key"] == "***"


@given(secret=st.binary(min_size=1, max_size=40), other=st.binary(max_size=40))
def test_secrets_equal_is_equality_and_never_matches_empty(secret, other):
    assert secrets_equal(secret, secret)
    assert secrets_equal(other, secret) == (other == secret)
    assert not secrets_equal(b"", b"") and not secrets_equal(None, secret) and not secrets_equal(secret, None)


@given(secret=st.text(min_size=1, max_size=30), body=st.binary(max_size=200))
def test_signatures_are_hmac_sha256_and_verify(secret, body):
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert sign(secret, body) == expected
    assert verify_signature(secret, body, f"  {expected.upper()} ")
    assert not verify_signature(secret, body + b"x", expected)
    assert not verify_signature(secret, body, None) and not verify_signature(secret, body, "")


def test_the_generic_connector_signs_the_same_way():
    from ctid.builtins.generic import sign as generic_sign

    assert generic_sign("s3cret-s3cret", b"{}") == sign("s3cret-s3cret", b"{}")


# -- fake servers -----------------------------------------------------------------------------------


class Echo(FakeServer):
    def handle(self, request: FakeRequest) -> Answer:
        return json_answer(200, {"path": request.path, "json": request.json, "form": request.form})


async def test_a_fake_records_requests_and_plays_its_fault_script():
    fake = Echo()
    fake.throttle(1, retry_after=3)
    fake.fail(1, status=502, after=1)
    fake.lose_answers(1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="http://fake") as client:
        throttled = await client.get("/a")
        passed = await client.post("/b", json={"x": 1})
        failed = await client.get("/c")
        lost = await client.post("/d", data={"k": "v"})
        fine = await client.get("/e")
    assert (throttled.status_code, throttled.headers["retry-after"]) == (429, "3")
    assert passed.json() == {"path": "/b", "json": {"x": 1}, "form": {}}
    assert failed.status_code == 502 and lost.status_code == 504 and fine.status_code == 200
    assert [(r.method, r.path, r.status) for r in fake.requests] == [
        ("GET", "/a", 429), ("POST", "/b", 200), ("GET", "/c", 502), ("POST", "/d", 504), ("GET", "/e", 200)]
    assert fake.requests[3].form == {"k": "v"}
    fake.down = True
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="http://fake") as client:
        assert (await client.get("/f")).status_code == 503


async def test_a_fake_is_served_on_a_free_port():
    fake = Echo()
    async with serving(fake) as url:
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/x?q=1")).json()["path"] == "/x"
    assert fake.requests[0].query == {"q": "1"} and fake.requests[0].at <= trio.current_time()
