"""Registration of the CoMagic / UIS connector with ctid (entry point ``comagic`` in group ``ctid``)."""

from __future__ import annotations

from ctid import hookimpl

#: The plugin contract this plugin is written for (ctid.CONTRACT_VERSION, checked at load).
CTID_CONTRACT = "2.0"


@hookimpl
def ctid_register_connectors():
    from ctid_comagic.connector import ComagicConnector

    return [ComagicConnector]
