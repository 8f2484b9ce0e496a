"""The typed configuration: brands, credentials, secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from comagic_kit import make_config
from ctid_comagic.config import ComagicConfig


def test_brand_picks_the_hosts_and_overrides_win():
    config = ComagicConfig.model_validate({"plugin": "comagic", "brand": "uiscom", "api_key": "k" * 20,
                                           "webhook_secret": "p" * 16, "body_secret": "b" * 16})
    assert config.endpoint("call") == "https://callapi.uiscom.ru/v4.0"
    assert config.endpoint("data") == "https://dataapi.uiscom.ru/v2.0"
    novofon = config.model_copy(update={"brand": "novofon"})
    assert novofon.endpoint("call") == "https://callapi-jsonrpc.novofon.ru/v4.0"
    assert make_config(None).endpoint("call") == "http://127.0.0.1/v4.0"


@pytest.mark.parametrize(("change", "message"), [
    ({"api_key": None}, "give api_key, or login and password"),
    ({"login": "x", "password": "y"}, "not both"),
    ({"webhook_secret": "short"}, "at least 16"),
    ({"body_secret": "has spaces in it, too"}, "letters, digits"),
    ({"brand": "mango"}, "brand"),
    ({"virtual_phone_number": "12"}, "E.164"),
    ({"report_limit": 20_000}, "report_limit"),
    ({"call_api_url": "ftp://x"}, "http(s)"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_configuration_is_refused_clearly(change, message):
    with pytest.raises(ValidationError) as caught:
        make_config(None, **change)
    assert message in str(caught.value)


def test_login_sessions_need_both(fake):
    config = make_config(fake, api_key=None, login="ctid", password="pw-0123")
    assert config.api_key is None and config.login == "ctid"
