"""Configuration of one CoMagic / UIS connector instance (``connectors.<instance>`` with ``plugin: comagic``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, field_validator, model_validator

from ctid.connector import ConnectorConfig

Brand = Literal["comagic", "uiscom", "callgear", "novofon"]

#: API hosts per brand (reference §2.1, §3.1). Credentials are not interchangeable between them.
HOSTS: dict[str, dict[str, str]] = {
    "comagic": {"call": "https://callapi.comagic.ru/v4.0", "data": "https://dataapi.comagic.ru/v2.0",
                "media": "https://app.comagic.ru"},
    "uiscom": {"call": "https://callapi.uiscom.ru/v4.0", "data": "https://dataapi.uiscom.ru/v2.0",
               "media": "https://app.uiscom.ru"},
    # [guess] (reference: [peer]): olegstan/uiscom-api-client names these CallGear hosts; the media host is inferred.
    "callgear": {"call": "https://callapi.callgear.com/v4.0", "data": "https://dataapi.callgear.com/v2.0",
                 "media": "https://app.callgear.com"},
    # [guess] (reference: [peer]): Novofon's JSON-RPC hosts from a pilot doc; the media host is inferred.
    "novofon": {"call": "https://callapi-jsonrpc.novofon.ru/v4.0", "data": "https://dataapi-jsonrpc.novofon.ru/v2.0",
                "media": "https://app.novofon.ru"},
}


class Message(BaseModel):
    """A Call API message: a media file id or a TTS text (``{type, value}``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["media", "tts"] = Field(default="tts", description="tts: value is text to speak; media: "
                                          "value is the id of a media file uploaded in the cabinet.")
    value: str = Field(min_length=1, max_length=1000, description="The text, or the media file id.")


def _url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value.strip().rstrip("/")


class ComagicConfig(ConnectorConfig):
    """Keys of a CoMagic / UIS / CallGear / Novofon connector instance."""

    plugin: Literal["comagic"] = "comagic"
    brand: Brand = Field(default="comagic", description="Which platform host the account lives on: comagic, "
                         "uiscom, callgear or novofon (credentials of one do not work on another).")
    call_api_url: str | None = Field(default=None, description="Call API base URL; default from brand.")
    data_api_url: str | None = Field(default=None, description="Data API base URL; default from brand.")
    media_url: str | None = Field(default=None, description="Base URL of recording links built from hashes; "
                                  "default from brand.")
    api_key: SecretStr | None = Field(default=None, description="A permanent or expiring API key "
                                      "('Доступ по ключу'); or give login and password.")
    login: str | None = Field(default=None, description="User login for 1-hour session tokens (login.user).")
    password: SecretStr | None = Field(default=None, description="Password for login.")
    token_renew_margin: float = Field(default=300, ge=0, le=1800,
                                      description="Seconds before a session token expires that it is renewed.")
    webhook_secret: SecretStr = Field(description="Secret path segment: notifications go to "
                                      "/hooks/<instance>/<webhook_secret> (at least 16 characters).")
    body_secret: SecretStr = Field(description="Secret constant every notification template carries as "
                                   "\"ctid_secret\" (at least 16 characters).")
    allowed_networks: list[IPvAnyNetwork] = Field(
        # [guess §1.2]: no official sender list; Novofon's 37.139.38.215 is the only address seen
        default_factory=list, description="Source networks allowed to send notifications; empty = any.")
    virtual_phone_number: str | None = Field(
        default=None, description="Our virtual number shown to the customer on click-to-call (digits).")
    hold_message: Message = Field(
        default_factory=lambda: Message(type="tts", value="Пожалуйста, оставайтесь на линии."),
        description="What a held customer hears (hold.call's required contact_message).")
    dnd_sync: bool = Field(default=False, description="Mirror ctid presence to the employee's CoMagic status.")
    dnd_status: str = Field(default="do_not_disturb",
                            description="Status mnemonic set for ctid's dnd/offline presence.")
    available_status: str = Field(default="available", description="Status mnemonic set otherwise.")
    currency: str = Field(default="RUB", pattern=r"^[A-Z]{3}$",
                          description="ISO 4217 currency of the account's call charges.")
    facts_delay: float = Field(default=60, ge=0, description="Seconds after a call ends before its report row, "
                               "campaign, UTM and cost are fetched from the Data API.")
    recordings_dir: Path = Field(default=Path("recordings"),
                                 description="Where recordings are stored (relative to ctid's data_dir).")
    recording_delay: float = Field(default=10, ge=0,
                                   description="Seconds after 'recording ready' before the download.")
    recording_retries: int = Field(default=3, ge=0, le=20, description="Extra download attempts.")
    recording_retry_interval: float = Field(default=60, ge=0, description="Seconds between download attempts.")
    reconcile_interval: float | None = Field(
        default=300, ge=5, description="Seconds between Data API pulls that recover lost notifications (null = off).")
    report_limit: int = Field(default=1000, ge=1, le=10_000, description="Rows per Data API page (max 10000).")
    timeout: float = Field(default=10, gt=0, description="HTTP timeout of API requests, seconds.")

    @field_validator("webhook_secret", "body_secret")
    @classmethod
    def _secret_length(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if len(text) < 16:
            raise ValueError("must be at least 16 characters")
        if not all(ch.isalnum() or ch in "-_." for ch in text):
            raise ValueError("use letters, digits, '-', '_' and '.' only (it goes into a URL and a JSON template)")
        return value

    @field_validator("call_api_url", "data_api_url", "media_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _url(value)

    @field_validator("virtual_phone_number")
    @classmethod
    def _digits(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = "".join(ch for ch in value if ch.isdigit())
        if not 5 <= len(digits) <= 15:
            raise ValueError("must be the number as E.164 digits, e.g. 74993720692")
        return digits

    @model_validator(mode="after")
    def _credentials(self) -> ComagicConfig:
        if self.api_key is not None and (self.login or self.password):
            raise ValueError("give api_key, or login and password, not both")
        if self.api_key is None and not (self.login and self.password):
            raise ValueError("give api_key, or login and password")
        return self

    def endpoint(self, api: Literal["call", "data", "media"]) -> str:
        override = {"call": self.call_api_url, "data": self.data_api_url, "media": self.media_url}[api]
        return override or HOSTS[self.brand][api]
