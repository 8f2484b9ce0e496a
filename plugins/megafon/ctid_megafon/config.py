"""Configuration of one MegaFon connector instance (``connectors.<instance>`` with ``plugin: megafon``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, IPvAnyNetwork, field_validator, model_validator

from ctid.connector import ConnectorConfig
from ctid.secret import AnySecret, SecretValue

REST_PATH = "/crmapi/v1"
LEGACY_PATH = "/sys/crm_api.wcgp"


class MegafonConfig(ConnectorConfig):
    """Keys of a MegaFon (ITooLabs white-label VATS) connector instance."""

    plugin: Literal["megafon"] = "megafon"
    crm_token: SecretValue = Field(
        description="The token entered in the PBX cabinet (Integrations -> CRM API -> Token); every push carries it."
    )
    api_url: str = Field(
        description="Tenant URL, e.g. https://vats123456.megapbx.ru (the API path is added unless given: "
        "/crmapi/v1 for rest, /sys/crm_api.wcgp for legacy)."
    )
    api_key: AnySecret = Field(description="The PBX's API key (X-API-KEY for rest, token= for legacy).")
    api_generation: Literal["rest", "legacy"] = Field(
        default="rest", description="'rest' = CRM API v1 (/crmapi/v1), 'legacy' = command API (crm_api.wcgp)."
    )
    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Source networks allowed to post webhooks, e.g. ['193.201.230.0/24']; empty = any.",
    )
    settle_seconds: float = Field(
        default=20, ge=0, description="Quiet time after the last leg ended before the call is closed without history."
    )
    transfer_race_seconds: float = Field(
        default=3, ge=0, le=30, description="How long a new call id from a number that is talking on another "
        "call waits for the TRANSFERRED that may name it as that call's second leg (0 = never waits)."
    )
    queue_timeout: float = Field(
        default=900, ge=1, description="Seconds before a call that never reached an agent and got no history "
        "is closed as missed (revived if an agent's phone rings later)."
    )
    contact_budget: float = Field(
        default=1.0, gt=0, le=10, description="Seconds a 'contact' push may wait for the CRM lookup."
    )
    dnd_sync: bool = Field(
        default=False, description="ctid mirrors agents' DND (and offline) presence to the PBX's DND."
    )
    recordings_dir: Path = Field(
        default=Path("recordings"), description="Where recordings are stored (relative to ctid's data_dir)."
    )
    recording_delay: float = Field(
        default=20, ge=0, description="Seconds to wait after 'history' before downloading its recording."
    )
    recording_retries: int = Field(default=3, ge=0, le=20, description="Extra download attempts.")
    recording_retry_interval: float = Field(default=60, ge=0, description="Seconds between download attempts.")
    reconcile_interval: float | None = Field(
        default=300, ge=5, description="Seconds between history pulls that recover lost webhooks (null = off)."
    )
    history_limit: int = Field(default=500, ge=1, le=10_000, description="Rows asked per history request.")
    timeout: float = Field(default=10, gt=0, description="HTTP timeout of API requests, seconds.")

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://vats123456.megapbx.ru")
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _generation_matches_url(self) -> MegafonConfig:
        if self.api_generation == "rest" and self.api_url.endswith(".wcgp"):
            raise ValueError("api_url is the legacy command API; set api_generation: legacy")
        if self.api_generation == "legacy" and self.api_url.endswith(REST_PATH):
            raise ValueError("api_url is the REST CRM API v1; set api_generation: rest")
        return self

    def endpoint(self) -> str:
        """The API base URL for the configured generation (REST base or the legacy command URL)."""
        url = self.api_url
        if self.api_generation == "rest":
            return url if url.endswith(REST_PATH) else url + REST_PATH
        return url if url.endswith(".wcgp") else url + LEGACY_PATH

    def api_host(self) -> str:
        return (urlsplit(self.api_url).hostname or "").lower()
