"""Registration of the Avaya IP Office connector with ctid (entry point ``avaya`` in group ``ctid``).

Kept light: zeep and the control backends are imported only when an instance uses them.
"""

from __future__ import annotations

from ctid import hookimpl

#: The plugin contract this plugin is written for (ctid.CONTRACT_VERSION, checked at load).
CTID_CONTRACT = "2.0"


@hookimpl
def ctid_register_connectors():
    from ctid_avaya.connector import AvayaConnector

    return [AvayaConnector]
