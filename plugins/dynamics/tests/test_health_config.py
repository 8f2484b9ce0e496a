"""health(), configuration validation, plugin registration, NTLM wiring."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy
import pytest
from pydantic import ValidationError

import ctid.hookspecs
from ctid_dynamics.adapter import DynamicsAdapter
from ctid_dynamics.client import DynamicsClient
from ctid_dynamics.config import DynamicsConfig


async def test_health_ok(adapter, world, fake):
    health = await adapter.health()
    assert health.ok, health
    assert health.checks["token"] == "ok"
    assert health.checks["whoami"] == f"ok: user {fake.app_user}"
    assert {health.checks[name] for name in ("contact", "account", "lead", "phonecall", "task", "annotation")} == {"ok"}


async def test_health_wrong_secret(make_adapter):
    health = await make_adapter(auth={"client_secret": "wrong"}).health()
    assert not health.ok
    assert "invalid_client" in health.detail and "AADSTS7000215" in health.detail
    assert "whoami" not in health.checks


async def test_health_wrong_tenant(make_adapter, fake):
    health = await make_adapter(auth={"tenant": "nope", "authority": f"{fake.url}/nope"}).health()
    assert not health.ok
    assert health.detail.startswith(f"token authority {fake.url}/nope rejected")


async def test_health_wrong_url(make_adapter, fake):
    # Entra refuses a token for an organization it does not know ...
    health = await make_adapter(url="https://127.0.0.1:9").health()
    assert not health.ok and "AADSTS500011" in health.detail
    # ... and with a scope that works, the unreachable organization is named.
    health = await make_adapter(url="https://127.0.0.1:9", auth={"scope": f"{fake.url}/.default"}).health()
    assert not health.ok
    assert health.detail.startswith("cannot reach Dynamics at https://127.0.0.1:9")
    assert health.checks["token"] == "ok"


async def test_health_wrong_org_path_or_api_version(make_adapter, fake):
    scope = {"scope": f"{fake.url}/.default"}
    health = await make_adapter(url=f"{fake.url}/WRONGORG", auth=scope).health()
    assert not health.ok and "answered 404 to GET WhoAmI" in health.detail
    assert f"is {fake.url}/WRONGORG the organization URL" in health.detail
    health = await make_adapter(api_version="8.2").health()
    assert not health.ok and "Resource not found for the segment 'v8.2'" in health.detail
    assert "Web API v8.2" in health.detail


async def test_health_names_an_unreadable_entity(make_adapter):
    adapter = make_adapter(entities={
        "contact": {"phone_fields": ["telephone1"]},
        "incident": {"phone_fields": ["new_phone"], "entity_set": "Incidents", "id_field": "incidentid", "name_field": "title"},
    })
    health = await adapter.health()
    assert not health.ok
    assert health.checks["contact"] == "ok"
    assert "Resource not found for the segment 'Incidents'" in health.checks["incident"]
    assert health.detail.startswith("incident:")


async def test_health_when_dynamics_is_down(adapter, fake):
    fake.down = True
    health = await adapter.health()
    assert not health.ok and "503" in health.detail


def base(**overrides):
    data = {"plugin": "dynamics", "url": "https://contoso.crm4.dynamics.com/",
            "auth": {"type": "client_credentials", "tenant": "t", "client_id": "c", "client_secret": "topsecret-value"}}
    data.update(overrides)
    return data


def test_config_defaults():
    config = DynamicsConfig.model_validate(base())
    assert config.api_url == "https://contoso.crm4.dynamics.com/api/data/v9.2"
    assert config.entities["contact"].entity_set == "contacts"
    assert config.entities["contact"].phone_fields[:2] == ["telephone1", "mobilephone"]
    assert config.entities["lead"].company_field == "companyname"
    assert config.callback_task.owner_rule == ["contact_owner", "agent", "group_manager"]
    assert config.auth.authority_url() == "https://login.microsoftonline.com/t"
    assert "topsecret" not in repr(config) and "topsecret" not in config.model_dump_json()


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"url": "contoso.crm.dynamics.com"}, "http(s) URL"),
    ({"url": "https://x/api/data/v9.2"}, "without /api/data"),
    ({"api_version": "v9"}, "pattern"),
    ({"auth": {"type": "kerberos"}}, "does not match any of the expected tags"),
    ({"auth": {"type": "client_credentials", "tenant": "t", "client_id": "c"}}, "exactly one of client_secret"),
    ({"auth": {"type": "adfs", "authority": "https://adfs.example.com", "client_id": "c", "client_secret": "s"}}, "ending in /adfs"),
    ({"auth": {"type": "adfs", "authority": "https://adfs.example.com/adfs", "client_id": "c"}}, "client_secret, or username"),
    ({"entities": {"incident": {"phone_fields": ["x"]}}}, "custom entity needs"),
    ({"recording": {"mode": "url_field"}}, "needs url_field"),
    ({"unknown": 1}, "Extra inputs are not permitted"),
    ({"ca_bundle": "/nonexistent/ca.pem"}, "Path does not point to a file"),
    ({"auth": {"type": "client_credentials", "tenant": "t", "client_id": "c", "certificate": "/nonexistent.pem",
               "thumbprint": "AB"}}, "Path does not point to a file"),
])
def test_config_errors(overrides, fragment):
    with pytest.raises(ValidationError) as info:
        DynamicsConfig.model_validate(base(**overrides))
    assert fragment in str(info.value)


async def test_ntlm_auth_uses_windows_credentials_and_no_token():
    from httpx_ntlm import HttpNtlmAuth

    config = DynamicsConfig.model_validate(base(
        url="https://crm.example.local/ORG", api_version="8.2",
        auth={"type": "ntlm", "domain": "EXAMPLE", "username": "svc-ctid", "password": "pw"},
    ))
    client = DynamicsClient(config)
    try:
        assert client.tokens is None
        assert isinstance(client._http.auth, HttpNtlmAuth)
        assert client._http.auth.username == "EXAMPLE\\svc-ctid"
        assert client.url("contacts") == "https://crm.example.local/ORG/api/data/v8.2/contacts"
    finally:
        await client.aclose()


def test_entry_point_registers_the_adapter():
    [entry] = [e for e in entry_points(group="ctid") if e.name == "dynamics"]
    module = entry.load()
    manager = pluggy.PluginManager("ctid")
    manager.add_hookspecs(ctid.hookspecs)
    manager.register(module)
    manager.check_pending()
    assert manager.hook.ctid_register_crms() == [[DynamicsAdapter]]
    assert DynamicsAdapter.plugin_name == "dynamics" and DynamicsAdapter.Config is DynamicsConfig


@pytest.mark.parametrize("credential", [
    {"client_secret": "s3cret"},
    {"username": "EXAMPLE\\svc-ctid", "password": "service-pw"},
])
async def test_adfs_oauth(make_adapter, fake, credential):
    adapter = make_adapter(auth={"type": "adfs", "authority": f"{fake.url}/adfs", "client_id": fake.client_id, **credential})
    health = await adapter.health()
    assert health.ok, health.detail
    assert len(await adapter.lookup("+74951234567")) == 1
    assert fake.token_requests == 1


async def test_adfs_service_account_token_is_renewed(make_adapter, fake):
    adapter = make_adapter(auth={"type": "adfs", "authority": f"{fake.url}/adfs", "client_id": fake.client_id,
                                 "username": "EXAMPLE\\svc-ctid", "password": "service-pw"})
    now = [1_000_000.0]
    adapter.client.tokens.clock = lambda: now[0]
    await adapter.lookup("+74951234567")
    now[0] += 3400
    await adapter.lookup("+74951234567")
    assert fake.token_requests == 2
    fake.revoke_tokens()
    await adapter.lookup("+74951234567")
    assert fake.token_requests == 3


async def test_adfs_wrong_password(make_adapter, fake):
    adapter = make_adapter(auth={"type": "adfs", "authority": f"{fake.url}/adfs", "client_id": fake.client_id,
                                 "username": "EXAMPLE\\svc-ctid", "password": "nope"})
    health = await adapter.health()
    assert not health.ok and "invalid_grant" in health.detail and "MSIS9659" in health.detail


async def test_ntlm_against_the_fake(make_adapter, fake):
    adapter = make_adapter(auth={"type": "ntlm", "domain": "EXAMPLE", "username": "svc-ctid", "password": "service-pw"})
    health = await adapter.health()
    assert health.ok, health.detail
    assert "token" not in health.checks
    [match] = await adapter.lookup("+74951234567")
    assert match.name == "Jane Doe"
    assert fake.token_requests == 0 and fake.ntlm_handshakes >= 1


async def test_ntlm_wrong_password(make_adapter):
    adapter = make_adapter(auth={"type": "ntlm", "domain": "EXAMPLE", "username": "svc-ctid", "password": "nope"})
    health = await adapter.health()
    assert not health.ok and "401" in health.detail and "credentials in crm.auth were refused" in health.detail


def _certificate(tmp_path):
    """A self-signed certificate and its private key (PEM), as an admin would upload to Entra."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ctid")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    key_file = tmp_path / "ctid-app.key.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert.public_bytes(serialization.Encoding.PEM), key_file


async def test_client_certificate_credential(make_adapter, fake, tmp_path):
    cert_pem, key_file = _certificate(tmp_path)
    thumbprint = fake.trust_certificate(cert_pem)
    auth = {"client_secret": None, "certificate": str(key_file), "thumbprint": thumbprint}
    health = await make_adapter(auth=auth).health()
    assert health.ok, health.detail
    (tmp_path / "other").mkdir()
    _, other_key = _certificate(tmp_path / "other")  # a key that does not belong to the registered certificate
    health = await make_adapter(auth={**auth, "certificate": str(other_key)}).health()
    assert not health.ok and "AADSTS700027" in health.detail


@pytest.mark.parametrize(("phonecall", "fragment"), [
    ({"missed_statuscode": 4}, "4 is not a status reason of the state missed_status: cancelled closes with; use 3 (Canceled)"),
    ({"missed_statuscode": 1}, "1 is not a status reason"),
    ({"missed_status": "completed", "missed_statuscode": 3}, "use 2 (Made), 4 (Received)"),
    ({"missed_status": "completed", "missed_statuscode": 5}, "or a custom status reason of that state (>= 100000000)"),
])
def test_missed_statuscode_must_belong_to_the_missed_state(phonecall, fragment):
    from ctid.config.loader import load_config_dict
    from ctid.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config_dict({"database": {"url": "sqlite:///ctid.db"}, "crm": base(phonecall=phonecall)})
    assert info.value.path == "crm.phonecall.missed_statuscode"
    assert fragment in str(info.value)


@pytest.mark.parametrize(("phonecall", "state"), [
    ({"missed_statuscode": 3}, (2, 3)),
    ({"missed_status": "completed", "missed_statuscode": 2}, (1, 2)),
    ({"missed_status": "completed", "missed_statuscode": 100000001}, (1, 100000001)),
])
def test_valid_missed_statuscodes(phonecall, state):
    from ctid.model import Outcome
    from ctid_dynamics.payloads import phonecall_state
    from ctid_dynamics.testing.factories import make_call

    config = DynamicsConfig.model_validate(base(phonecall=phonecall))
    assert phonecall_state(make_call("x", "+74951234567", outcome=Outcome.MISSED), config) == state


def test_default_owner_must_be_a_systemuserid():
    with pytest.raises(ValidationError) as info:
        DynamicsConfig.model_validate(base(callback_task={"default_owner": "mary@contoso.example"}))
    assert "must be a systemuserid (a GUID)" in str(info.value)
    config = DynamicsConfig.model_validate(base(callback_task={"default_owner": "{6F9A1C2E-0000-4000-8000-000000000001}"}))
    assert config.callback_task.default_owner == "6f9a1c2e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(("managers", "fragment"), [
    ({"sales": "marry"}, "crm.callback_task.group_managers.sales: unknown agent 'marry'; the agents are alice, bob, mary, nocrm"),
    ({"support": "nocrm"}, "crm.callback_task.group_managers.support: agent 'nocrm' has no crm_user"),
])
def test_group_managers_must_be_agents_with_a_crm_user(world, managers, fragment):
    from ctid.errors import ConfigError
    from ctid.services import Services

    config = DynamicsConfig.model_validate(base(callback_task={"group_managers": managers}))
    with pytest.raises(ConfigError) as info:
        DynamicsAdapter(config, Services(directory=world.directory))
    assert str(info.value).startswith(fragment)
