"""ctid's realtime hub: an ASP.NET Core SignalR-compatible endpoint (JSON hub protocol over
WebSocket), its backplanes and a small Trio client. See docs/hub-protocol.md."""

from ctid.hub.backplane import MemoryBackplane, backplane_from_url
from ctid.hub.hub import AGENTS, SUPERVISORS, Hub, agent_group, groups_for
from ctid.hub.interfaces import HUB_METHODS, Backplane, HubBackend, Principal

__all__ = [
    "AGENTS",
    "HUB_METHODS",
    "SUPERVISORS",
    "Backplane",
    "Hub",
    "HubBackend",
    "MemoryBackplane",
    "Principal",
    "agent_group",
    "backplane_from_url",
    "groups_for",
]
