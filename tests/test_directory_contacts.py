"""The directory CRM's contacts file: checked when the configuration is loaded, clear errors on bad rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctid.builtins.directory import load_contacts
from ctid.config.loader import load_config_dict
from ctid.errors import ConfigError

SECRET = "generic-secret-0001"


def settings_with(contacts: Path | str):
    return load_config_dict(
        {
            "connectors": {"office": {"plugin": "generic", "secret": SECRET}},
            "crm": {"plugin": "directory", "contacts": str(contacts)},
        }
    )


def test_good_yaml_and_csv(tmp_path: Path) -> None:
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(
        "- {id: 7, name: Anna, company: Romashka, phones: ['+7 916 123-45-67', '84951234567'], owner: alice}\n"
        "- {name: Boris, phone: '+7 916 000-00-01', email: b@example.com}\n"
    )
    csv_file = tmp_path / "c.csv"
    csv_file.write_text("id,name,company,phones,owner,email\nc-1,Vera,,+79161112233;101,,\n")
    assert settings_with(yaml_file).crm.contacts == yaml_file
    anna, boris = load_contacts(yaml_file, "RU")
    assert (anna.id, anna.phones, anna.company, anna.owner) == ("7", ["+79161234567", "+74951234567"], "Romashka",
                                                                 "alice")
    assert boris.phones == ["+79160000001"] and boris.extra == {"email": "b@example.com"}
    (vera,) = load_contacts(csv_file, "RU")
    assert (vera.id, vera.name, vera.phones, vera.company) == ("c-1", "Vera", ["+79161112233", "101"], None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- {name: Anna, phones: 5}\n", "contact #1 (Anna): phones: must be a string or a list of strings"),
        ("- {name: Anna, phones: ['+79161234567', [1]]}\n", "contact #1 (Anna): phones: must be a string or a list"),
        ("- {name: Anna, phones: {a: 1}}\n", "contact #1 (Anna): phones: must be a string or a list"),
        ("- {name: Anna, phones: +79161234567}\n", "quote phone numbers"),
        ("- {name: Anna}\n- {name: [x]}\n", "contact #2: name: must be a string"),
        ("- {name: Anna}\n- {phones: '+79161234567'}\n", "contact #2: needs a name"),
        ("- {name: Anna, id: true}\n", "contact #1 (Anna): id: must be a string"),
        ("- {name: Anna, id: {x: 1}}\n", "contact #1 (Anna): id: must be a string"),
        ("- {name: Anna, company: [a]}\n", "contact #1 (Anna): company: must be a string"),
        ("- {name: Anna, owner: 3.5}\n", "contact #1 (Anna): owner: must be a string"),
        ("- {name: Anna, email: {a: b}}\n", "contact #1 (Anna): email: must be a string"),
        ("- Anna\n", "contact #1: must be a mapping of keys"),
        ("contacts: 5\n", "expected a list of contacts"),
        ("name: Anna\n", "expected a list of contacts"),
        ("- {name: Anna\n", "not valid YAML"),
    ],
)
def test_bad_yaml_rows(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "contacts.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as exc:
        load_contacts(path, "RU")
    assert exc.value.path == "crm.contacts"
    assert str(path) in str(exc.value) and message in str(exc.value)
    # the same problem is found when the configuration is loaded (`ctid config check`)
    with pytest.raises(ConfigError) as at_load:
        settings_with(path)
    assert at_load.value.path == "crm.contacts"
    assert str(path) in str(at_load.value) and message in str(at_load.value)


def test_bad_csv(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text("id,name,phones\nc-1,,+79161234567\n")
    with pytest.raises(ConfigError, match=r"contact #1 \(line 2\): needs a name"):
        settings_with(path)
    path.write_bytes(b"id,name\n1,\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8 text") as exc:
        settings_with(path)
    assert exc.value.path == "crm.contacts"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read contacts file") as exc:
        settings_with(tmp_path / "nope.yaml")
    assert exc.value.path == "crm.contacts"
    with pytest.raises(ConfigError, match="cannot read contacts file"):
        settings_with(tmp_path)  # a directory
