"""The Avaya connector passes ctid's connector conformance suite (ctid.testing.conformance): the
fake IP Office's DevLink3 server, simulate-call over the simulation sockets, and the TAPI backend
through ``ctid avaya tapi-bridge`` serving the fake TAPI boundary over real HTTP."""

from __future__ import annotations

import pytest

from avaya_kit import knows
from ctid.model import Call, CallState
from ctid.testing.conformance import ConnectorConformance, wait_for
from ctid.testing.daemon import free_port
from ctid_avaya import simulate as s
from ctid_avaya.control.tapi import TapiEngine
from ctid_avaya.control.tapi_bridge import serve
from ctid_avaya.testing.fake_ipo import FakeDevLink3
from ctid_avaya.testing.fake_tapi import FakeTapi

TOKEN = "conformance-bridge-token-01"


class TestAvayaConformance(ConnectorConformance):
    plugin_name = "avaya"
    instance = "ipo"

    @pytest.fixture
    async def connector_config(self, nursery) -> dict:
        # pytest-trio binds fixtures to another instance than the test's: the fakes live on the class
        cls = type(self)
        cls.unit = FakeDevLink3({"ctid": "s3cret-pass"})
        port = await nursery.start(cls.unit.serve)
        cls.tapi = FakeTapi({"101": "Alice", "102": "Bob"})
        cls.engine = TapiEngine(cls.tapi)
        bridge = free_port()
        await nursery.start(serve, cls.engine, "127.0.0.1", bridge, TOKEN)
        return {
            "plugin": "avaya", "host": "127.0.0.1",
            "devlink3": {"transport": "tcp", "port": port, "username": "ctid", "password": "s3cret-pass"},
            "smdr": {"mode": "listen", "listen": f"127.0.0.1:{free_port()}"},
            "hunt_groups": {"sales": "sales"},
            "control": [{"backend": "tapi", "mode": "bridge", "bridge_url": f"http://127.0.0.1:{bridge}",
                         "bridge_token": TOKEN}],
            "simulation": {"devlink3_port": free_port(), "smdr_port": free_port()},
        }

    async def active_call(self, app, connector) -> Call:
        """A talking call on alice's extension, seen by DevLink3 and present on her TAPI line."""
        await self.unit.wait_subscribed()
        node = s.node_of("127.0.0.1")
        a_end, b_end = s.end_id(node, 9100), s.end_id(node, 9102)
        trunk = s.party(a_end, inbound=True, state=2, cls=5, cli="79161230099", public=1)
        await self.unit.send(s.detail(node, 91, trunk, s.party(b_end, inbound=False, state=2, cls=10, identity="101")))
        handle = self.tapi.offer("101", "79161230099")
        await knows(self.engine, "101", handle)

        def talking():
            return [c for c in self._calls(app) if c.state is CallState.TALKING]

        return (await wait_for(talking, "the DevLink3 call to be talking"))[0]
