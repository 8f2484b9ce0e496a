"""Registration of the MegaFon connector with ctid (entry point ``megafon`` in group ``ctid``).

Kept light: the connector module imports only ctid, httpx and trio, which ctid loads anyway.
"""

from __future__ import annotations

from ctid import hookimpl


@hookimpl
def ctid_register_connectors():
    from ctid_megafon.connector import MegafonConnector

    return [MegafonConnector]


@hookimpl
def ctid_agent_status(agent, previous):
    """Mirror an agent's DND presence to every running MegaFon instance with ``dnd_sync: true``.

    Only queues the change; each connector's own task sends it to the PBX.
    """
    from ctid_megafon.connector import LIVE

    for connector in list(LIVE):
        connector.mirror_presence(agent.id, agent.status, previous)
