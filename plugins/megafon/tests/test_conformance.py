"""The MegaFon connector passes ctid's connector conformance suite (ctid.testing.conformance)
against the fake tenant served over real HTTP."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qsl, urlencode

import pytest

from ctid.connector import SimulatedRequest
from ctid.testing.conformance import ConnectorConformance
from ctid_megafon.testing.fake_server import FakeMegafon, serve
from megafon_kit import API_KEY, TOKEN


class TestMegafonConformance(ConnectorConformance):
    plugin_name = "megafon"
    instance = "mf"
    logins = {"alice": "anna", "bob": "boris"}

    @pytest.fixture
    async def connector_config(self, nursery) -> dict:
        fake = FakeMegafon(api_key=API_KEY, users=[
            {"login": "anna", "name": "Anna", "ext": "701"}, {"login": "boris", "name": "Boris", "ext": "702"},
        ])
        url = await nursery.start(serve, fake)
        return {"plugin": "megafon", "crm_token": TOKEN, "api_url": url, "api_key": API_KEY,
                "reconcile_interval": None}

    def with_wrong_secret(self, request: SimulatedRequest) -> SimulatedRequest:
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        form["crm_token"] = "not-the-crm-token"
        return dataclasses.replace(request, body=urlencode(form).encode())
