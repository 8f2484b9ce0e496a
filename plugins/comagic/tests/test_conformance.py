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
