"""The JSON-RPC client against the fake account: session tokens, errors by mnemonic, points limits."""

from __future__ import annotations

import httpx
import pytest
import trio

from comagic_kit import make_config, transport
from ctid.errors import PBXError
from ctid_comagic.client import RpcClient


class Wall:
    """A settable unix clock shared by the client and the fake (session tokens carry expire_at)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def session_client(fake):
    wall = Wall()
    fake.wall = wall
    client = RpcClient(make_config(fake, api_key=None, login=fake.login, password=fake.password),
                       transport=transport(fake), clock=wall)
    yield client, wall
    await client.aclose()


async def test_session_tokens_are_renewed_before_they_expire(fake, session_client):
    client, wall = session_client
    await client.account()
    await client.account()
    assert [r.method for r in fake.received(api="data")] == ["login.user", "get.account", "get.account"]
    wall.now += 3600 - 200  # inside the renewal margin (300 s): a new session before the old one lapses
    await client.account()
    assert [r.method for r in fake.received(api="data")][-2:] == ["login.user", "get.account"]
    assert not [r for r in fake.requests if r.error]
    assert client.app_id == 4242


async def test_a_session_ended_early_logs_in_again_once(fake, session_client):
    client, _ = session_client
    await client.account()
    fake.tokens.clear()  # the platform forgot the session
    await client.account()
    assert [(r.method, r.error) for r in fake.received(api="data")] == [
        ("login.user", None), ("get.account", None), ("get.account", "access_token_invalid"),
        ("login.user", None), ("get.account", None)]


async def test_wrong_password_and_key_are_clear_errors(fake):
    for config in (make_config(fake, api_key=None, login="ctid-api", password="wrong-password"),
                   make_config(fake, api_key="not-the-key-0000")):
        client = RpcClient(config, transport=transport(fake))
        with pytest.raises(PBXError) as caught:
            await client.account()
        await client.aclose()
        assert caught.value.error_id == "pbx_unauthorized" and not caught.value.retryable
    assert "[auth_error]" in str(caught.value) or "[access_token_invalid]" in str(caught.value)


async def test_errors_are_read_from_the_mnemonic(fake):
    client = RpcClient(make_config(fake), transport=transport(fake))
    with pytest.raises(PBXError) as caught:
        await client.control("hold.call", "12345", contact_message={"type": "tts", "value": "x"})
    assert caught.value.error_id == "pbx_refused:call_session_not_found"
    assert caught.value.status == 409  # a refusal, not an upstream failure
    assert str(caught.value) == ("CoMagic hold.call: the call no longer exists on the PBX (field call_session_id) "
                                 "[call_session_not_found]")
    fake.whitelisted = False
    with pytest.raises(PBXError) as caught:
        await client.account()
    assert caught.value.error_id == "pbx_forbidden" and "whitelist" in str(caught.value)
    fake.whitelisted, fake.call_control = True, False
    with pytest.raises(PBXError) as caught:
        await client.control("release.call", "1")
    assert caught.value.error_id == "pbx_refused:component_disabled" and "tariff" in str(caught.value)
    await client.aclose()


async def test_points_are_respected_commands_fail_fast_and_background_work_waits(fake, autojump_clock):
    client = RpcClient(make_config(fake), transport=transport(fake))
    fake.budgets["data"].minute_limit = 2
    await client.account()
    await client.account()  # the answer says: 0 points left this minute
    sent = len(fake.requests)
    with pytest.raises(PBXError) as caught:
        await client.data("get.account", wait=False)
    assert caught.value.error_id == "pbx_throttled" and caught.value.retry_after > 0 and caught.value.status == 429
    assert len(fake.requests) == sent  # not even sent: never hammer a spent budget
    started = trio.current_time()
    await client.data("get.account", wait=True)  # background work sleeps until the minute resets
    assert trio.current_time() - started >= 59
    # the platform's own limit_exceeded also stops sending for a minute
    fake.budgets["call"].minute_limit = 0
    with pytest.raises(PBXError) as caught:
        await client.control("release.call", "1")
    assert caught.value.code == "limit_exceeded"
    with pytest.raises(PBXError):
        await client.control("release.call", "1")
    assert [r.error for r in fake.received("release.call")] == ["limit_exceeded"]
    await client.aclose()


async def test_fake_refuses_batches_notifications_and_garbage(fake):
    async with httpx.AsyncClient(transport=transport(fake), base_url=fake.base_url) as http:
        batch = (await http.post("/v4.0", json=[{"jsonrpc": "2.0", "id": 1, "method": "list.calls"}])).json()
        assert batch["error"]["data"]["mnemonic"] == "batch_opreations_not_supported"
        note = (await http.post("/v4.0", json={"jsonrpc": "2.0", "method": "list.calls", "params": {}})).json()
        assert note["error"]["data"]["mnemonic"] == "notifications_not_supported"
        assert (await http.post("/v4.0", content=b"{")).json()["error"]["code"] == -32700
    client = RpcClient(make_config(fake, call_api_url=fake.base_url + "/nowhere"), transport=transport(fake))
    with pytest.raises(PBXError) as caught:
        await client.control("release.call", "1")
    assert caught.value.error_id == "pbx_bad_answer"
    await client.aclose()


@pytest.mark.parametrize("answer", [{"jsonrpc": "2.0", "id": 1, "result": [1, 2, 3]},
                                    {"jsonrpc": "2.0", "id": 1, "result": None},
                                    {"jsonrpc": "2.0", "id": 1, "error": "boom"}])
async def test_a_malformed_answer_is_a_bad_answer_not_a_refusal(answer):
    """A JSON-RPC envelope whose result is not an object and which carries no error object is the
    platform (or a proxy) answering nonsense: ``pbx_bad_answer``, not ``pbx_refused:unknown_error``."""
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    client = RpcClient(make_config(), transport=httpx.MockTransport(handler))
    with pytest.raises(PBXError) as caught:
        await client.control("hold.call", "1")
    assert caught.value.error_id == "pbx_bad_answer"
    assert "hold.call" in str(caught.value) and "[unknown_error]" not in str(caught.value)
    await client.aclose()
