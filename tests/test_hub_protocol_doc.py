"""docs/hub-protocol.md lists the error ids hub methods really answer with."""

from __future__ import annotations

import re
from pathlib import Path

from ctid.model import Capability

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["ctid/commands.py", "ctid/hub_backend.py", "ctid/auth.py", "ctid/connector.py"]


def documented_ids() -> set[str]:
    """Ids in backticks in section 6 (methods): its error table and the text around it."""
    text = (REPO / "docs" / "hub-protocol.md").read_text(encoding="utf-8")
    section = text.split("## 6. Methods", 1)[1].split("## 7.", 1)[0]
    return set(re.findall(r"`([a-z_]+(?::[a-z_<>]+)?)`", section))


#: Ids a connector raises only on REST paths no hub method reaches (GET /api/calls/{id}/recording).
REST_ONLY_PBX_IDS = {"pbx_recording_failed"}


def connector_pbx_ids() -> set[str]:
    """Every ``pbx_*`` error id in the built-in and bundled connectors' code: the PBX failures a hub
    command (Dial, Hold, Transfer, Hangup) can answer with."""
    sources = [*(REPO / "ctid" / "builtins").glob("*.py"), REPO / "ctid" / "errors.py"]
    sources += [path for path in (REPO / "plugins").glob("*/ctid_*/**/*.py") if "build" not in path.parts]
    found = set()
    for path in sources:
        for name in re.findall(r'"(pbx_[a-z_]+)(?=["]|:[<{a-z])', path.read_text(encoding="utf-8")):
            found.add(name)
    found -= {"pbx_call_id", "pbx_login", "pbx_user", "pbx_id", "pbx_type", "pbx_ip"}  # data keys, not errors
    assert {"pbx_refused", "pbx_unauthorized", "pbx_throttled"} <= found  # the scan sees the plugins
    return found - REST_ONLY_PBX_IDS


def test_every_error_id_of_the_hub_methods_is_documented() -> None:
    raised = set()
    for source in SOURCES:
        raised |= set(re.findall(r'error_id=f?"([a-z_:]+)', (REPO / source).read_text(encoding="utf-8")))
    raised.discard("capability_missing:")  # the f-string prefix of capability_missing:<command>
    raised -= {"no_webhooks", "no_history", "no_simulation", "bad_credentials", "token_expired", "bad_token",
               "unauthorized"}  # not reachable from a hub method (webhooks, simulation, sign-in)
    raised -= {"bad_source", "bad_lease", "status_set_by_user"}  # REST only: the launcher's presence lease
    raised -= {"bad_link"}  # REST only: signed recording links (ctid/auth_links.py)
    raised -= {"unreachable", "simulation_rejected"}  # Connector.post_simulated: `ctid simulate-call` only
    # a connector declaring a command it does not implement is refused when it is loaded and built
    # (ctid/connector.py contract_problems), so its method is never reached from the hub
    raised -= {"contract_broken"}
    documented = documented_ids()
    assert raised <= documented, sorted(raised - documented)
    assert connector_pbx_ids() <= documented, sorted(connector_pbx_ids() - documented)
    commands = (Capability.DIAL, Capability.HOLD, Capability.TRANSFER, Capability.HANGUP)
    assert {f"capability_missing:{c.value}" for c in commands} <= documented  # connector.require's ids
    assert not documented & {"not_found", "bad_request"}  # the generic defaults are never what a method answers
