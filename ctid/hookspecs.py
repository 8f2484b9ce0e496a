"""Every hook of ctid's plugin contract, in one place.

Plugins implement hooks with ``@ctid.hookimpl`` and are found through the ``ctid`` entry-point
group. Hooks are called with keyword arguments only, and an implementation may accept a subset of
the arguments, so a spec can grow without breaking plugins. Hooks are synchronous (pluggy has no
async support): registration hooks return classes whose instances do the async work inside ctid's
own nursery; observer hooks must return quickly and must not block (start work elsewhere).
An exception raised by an observer is logged and does not stop ctid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ctid.connector import Connector
    from ctid.crm import CRMAdapter
    from ctid.model import Agent, Call, CallEvent, Task
    from ctid.services import Services

hookspec = pluggy.HookspecMarker("ctid")


# -------------------------------------------------------------------------------------------------
# Registration: called when the plugin manager is set up (also by `ctid plugins`, `ctid config ...`).
# -------------------------------------------------------------------------------------------------


@hookspec
def ctid_register_connectors() -> list[type[Connector]]:
    """Return the PBX connector classes this plugin provides.

    Called once per process after plugins are loaded, before the configuration's ``connectors``
    section is validated. Each class is a subclass of :class:`ctid.connector.Connector` with a
    unique ``plugin_name``; configuration entries select it with ``plugin: <plugin_name>``.

    :return: a list of connector classes (may be empty).

    .. versionadded:: 0.1
    """


@hookspec
def ctid_register_crms() -> list[type[CRMAdapter]]:
    """Return the CRM adapter classes this plugin provides.

    Called once per process after plugins are loaded, before the configuration's ``crm`` section is
    validated. Each class is a subclass of :class:`ctid.crm.CRMAdapter` with a unique
    ``plugin_name``; the configuration selects one with ``crm.plugin``.

    :return: a list of CRM adapter classes (may be empty).

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------------------------------
# Lifecycle of `ctid serve`.
# -------------------------------------------------------------------------------------------------


@hookspec
def ctid_serve_started(services: Services) -> None:
    """Called once when ``ctid serve`` is ready: the database is migrated, connectors are open and
    the web server listens.

    :param services: the running daemon's services (directory, store access, public URL).

    .. versionadded:: 0.1
    """


@hookspec
def ctid_serve_stopping(services: Services) -> None:
    """Called once when ``ctid serve`` begins a graceful shutdown, before connectors are closed.

    :param services: the running daemon's services.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------------------------------
# Observers: react to what the switchboard decided, without touching the core.
# -------------------------------------------------------------------------------------------------


@hookspec
def ctid_call_event(event: CallEvent, call: Call) -> None:
    """Called after the switchboard has reduced a newly accepted event into its call.

    Not called for duplicates (redelivered events with a known idempotency key).

    :param event: the normalized event as the connector produced it.
    :param call: the call's state after the event (do not modify it).

    .. versionadded:: 0.1
    """


@hookspec
def ctid_call_ended(call: Call) -> None:
    """Called once when a call reaches the ``ended`` state (and again if a later authoritative
    record, such as PBX history, changes its outcome or durations).

    :param call: the ended call (do not modify it).

    .. versionadded:: 0.1
    """


@hookspec
def ctid_agent_status(agent: Agent, previous: str | None) -> None:
    """Called when an agent's presence (available, away, dnd, offline) or busy state changes.

    :param agent: the agent after the change (do not modify it).
    :param previous: the agent's previous ``presence`` value (``busy`` when it was on a call), or
        ``None`` when the agent first appears.

    .. versionadded:: 0.1
    """


@hookspec
def ctid_task_updated(task: Task) -> None:
    """Called when a callback task is created, updated (a repeat miss) or closed.

    :param task: the task after the change (do not modify it).

    .. versionadded:: 0.1
    """
