"""The CoMagic connector passes ctid's connector conformance suite (ctid.testing.conformance) against the
fake account served over real HTTP."""

from __future__ import annotations

import dataclasses

import pytest
import trio

from comagic_kit import API_KEY, BODY_SECRET, INSTANCE, PATH_SECRET, employee_rows
from ctid.connector import SimulatedRequest
from ctid.model import Call, CallState
from ctid.testing.conformance import ConnectorConformance
from ctid_comagic.testing.fake_server import FakeComagic, serve


class TestComagicConformance(ConnectorConformance):
    plugin_name = "comagic"
    instance = INSTANCE
    logins = {"alice": "101", "bob": "102"}
    fake: FakeComagic

    @pytest.fixture
    async def connector_config(self, nursery) -> dict:
        fake = type(self).fake = FakeComagic(  # active_call() reaches it (fixtures get another instance)api_key=API_KEY, instance=INSTANCE, webhook_secret=PATH_SECRET,
                                body_secret=BODY_SECRET, employees=employee_rows())
        url = await nursery.start(serve, fake)
        return {"plugin": "comagic", "api_key": API_KEY, "webhook_secret": PATH_SECRET, "body_secret": BODY_SECRET,
                "call_api_url": f"{url}/v4.0", "data_api_url": f"{url}/v2.0", "media_url": url,
                "reconcile_interval": None, "facts_delay": 3600}

    def with_wrong_secret(self, request: SimulatedRequest) -> SimulatedRequest:
        return dataclasses.replace(request, body=request.body.replace(BODY_SECRET.encode(), b"not-the-body-secret"))

    async def active_call(self, app, connector) -> Call:
        """A call the fake account knows (the Call API acts on its sessions): rung and answered on the phone."""
        session = self.fake.incoming("79161234599", [101])
        self.fake.answer(session, 101)
        await self.fake.deliver(app.client)
        with trio.fail_after(5):
            while True:
                call = next((c for c in self._calls(app) if c.pbx_call_id == str(session)), None)
                if call is not None and call.state is CallState.TALKING:
                    return call
                await trio.sleep(0.01)

    async def test_consultative_transfer_through_the_hub(self, ctid_daemon, ctid_hub) -> None:
        """The hub's Transfer(callId, to, "consult"), then CancelTransfer / CompleteTransfer, reach the Call API."""
        from ctid.hub.client import HubError

        call = await self.active_call(ctid_daemon, self.connector(ctid_daemon))
        async with ctid_hub("alice") as hub:
            snapshot = await hub.invoke("Snapshot")
            assert "consult_transfer" in snapshot["connectors"][INSTANCE]
            with pytest.raises(HubError) as caught:
                await hub.invoke("CancelTransfer", call.id)
            assert str(caught.value).startswith("no_transfer_in_progress:")
            assert await hub.invoke("Transfer", call.id, "bob", "consult") == {
                "status": "consulting", "call_id": call.id, "to": "bob"}
            assert (await hub.invoke("CancelTransfer", call.id))["status"] == "cancelled"
            await hub.invoke("Transfer", call.id, "bob", "consult")
            assert await hub.invoke("CompleteTransfer", call.id) == {"status": "ok", "call_id": call.id, "to": "bob"}
        assert [r.method for r in self.fake.received(api="call")] == [
            "hold.call", "make.call", "restore.talk", "hold.call", "make.call", "transfer.talk"]
        await self.fake.deliver(ctid_daemon.client)
        moved = ctid_daemon.daemon.switchboard.calls[call.id]
        assert (moved.agent, moved.transferred_from) == ("bob", "alice")
