"""Subject templates are checked when the configuration is loaded, not when the first job runs."""

from __future__ import annotations

import json
import sys

import pytest
import trio

from ctid.config.loader import load_config_dict
from ctid.errors import ConfigError
from ctid_dynamics.config import PHONECALL_FIELDS, TASK_FIELDS
from ctid_dynamics.payloads import render


def settings(crm: dict) -> dict:
    return {
        "database": {"url": "sqlite:///ctid.db"},
        "agents": {"alice": {"name": "Alice", "extension": "101"}},
        "crm": {"plugin": "dynamics", "url": "https://contoso.crm4.dynamics.com",
                "auth": {"type": "client_credentials", "tenant": "t", "client_id": "c", "client_secret": "s"},
                **crm},
    }


@pytest.mark.parametrize(("section", "template", "fragment"), [
    ("callback_task", "Call back {number.real}", "{number.real}: attribute or index access is not allowed"),
    ("callback_task", "Call back {name[0]}", "{name[0]}: attribute or index access is not allowed"),
    ("callback_task", "Call back {nmuber}", "unknown field {nmuber}; the fields are {number} {name} {count}"),
    ("callback_task", "Call back {number", "not a valid template (expected '}' before end of string)"),
    ("callback_task", "Call back number}", "Single '}' encountered"),
    ("callback_task", "Call back {}", "positional field {} is not allowed"),
    ("callback_task", "Call back {0}", "positional field {0} is not allowed"),
    ("callback_task", "Call back {number:d}", "cannot be rendered: Unknown format code 'd'"),
    ("callback_task", "Call back {count:{number}}", "nested fields in a format spec are not allowed"),
    ("phonecall", "{label} {count}", "unknown field {count}; the fields are {label} {number}"),
    ("phonecall", "{agent.__class__}", "attribute or index access is not allowed"),
])
def test_broken_template_is_a_config_error_at_its_yaml_path(section, template, fragment):
    with pytest.raises(ConfigError) as info:
        load_config_dict(settings({section: {"subject": template}}))
    assert info.value.path == f"crm.{section}.subject"
    assert fragment in str(info.value)


@pytest.mark.parametrize(("section", "template", "fields"), [
    ("callback_task", "Call back {number} {name} ({count:02d} missed, since {first_missed!s}) {{ctid}}", TASK_FIELDS),
    ("phonecall", "{label:>20} {number} {name} {agent} {line} {group} {outcome!r}", PHONECALL_FIELDS),
])
def test_every_allowed_field_renders(section, template, fields):
    loaded = load_config_dict(settings({section: {"subject": template}}))
    rendered = render(getattr(loaded.crm, section).subject, fields)
    assert "{" not in rendered.replace("{ctid}", "") and "Jane Doe" in rendered


async def test_ctid_config_check_reports_the_template(tmp_path):
    path = tmp_path / "ctid.yaml"
    path.write_text(json.dumps(settings({"callback_task": {"subject": "Call back {number.real}"}})))
    with trio.fail_after(60):
        result = await trio.run_process([sys.executable, "-m", "ctid", "config", "check", str(path)],
                                        capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 2
    [line] = result.stderr.decode().strip().splitlines()
    assert "crm.callback_task.subject" in line and "attribute or index access is not allowed" in line
