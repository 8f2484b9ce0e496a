"""ctid plugin registration of the Dynamics CRM adapter (entry point ``dynamics`` in group ``ctid``)."""

from __future__ import annotations

import ctid

from .adapter import DynamicsAdapter

#: The plugin contract this plugin is written for (ctid.CONTRACT_VERSION, checked at load).
CTID_CONTRACT = "2.0"


@ctid.hookimpl
def ctid_register_crms() -> list[type[DynamicsAdapter]]:
    return [DynamicsAdapter]
