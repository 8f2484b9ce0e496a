"""/openapi.json documents the hub's negotiate endpoint (the WebSocket itself is not an OpenAPI operation)."""

from __future__ import annotations

import ctid.web.app  # noqa: F401 - registers the app's route documents
from ctid.web.openapi import openapi_document


def test_hub_negotiate_is_documented() -> None:
    spec = openapi_document({})
    op = spec["paths"]["/hub/negotiate"]["post"]
    assert op["tags"] == ["realtime"]
    assert op["security"] == [{"bearer": []}] and "401" in op["responses"]
    assert [p["name"] for p in op["parameters"]] == ["negotiateVersion", "access_token"]
    body = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"connectionId", "connectionToken", "negotiateVersion", "availableTransports"} <= set(body["properties"])
