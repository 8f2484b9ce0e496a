"""Registration of the MegaFon connector with ctid (entry point ``megafon`` in group ``ctid``).

Kept light: the connector module imports only ctid, httpx and trio, which ctid loads anyway.
"""

from __future__ import annotations

from ctid import hookimpl

#: The plugin contract this plugin is written for (ctid.CONTRACT_VERSION, checked at load).
CTID_CONTRACT = "2.0"


@hookimpl
def ctid_register_connectors():
    from ctid_megafon.connector import MegafonConnector

    return [MegafonConnector]
