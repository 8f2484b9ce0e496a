"""ctid plugin registration of the Dynamics CRM adapter (entry point ``dynamics`` in group ``ctid``)."""

from __future__ import annotations

import ctid

from .adapter import DynamicsAdapter


@ctid.hookimpl
def ctid_register_crms() -> list[type[DynamicsAdapter]]:
    return [DynamicsAdapter]
