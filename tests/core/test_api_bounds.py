"""What the REST API takes agrees with /openapi.json (schemathesis found the server stricter than its
document): a JSON-Schema integer may be written ``60.0``; query numbers are ASCII digits; the
document states the bounds and lengths the server checks."""

from __future__ import annotations

from ctid.testing.daemon import running_daemon

from .conftest import API_KEY

ADMIN = {"Authorization": f"Bearer {API_KEY}"}


async def test_lease_seconds_written_as_an_integral_float_is_taken(config):
    async with running_daemon(config) as app:
        for lease in (60.0, 60, 3600.0):
            answer = await app.client.put("/api/agents/alice/status", headers=ADMIN,
                                          json={"status": "available", "source": "launcher", "lease_seconds": lease})
            assert answer.status_code == 200, (lease, answer.text)
            answer = await app.client.post("/api/agents/alice/lease", headers=ADMIN, json={"lease_seconds": lease})
            assert answer.status_code == 200, (lease, answer.text)
        for lease in (60.5, 4.0, 3601.0, 1e300, True, "60"):
            answer = await app.client.post("/api/agents/alice/lease", headers=ADMIN, json={"lease_seconds": lease})
            assert answer.status_code == 400 and answer.json()["error"] == "bad_lease", (lease, answer.text)


async def test_query_numbers_are_ascii_digits_within_the_documented_bounds(config):
    async with running_daemon(config) as app:
        for limit in ("0", "1001", "-1", " 5", "1_0", "٣", "³", "5.0"):
            answer = await app.client.get("/api/calls", params={"limit": limit}, headers=ADMIN)
            assert answer.status_code == 400 and answer.json()["error"] == "bad_query", (limit, answer.text)
        assert (await app.client.get("/api/calls?limit=1000", headers=ADMIN)).status_code == 200
        document = (await app.client.get("/openapi.json")).json()["paths"]
        limit = next(p for p in document["/api/calls"]["get"]["parameters"] if p["name"] == "limit")["schema"]
        assert (limit["minimum"], limit["maximum"]) == (1, 1000)
        assert "400" in document["/api/tasks"]["get"]["responses"]
        number = document["/api/calls"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert number["properties"]["number"]["minLength"] == 1
