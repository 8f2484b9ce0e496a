"""Configuration loading: YAML + conf.d + ${...}, validation by core and plugin models, errors with path and line."""

from __future__ import annotations

import importlib
import json
import types
from pathlib import Path

import jsonschema
import pytest
from pydantic import SecretStr

from ctid import hookimpl
from ctid.auth_hash import hash_password
from ctid.config.loader import Settings, json_schema, load_config, load_config_dict, redacted
from ctid.errors import ConfigError
from ctid.plugins import CtidPluginManager

FIXTURE_PLUGINS = Path(__file__).parent / "fixtures" / "plugins"
REPO = Path(__file__).resolve().parent.parent
HASH = hash_password("correct horse")


@pytest.fixture
def pm(monkeypatch: pytest.MonkeyPatch) -> CtidPluginManager:
    """A plugin manager with only the fixture plugin (connector ``fixture-pbx``, CRM ``fixture-crm``)."""
    monkeypatch.syspath_prepend(str(FIXTURE_PLUGINS))
    manager = CtidPluginManager()
    manager.register(importlib.import_module("ctid_fixture_pbx"), name="fixture-pbx")
    return manager


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def error_of(path: Path, pm: CtidPluginManager) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, pm)
    assert "\n" not in str(info.value)
    return info.value


BASE = """
server:
  listen: 127.0.0.1:9000
agents:
  alice:
    name: Alice
    extension: 101
    pbx:
      pbx1: 7001
  bob:
    name: Bob
connectors:
  pbx1:
    plugin: fixture-pbx
    secret: s3cret-value
    tags: [a, b]
"""


def test_valid_file_loads_with_defaults_and_plugin_models(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE)
    settings = load_config(path, pm)
    assert isinstance(settings, Settings)
    assert settings.core.server.port == 9000
    assert settings.core.database.url == "sqlite:///var/ctid.db"
    assert settings.core.agents["alice"].extension == "101"
    assert settings.core.agents["alice"].pbx == {"pbx1": "7001"}
    connector = settings.connectors["pbx1"]
    assert type(connector).__name__ == "FixturePBXConfig"
    assert connector.secret.get_secret_value() == "s3cret-value"
    assert connector.port == 5000
    assert settings.connector_types["pbx1"].plugin_name == "fixture-pbx"
    assert settings.crm is None and settings.crm_type is None
    assert settings.path == path and settings.base_dir == tmp_path and settings.sources == [path]
    assert settings.where("agents.alice.extension") == f"{path}:6"
    assert settings.where("agents.alice.nonexistent") == f"{path}:4"


def test_malformed_yaml_points_at_the_line(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", "server:\n  listen: 127.0.0.1:9000\n agents: [\n")
    error = error_of(path, pm)
    assert error.source == f"{path}:3"
    assert str(error).startswith(f"{path}:3: invalid YAML:")


def test_top_level_must_be_a_mapping(tmp_path: Path, pm: CtidPluginManager) -> None:
    error = error_of(write(tmp_path / "ctid.yaml", "- a\n- b\n"), pm)
    assert "top level must be a mapping" in str(error)


def test_empty_file_is_all_defaults(tmp_path: Path, pm: CtidPluginManager) -> None:
    settings = load_config(write(tmp_path / "ctid.yaml", "# nothing yet\n"), pm)
    assert settings.core.server.listen == "127.0.0.1:8080"
    assert settings.connectors == {} and settings.crm is None


def test_missing_file(tmp_path: Path, pm: CtidPluginManager) -> None:
    error = error_of(tmp_path / "nope.yaml", pm)
    assert str(error) == f"{tmp_path / 'nope.yaml'}: configuration file not found"


def test_unknown_key_suggests_the_right_one(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE.replace("    extension: 101", "    extention: 101"))
    error = error_of(path, pm)
    assert error.path == "agents.alice.extention"
    assert str(error) == f"{path}:6: agents.alice.extention: unknown key (did you mean 'extension'?)"


def test_wrong_type(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE.replace("    name: Bob", "    name: [Bob]"))
    assert str(error_of(path, pm)) == f"{path}:10: agents.bob.name: Input should be a valid string"


def test_field_validator_message_without_pydantic_prefix(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE.replace("127.0.0.1:9000", "localhost"))
    assert str(error_of(path, pm)) == (
        f"{path}:2: server.listen: must be host:port, for example 127.0.0.1:8080"
    )


def test_missing_required_key_points_at_the_parent(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE.replace("    name: Bob\n", "    extension: 102\n"))
    assert str(error_of(path, pm)) == f"{path}:9: agents.bob.name: missing required key"


def test_bad_cross_reference(tmp_path: Path, pm: CtidPluginManager) -> None:
    text = (
        BASE + f"auth:\n  users:\n    - username: carol\n      password_hash: '{HASH}'\n      agent: carol\n"
    )
    path = write(tmp_path / "ctid.yaml", text)
    error = error_of(path, pm)
    assert error.path == "auth.users.0.agent"
    assert str(error) == f"{path}:20: auth.users.0.agent: unknown agent 'carol'"


def test_agent_pbx_login_for_unknown_connector(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE.replace("      pbx1: 7001", "      pbx2: 7001"))
    assert str(error_of(path, pm)) == f"{path}:8: agents.alice.pbx.pbx2: unknown connector instance"


def test_plain_password_instead_of_hash(tmp_path: Path, pm: CtidPluginManager) -> None:
    text = BASE + "auth:\n  users:\n    - username: alice\n      password_hash: hunter2\n"
    error = error_of(write(tmp_path / "ctid.yaml", text), pm)
    assert error.path == "auth.users.0.password_hash"
    assert "ctid auth hash-password" in str(error) and "hunter2" not in str(error)


def test_duplicate_key(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE + "server:\n  listen: 0.0.0.0:1\n")
    assert str(error_of(path, pm)) == f"{path}:16: server: duplicate key 'server' (first at line 1)"


def test_yaml_oddities(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = tmp_path / "ctid.yaml"
    write(path, "agents:\n  a: &a {name: A, groups: [*a]}\n")
    assert (
        str(error_of(path, pm))
        == f"{path}:2: agents.a.groups.0: an alias refers to the node that contains it"
    )
    write(path, "agents:\n  on: {name: A}\n")
    assert "mapping keys must be strings, got True" in str(error_of(path, pm))
    write(path, "x: !!python/object/apply:os.system [echo]\n")
    assert str(error_of(path, pm)).startswith(f"{path}:1: invalid YAML: could not determine a constructor")
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    write(path, "\n".join(bomb) + "\n")
    assert "more than 100000 values" in str(error_of(path, pm))
    # anchors, aliases and merge keys work; top-level x-... keys are ignored (a place for anchors)
    write(path, "x-agent: &agent {groups: [sales]}\nagents:\n  a:\n    <<: *agent\n    name: [A]\n")
    assert str(error_of(path, pm)) == f"{path}:5: agents.a.name: Input should be a valid string"
    write(path, "x-agent: &agent {groups: [sales]}\nagents:\n  a:\n    <<: *agent\n    name: A\n")
    assert load_config(path, pm).core.agents["a"].groups == ["sales"]
    write(path, "y-agent: 1\n")
    assert str(error_of(path, pm)) == f"{path}:1: y-agent: unknown key (did you mean 'agents'?)"


def test_environment_substitution(
    tmp_path: Path, pm: CtidPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PBX_SECRET", "from-env")
    monkeypatch.setenv("BODY", "4096")
    monkeypatch.setenv("EMPTY", "")
    text = (
        BASE.replace("s3cret-value", "${PBX_SECRET}")
        .replace("server:\n", "server:\n  max_body_bytes: ${BODY}\n")
        .replace("    name: Bob", "    name: Bob costs $${PRICE} ${EMPTY:-nothing}")
    )
    settings = load_config(write(tmp_path / "ctid.yaml", text), pm)
    assert settings.connectors["pbx1"].secret.get_secret_value() == "from-env"
    assert settings.core.server.max_body_bytes == 4096  # a whole-value substitution is "4096", read as int
    assert settings.core.agents["bob"].name == "Bob costs ${PRICE} nothing"


def test_whole_and_partial_substitution(
    tmp_path: Path, pm: CtidPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "9100")
    monkeypatch.setenv("PBX_PORT", "5060")
    monkeypatch.setenv("DND", "false")
    monkeypatch.delenv("HOST", raising=False)
    text = BASE.replace("127.0.0.1:9000", "${HOST:-127.0.0.2}:${PORT}").replace(
        "    tags: [a, b]", "    tags: [a, b]\n    port: ${PBX_PORT}\n    enabled: ${DND}"
    )
    settings = load_config(write(tmp_path / "ctid.yaml", text), pm)
    assert settings.core.server.listen == "127.0.0.2:9100"
    assert settings.connectors["pbx1"].port == 5060
    assert settings.connectors["pbx1"].enabled is False


def test_missing_environment_variable(
    tmp_path: Path, pm: CtidPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CTID_TEST_UNSET", raising=False)
    path = write(tmp_path / "ctid.yaml", BASE.replace("s3cret-value", "${CTID_TEST_UNSET}"))
    error = error_of(path, pm)
    assert error.path == "connectors.pbx1.secret"
    assert str(error).startswith(
        f"{path}:14: connectors.pbx1.secret: environment variable CTID_TEST_UNSET is not set"
    )


def test_bad_substitution_syntax(tmp_path: Path, pm: CtidPluginManager) -> None:
    error = error_of(write(tmp_path / "ctid.yaml", BASE.replace("s3cret-value", "${not valid}")), pm)
    assert "bad substitution ${not valid}" in str(error) and error.path == "connectors.pbx1.secret"
    error = error_of(write(tmp_path / "ctid.yaml", BASE.replace("s3cret-value", "abc${OOPS")), pm)
    assert "unterminated ${" in str(error)


def test_file_substitution(tmp_path: Path, pm: CtidPluginManager) -> None:
    secret = write(tmp_path / "secrets" / "pbx", "from-a-file\n")
    settings = load_config(
        write(tmp_path / "ctid.yaml", BASE.replace("s3cret-value", f"${{file:{secret}}}")), pm
    )
    assert settings.connectors["pbx1"].secret.get_secret_value() == "from-a-file"

    missing = tmp_path / "secrets" / "missing"
    path = write(tmp_path / "ctid.yaml", BASE.replace("s3cret-value", f"${{file:{missing}}}"))
    error = error_of(path, pm)
    assert str(error) == (
        f"{path}:14: connectors.pbx1.secret: cannot read secret file '{missing}': No such file or directory"
    )


def test_conf_d_overrides_and_points_at_its_own_lines(tmp_path: Path, pm: CtidPluginManager) -> None:
    main = write(tmp_path / "ctid.yaml", BASE)
    write(tmp_path / "conf.d" / "10-listen.yaml", "server:\n  public_url: https://ctid.example.com\n")
    write(tmp_path / "conf.d" / "20-pbx.yml", "connectors:\n  pbx1:\n    tags: [c]\n    port: 6000\n")
    write(tmp_path / "conf.d" / "ignored.txt", "server: [not yaml for us]\n")
    settings = load_config(main, pm)
    assert settings.core.server.listen == "127.0.0.1:9000"  # mappings merge key by key
    assert settings.core.server.public_url == "https://ctid.example.com"
    assert settings.connectors["pbx1"].tags == ["c"]  # lists replace
    assert settings.connectors["pbx1"].secret.get_secret_value() == "s3cret-value"
    assert settings.sources == [
        main,
        tmp_path / "conf.d" / "10-listen.yaml",
        tmp_path / "conf.d" / "20-pbx.yml",
    ]
    assert settings.where("connectors.pbx1.port") == f"{tmp_path / 'conf.d' / '20-pbx.yml'}:4"
    assert settings.where("connectors.pbx1.secret") == f"{main}:14"

    write(tmp_path / "conf.d" / "30-bad.yaml", "# a later file wins\n\nagents:\n  bob:\n    groups: sales\n")
    error = error_of(main, pm)
    assert (
        str(error)
        == f"{tmp_path / 'conf.d' / '30-bad.yaml'}:5: agents.bob.groups: Input should be a valid list"
    )


def test_conf_d_errors_in_a_replaced_subtree_point_at_the_override(
    tmp_path: Path, pm: CtidPluginManager
) -> None:
    main = write(tmp_path / "ctid.yaml", BASE)
    write(tmp_path / "conf.d" / "a.yaml", "agents:\n  alice: {name: Alice, extension: [1]}\n")
    error = error_of(main, pm)
    assert error.source == f"{tmp_path / 'conf.d' / 'a.yaml'}:2"
    assert error.path == "agents.alice.extension"


def test_plugin_config_errors_carry_the_connector_prefix(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE.replace("    tags: [a, b]", "    tags: [a, b]\n    port: lots"))
    assert str(error_of(path, pm)) == (
        f"{path}:16: connectors.pbx1.port: Input should be a valid integer, unable to parse string as an integer"
    )
    path = write(tmp_path / "ctid.yaml", BASE.replace("    secret: s3cret-value\n", ""))
    assert str(error_of(path, pm)) == f"{path}:12: connectors.pbx1.secret: missing required key"
    path = write(tmp_path / "ctid.yaml", BASE.replace("    tags: [a, b]", "    tagz: [a, b]"))
    assert str(error_of(path, pm)) == f"{path}:15: connectors.pbx1.tagz: unknown key (did you mean 'tags'?)"


def test_disabled_connector_is_still_validated(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE.replace("    tags: [a, b]", "    enabled: false\n    port: 0"))
    error = error_of(path, pm)
    assert error.path == "connectors.pbx1.port"
    settings = load_config(
        write(tmp_path / "ctid.yaml", BASE.replace("    tags: [a, b]", "    enabled: false")), pm
    )
    assert settings.enabled_connectors() == {}
    assert settings.connectors["pbx1"].enabled is False


def test_unknown_connector_plugin(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE.replace("plugin: fixture-pbx", "plugin: fixture-pbz"))
    error = error_of(path, pm)
    assert error.path == "connectors.pbx1.plugin"
    assert str(error) == (
        f"{path}:13: connectors.pbx1.plugin: unknown connector plugin 'fixture-pbz' (installed: fixture-pbx)"
    )
    path = write(tmp_path / "ctid.yaml", BASE.replace("    plugin: fixture-pbx\n", ""))
    assert str(error_of(path, pm)) == (
        f"{path}:12: connectors.pbx1.plugin: missing required key (the name of the plugin to use)"
    )
    path = write(tmp_path / "ctid.yaml", BASE.replace("plugin: fixture-pbx", "plugin: [fixture-pbx]"))
    assert str(error_of(path, pm)) == (
        f"{path}:13: connectors.pbx1.plugin: must be the name of a plugin (see `ctid plugins --all`)"
    )


def test_crm_section(tmp_path: Path, pm: CtidPluginManager) -> None:
    text = BASE + "crm:\n  plugin: fixture-crm\n  url: https://crm.example.com\n  api_key: k-123\n"
    settings = load_config(write(tmp_path / "ctid.yaml", text), pm)
    assert settings.crm is not None and settings.crm.url == "https://crm.example.com"
    assert settings.crm_type is not None and settings.crm_type.plugin_name == "fixture-crm"
    path = write(
        tmp_path / "ctid.yaml", text.replace("  api_key: k-123\n", "  lookup_budget: -1\n  api_key: k\n")
    )
    assert str(error_of(path, pm)) == f"{path}:19: crm.lookup_budget: Input should be greater than 0"


def test_load_config_dict(pm: CtidPluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBX_SECRET", "dict-secret")
    data = {
        "connectors": {"p": {"plugin": "fixture-pbx", "secret": "${PBX_SECRET}"}},
        "agents": {"a": {"name": "A"}},
    }
    settings = load_config_dict(data, pm)
    assert settings.connectors["p"].secret.get_secret_value() == "dict-secret"
    assert data["connectors"]["p"]["secret"] == "${PBX_SECRET}"  # the input is not modified
    with pytest.raises(ConfigError) as info:
        load_config_dict({"agents": {"a": {"nme": "A"}}}, pm)
    assert str(info.value) == "agents.a.nme: unknown key (did you mean 'name'?)"


def test_redacted_masks_every_secret(
    tmp_path: Path, pm: CtidPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEY", "key-from-env-0123456789")
    text = (
        BASE.replace("127.0.0.1:9000", "127.0.0.1:9000\n  public_url: https://ctid.example.com")
        + "database:\n  url: postgresql+psycopg://ctid:db-pass-42@db.example.com:5432/ctid\n"
        + f"auth:\n  secret: token-signing-secret\n  users:\n    - username: alice\n      password_hash: '{HASH}'\n"
        + "  api_keys:\n    - name: launcher\n      key: ${API_KEY}\n"
        + "crm:\n  plugin: fixture-crm\n  url: https://crm.example.com\n  api_key: crm-api-key-xyz\n"
    )
    settings = load_config(write(tmp_path / "ctid.yaml", text), pm)
    data = redacted(settings)
    dumped = json.dumps(data)
    for secret in (
        "s3cret-value",
        "db-pass-42",
        "token-signing-secret",
        HASH,
        "key-from-env-0123456789",
        "crm-api-key-xyz",
    ):
        assert secret not in dumped
    assert data["connectors"]["pbx1"]["secret"] == "***"
    assert data["connectors"]["pbx1"]["tags"] == ["a", "b"]
    assert data["auth"]["users"][0]["password_hash"] == "***"
    assert data["auth"]["api_keys"][0] == {"name": "launcher", "key": "***", "role": "agent", "agent": None}
    assert data["database"]["url"] == "postgresql+psycopg://ctid:***@db.example.com:5432/ctid"
    assert data["crm"]["api_key"] == "***" and data["crm"]["url"] == "https://crm.example.com"
    assert data["server"]["public_url"] == "https://ctid.example.com"
    assert data["data_dir"] == "var"


def test_redaction_by_key_name_is_defensive() -> None:
    from ctid.config.render import _plain

    data = _plain(
        {
            "token": "t",
            "crm_token": "t2",
            "password": "p",
            "keys": ["k"],
            "monkey": "ok",
            "public_key_id": "x",
            "token_ttl": 60,
            "plain": SecretStr("s"),
        }
    )
    assert data == {
        "token": "***",
        "crm_token": "***",
        "password": "***",
        "keys": ["***"],
        "monkey": "ok",
        "public_key_id": "***",
        "token_ttl": 60,
        "plain": "***",
    }


def test_json_schema_includes_plugin_models(pm: CtidPluginManager) -> None:
    schema = json_schema(pm)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    connector = schema["$defs"]["connector__fixture-pbx"]
    assert connector["properties"]["plugin"]["const"] == "fixture-pbx"
    assert {"secret", "port", "tags"} <= set(connector["properties"])
    assert schema["properties"]["connectors"]["additionalProperties"] == {
        "oneOf": [{"$ref": "#/$defs/connector__fixture-pbx"}]
    }
    assert schema["$defs"]["crm__fixture-crm"]["properties"]["plugin"]["const"] == "fixture-crm"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = {
        "connectors": {"p": {"plugin": "fixture-pbx", "secret": "x", "port": 5}},
        "crm": {"plugin": "fixture-crm", "url": "u", "api_key": "k"},
    }
    assert list(validator.iter_errors(good)) == []
    assert list(
        validator.iter_errors({"connectors": {"p": {"plugin": "fixture-pbx", "port": 5}}})
    )  # no secret
    assert list(validator.iter_errors({"connectors": {"p": {"plugin": "other", "secret": "x"}}}))
    assert list(validator.iter_errors({"agents": {"a": {"name": "A", "extention": "1"}}}))


def test_json_schema_survives_a_plugin_model_pydantic_cannot_describe() -> None:
    from typing import Any

    from pydantic import ConfigDict

    from ctid.connector import Connector, ConnectorConfig

    class Opaque:
        pass

    class OddConfig(ConnectorConfig):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        thing: Any = None
        opaque: Opaque | None = None

    odd = type("Odd", (Connector,), {"plugin_name": "odd", "Config": OddConfig})
    plugin = types.SimpleNamespace(ctid_register_connectors=hookimpl(lambda: [odd]))
    manager = CtidPluginManager()
    manager.register(plugin, name="odd")
    schema = json_schema(manager)
    definition = schema["$defs"]["connector__odd"]
    assert definition["description"].startswith("schema unavailable: PydanticInvalidForJsonSchema")
    assert definition["properties"]["plugin"] == {"const": "odd"}


def test_a_crashing_plugin_validator_is_a_config_error(tmp_path: Path) -> None:
    from pydantic import field_validator

    from ctid.connector import Connector, ConnectorConfig

    class CrashConfig(ConnectorConfig):
        host: str

        @field_validator("host")
        @classmethod
        def _host(cls, value: str) -> str:
            return value.nosuchmethod()

    crash = type("Crash", (Connector,), {"plugin_name": "crash", "Config": CrashConfig})
    manager = CtidPluginManager()
    manager.register(types.SimpleNamespace(ctid_register_connectors=hookimpl(lambda: [crash])), name="crash")
    path = write(tmp_path / "ctid.yaml", "connectors:\n  c:\n    plugin: crash\n    host: x\n")
    error = error_of(path, manager)
    assert str(error) == (
        f"{path}:2: connectors.c: the plugin's configuration model failed: "
        "AttributeError: 'str' object has no attribute 'nosuchmethod'"
    )


def test_example_configs_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """config/example-full.yaml loads with the built-in plugins once its variables are set."""
    monkeypatch.setenv("CTID_LOAD_PLUGINS", "")
    monkeypatch.setenv("CTID_ALICE_PASSWORD_HASH", HASH)
    monkeypatch.setenv("CTID_ROOT_PASSWORD_HASH", HASH)
    monkeypatch.setenv("CTID_LAUNCHER_BOB_KEY", "0123456789abcdef-launcher")
    monkeypatch.setenv("CTID_GENERIC_SECRET", "generic-secret-value")
    settings = load_config(REPO / "config" / "example-full.yaml")
    assert settings.connectors["office"].plugin == "generic"
    assert settings.connectors["office"].secret.get_secret_value() == "generic-secret-value"
    assert settings.crm is not None and settings.crm.plugin == "directory"
    assert set(settings.core.agents) == {"alice", "bob"}


def test_example_full_mentions_every_key() -> None:
    """Every key of the core models (and of the generic connector) appears in config/example-full.yaml."""
    import typing

    from pydantic import BaseModel

    from ctid.builtins.generic import GenericConfig
    from ctid.config.models import CtidConfig
    from ctid.crm import CRMConfig

    def keys(model: type[BaseModel]) -> set[str]:
        found = set()
        for name, info in model.model_fields.items():
            found.add(name)
            stack = [info.annotation]
            while stack:
                annotation = stack.pop()
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    found |= keys(annotation)
                stack.extend(typing.get_args(annotation))
        return found

    text = (REPO / "config" / "example-full.yaml").read_text()
    missing = sorted(
        key for key in keys(CtidConfig) | keys(GenericConfig) | keys(CRMConfig) if f"{key}:" not in text
    )
    assert missing == []


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        ("database:\n  url: mysql://ctid@db/ctid\n", 15,
         "database.url: unsupported database 'mysql': ctid supports sqlite, postgresql and mssql"),
        ("database:\n  url: postgresql+asyncpg://ctid@db/ctid\n", 15,
         "database.url: unsupported PostgreSQL driver 'asyncpg': use postgresql+psycopg://"),
        ("database:\n  url: ctid.db\n", 15, "database.url: not a database URL"),
        ("database:\n  url: 'postgresql://ctid:pw@db:port/ctid'\n", 15, "database.url: not a database URL"),
        ("server:\n  public_url: ctid.example.com\n", 15,
         "server.public_url: must be an http:// or https:// URL, for example https://ctid.example.com"),
        ("server:\n  public_url: 'ftp://ctid.example.com'\n", 15, "server.public_url: must be an http:// or https://"),
        ("server:\n  public_url: 'https://'\n", 15, "server.public_url: must be an http:// or https://"),
        ("server:\n  public_url: 'http://ctid:99999'\n", 15, "server.public_url: must be an http:// or https://"),
    ],
)
def test_database_url_and_public_url_are_checked(
    tmp_path: Path, pm: CtidPluginManager, extra: str, line: int, message: str
) -> None:
    text = BASE.replace("server:\n  listen: 127.0.0.1:9000\n", "") + extra
    path = write(tmp_path / "ctid.yaml", text)
    error = error_of(path, pm)
    assert str(error).startswith(f"{path}:{line}: {message}")
    assert "pw" not in str(error)  # a password in the URL never reaches the message


@pytest.mark.parametrize(
    "url",
    ["sqlite:///var/ctid.db", "sqlite://", "postgresql://postgres@127.0.0.1/test", "postgres://u@h/d",
     "postgresql+psycopg://u:p@h:5432/d", "mssql+pyodbc://u:p@dsn"],
)
def test_supported_database_urls(tmp_path: Path, pm: CtidPluginManager, url: str) -> None:
    path = write(tmp_path / "ctid.yaml", BASE + f"database:\n  url: '{url}'\n")
    assert load_config(path, pm).core.database.url == url


def test_duplicate_extensions_and_logins_are_refused(tmp_path: Path, pm: CtidPluginManager) -> None:
    path = write(tmp_path / "ctid.yaml", BASE.replace("    name: Bob\n", "    name: Bob\n    extension: ' 101'\n"))
    error = error_of(path, pm)
    assert str(error) == f"{path}:11: agents.bob.extension: extension ' 101' is also used by agent 'alice'"
    path = write(tmp_path / "ctid.yaml",
                 BASE.replace("    name: Bob\n", "    name: Bob\n    pbx:\n      pbx1: '7001'\n"))
    error = error_of(path, pm)
    assert str(error) == f"{path}:12: agents.bob.pbx.pbx1: login '7001' on pbx1 is also used by agent 'alice'"
    # the same login on two different instances, and a login equal to another's extension, are fine
    text = BASE.replace("    name: Bob\n", "    name: Bob\n    pbx:\n      pbx1: '101'\n")
    assert load_config(write(tmp_path / "ctid.yaml", text), pm).core.agents["bob"].pbx == {"pbx1": "101"}


def test_a_tariff_direction_ctid_cannot_tell_is_refused():
    """``intercity`` was accepted and never priced a call (domestic fixed lines are all ``local``
    to libphonenumber): a city's fixed lines are priced by prefix instead."""
    from pydantic import ValidationError

    from ctid.config.models import TariffRule

    assert TariffRule(direction="local", prefixes=["+7495"], per_minute=1.5).direction == "local"
    with pytest.raises(ValidationError, match="direction"):
        TariffRule(direction="intercity", per_minute=1.5)
