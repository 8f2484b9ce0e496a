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


def test_every_error_id_of_the_hub_methods_is_documented() -> None:
    raised = set()
    for source in SOURCES:
        raised |= set(re.findall(r'error_id=f?"([a-z_:]+)', (REPO / source).read_text(encoding="utf-8")))
    raised.discard("capability_missing:")  # the f-string prefix of capability_missing:<command>
    raised -= {"no_webhooks", "no_history", "no_simulation", "bad_credentials", "token_expired", "bad_token",
               "unauthorized"}  # not reachable from a hub method (webhooks, simulation, sign-in)
    raised -= {"bad_source", "bad_lease", "status_set_by_user"}  # REST only: the launcher's presence lease
    # a connector declaring a command it does not implement is refused when it is loaded and built
    # (ctid/connector.py contract_problems), so its method is never reached from the hub
    raised -= {"contract_broken"}
    documented = documented_ids()
    assert raised <= documented, sorted(raised - documented)
    commands = (Capability.DIAL, Capability.HOLD, Capability.TRANSFER, Capability.HANGUP)
    assert {f"capability_missing:{c.value}" for c in commands} <= documented  # connector.require's ids
    assert not documented & {"not_found", "bad_request"}  # the generic defaults are never what a method answers
