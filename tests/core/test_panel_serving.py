"""The panel's files, favicon and config are served with the panel's security headers (no browser:
tests/panel drives Chromium); the CIF origins default to the Dynamics organization."""

from __future__ import annotations

import pytest

from ctid.config.models import CtidConfig
from ctid.testing.daemon import running_daemon

from .conftest import make_config


async def test_panel_files_favicon_and_config_carry_the_policy(tmp_path, fake_pbx):
    config = make_config(tmp_path, command_url=fake_pbx.url)
    config["panel"] = {"cif_origins": ["https://org.crm4.dynamics.com/"], "frame_ancestors": ["*"]}
    async with running_daemon(config) as app:
        for path, media in (("/panel/", "text/html"), ("/panel/js/app.js", "javascript"),
                            ("/panel/css/panel.css", "text/css"), ("/favicon.ico", "image/svg+xml"),
                            ("/panel/config.json", "application/json")):
            response = await app.client.get(path)
            assert response.status_code == 200 and media in response.headers["content-type"], path
            policy = response.headers["content-security-policy"]
            assert "script-src 'self' https://org.crm4.dynamics.com;" in policy and "frame-ancestors *" in policy
            assert response.headers["x-content-type-options"] == "nosniff"
        assert (await app.client.get("/panel/config.json")).json() == {"cif_origins": ["https://org.crm4.dynamics.com"]}
        response = await app.client.get("/panel/nothing-here.js")
        assert response.status_code == 404 and response.json()["error"] == "not_found"
        assert (await app.client.get("/")).headers["location"] == "/panel/"


def test_cif_origins_default_to_the_dynamics_organization():
    dynamics = {"plugin": "dynamics", "url": "https://Contoso.crm4.dynamics.com/main.aspx"}
    config = CtidConfig.model_validate({"crm": dynamics})
    assert config.cif_origins() == config.frame_ancestors() == ["https://contoso.crm4.dynamics.com"]
    assert CtidConfig.model_validate({"crm": {"plugin": "directory"}}).cif_origins() == []
    pinned = CtidConfig.model_validate({"crm": dynamics, "panel": {"cif_origins": []}})
    assert pinned.cif_origins() == [] and pinned.frame_ancestors() == []
    with pytest.raises(ValueError, match="not an http"):
        CtidConfig.model_validate({"panel": {"cif_origins": ["javascript:alert(1)"]}})
