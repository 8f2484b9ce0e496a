"""Origins in the configuration that reach a response header are origins and nothing else: a
``panel.cif_origins`` entry ``"https://x.com 'unsafe-inline' *"`` passed ``ctid config check`` and was
written into the panel's Content-Security-Policy as three source expressions (CSP injection by
config). Checked through ``ctid config check`` (one line with the YAML path, exit 2) and through the
header a running daemon serves."""

from __future__ import annotations

import pytest
import typer
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from ctid.cli import config_cmd
from ctid.config.models import CtidConfig
from ctid.testing.daemon import running_daemon

from .conftest import make_config

INJECTIONS = [
    "https://x.com 'unsafe-inline' 'unsafe-eval' *",
    "https://x.com; script-src *",
    "https://x.com,https://evil.example",
    "https://*.x.com",
    "https://x.com/lib.js",
    "https://x.com/?a=1",
    "https://user:pw@x.com",
    "https://x_y.com",
    "javascript:alert(1)",
    "data:text/html,hi",
    "'self'",
    "https://x.com\n",
    "https://[not-ipv6]",
]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("CTID_LOAD_PLUGINS", "")
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """ctid."""

    config_cmd.register(app)
    return app


def _check(cli: typer.Typer, tmp_path, panel: dict | None = None, server: dict | None = None):
    config = {"agents": {"alice": {"name": "Alice"}},
              "connectors": {"office": {"plugin": "generic", "secret": "generic-secret-0001"}},
              "crm": {"plugin": "directory"}}
    if panel is not None:
        config["panel"] = panel
    if server is not None:
        config["server"] = server
    path = tmp_path / "ctid.yaml"
    path.write_text(yaml.safe_dump(config))
    return CliRunner().invoke(cli, ["config", "check", str(path)])


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("key", ["cif_origins", "frame_ancestors"])
def test_config_check_refuses_what_is_not_an_origin(cli, tmp_path, key, value):
    result = _check(cli, tmp_path, panel={key: ["https://ok.example", value]})
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("ctid: error: ") and f"panel.{key}.1: " in line and "origin" in line, line


@pytest.mark.parametrize("value", [v for v in INJECTIONS if v not in ("https://x_y.com",)])
def test_cors_origins_are_origins_too(cli, tmp_path, value):
    result = _check(cli, tmp_path, server={"cors_origins": [value]})
    assert result.exit_code == 2 and "server.cors_origins.0: " in result.stderr, result.output


def test_origins_that_are_fine(cli, tmp_path):
    ok = ["https://org.crm4.dynamics.com/", "http://127.0.0.1:18999", "https://[2001:db8::1]:8443", "https://X.Example"]
    result = _check(cli, tmp_path, panel={"cif_origins": ok, "frame_ancestors": ["*", ok[0]]},
                    server={"cors_origins": ["*", "http://ctid_panel:8080"]})
    assert result.exit_code == 0, result.output
    config = CtidConfig.model_validate({"panel": {"cif_origins": ok}})
    assert config.cif_origins() == ["https://org.crm4.dynamics.com", "http://127.0.0.1:18999",
                                    "https://[2001:db8::1]:8443", "https://x.example"]


@given(st.text(max_size=40))
def test_an_accepted_origin_is_one_source_expression(text):
    """Whatever text is configured, an accepted value is one ``scheme://host[:port]`` token."""
    try:
        [origin] = CtidConfig.model_validate({"panel": {"cif_origins": [text]}}).cif_origins()
    except ValueError:
        return
    scheme, _, rest = origin.partition("://")
    assert scheme in ("http", "https") and rest and all(ch.isalnum() or ch in ".-:[]" for ch in rest), origin


async def test_the_served_policy_names_only_configured_origins(tmp_path, fake_pbx):
    config = make_config(tmp_path, command_url=fake_pbx.url)
    config["panel"] = {"cif_origins": ["https://org.crm4.dynamics.com"], "frame_ancestors": ["https://host.example"]}
    async with running_daemon(config) as app:
        policy = (await app.client.get("/panel/")).headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self' https://org.crm4.dynamics.com"
    assert directives["frame-ancestors"] == "'self' https://host.example"
    assert "unsafe" not in policy and len(directives) == policy.count(";") + 1
    bad = make_config(tmp_path, command_url=fake_pbx.url)
    bad["panel"] = {"cif_origins": ["https://x.com 'unsafe-inline' *"]}
    with pytest.raises(Exception, match="panel.cif_origins"):
        async with running_daemon(bad):
            pass
