"""ctid's REST API as the launcher uses it (httpx on trio): sign-in, token refresh, the agent's
status and presence lease, one-time panel codes. docs/call-model.md and the OpenAPI document
(``/openapi.json``) describe the routes."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """ctid answered with an error: ``status`` and its stable ``error_id``."""

    def __init__(self, status: int, error_id: str, message: str):
        super().__init__(f"{message} ({error_id}, HTTP {status})")
        self.status, self.error_id, self.message = status, error_id, message


class Unreachable(Exception):
    """No answer from ctid (network, DNS, TLS, timeout, a proxy's 5xx page)."""


class Api:
    def __init__(self, server: str, token: str | None = None, *, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.server = server.rstrip("/")
        self.token = token
        self._client = httpx.AsyncClient(base_url=self.server, timeout=timeout, transport=transport,
                                         headers={"User-Agent": "ctid-launcher"})

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        try:
            response = await self._client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise Unreachable(str(exc) or type(exc).__name__) from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            if isinstance(data, dict) and "error" in data:
                raise ApiError(response.status_code, str(data["error"]), str(data.get("message", "")))
            if response.status_code >= 500:
                raise Unreachable(f"HTTP {response.status_code} from {self.server}")
            raise ApiError(response.status_code, "http_error", f"HTTP {response.status_code}")
        return data

    async def login(self, username: str, password: str) -> dict[str, Any]:
        return await self._call("POST", "/api/auth/token", {"username": username, "password": password}, auth=False)

    async def refresh(self) -> dict[str, Any]:
        return await self._call("POST", "/api/auth/refresh")

    async def me(self) -> dict[str, Any]:
        return await self._call("GET", "/api/me")

    async def agent(self, agent_id: str) -> dict[str, Any]:
        for agent in (await self._call("GET", "/api/agents"))["items"]:
            if agent["id"] == agent_id:
                return agent
        raise ApiError(404, "agent_not_found", f"no agent {agent_id!r}")

    async def snapshot(self) -> dict[str, Any]:
        """Live calls of this user, agents and open tasks (what a hub client catches up with)."""
        return await self._call("GET", "/api/snapshot")

    async def set_status(self, agent_id: str, status: str, source: str,
                         lease_seconds: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status, "source": source}
        if lease_seconds:
            body["lease_seconds"] = lease_seconds
        return await self._call("PUT", f"/api/agents/{agent_id}/status", body)

    async def renew_lease(self, agent_id: str, lease_seconds: int) -> dict[str, Any]:
        return await self._call("POST", f"/api/agents/{agent_id}/lease", {"lease_seconds": lease_seconds})

    async def end_lease(self, agent_id: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/api/agents/{agent_id}/lease")

    async def panel_url(self) -> str:
        """A panel URL that signs the browser in once (``#code=``), never carrying the token."""
        return (await self._call("POST", "/api/auth/handoff"))["panel_url"]

    async def health(self) -> int:
        try:
            response = await self._client.get("/healthz")
        except httpx.HTTPError as exc:
            raise Unreachable(str(exc) or type(exc).__name__) from exc
        return response.status_code
