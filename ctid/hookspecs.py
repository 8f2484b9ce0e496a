"""Every hook of ctid's plugin contract, in one place (contract version :data:`ctid.CONTRACT_VERSION`).

Plugins implement hooks with ``@ctid.hookimpl`` and are found through the ``ctid`` entry-point
group; a plugin module declares the contract version it was written for (``CTID_CONTRACT = "2.0"``,
checked at load by :func:`ctid.plugins.check_contract`). Hooks are called through pluggy with
keyword arguments only, and an implementation may accept a subset of the arguments, so a spec can
grow without breaking plugins. pluggy's ordering applies: ``tryfirst`` implementations run first,
``trylast`` ones last, the others in reverse order of registration; hook wrappers (``wrapper=True``,
or the old ``hookwrapper=True``) run around all of them.

Hooks are synchronous (pluggy has no async support): registration hooks return classes or objects
whose async work runs inside ctid's own nursery; observer hooks must return quickly and must not
block (start work elsewhere). Plugins fail alone: an exception raised by one implementation is
logged with its traceback and the plugin's name, counted in ``ctid_plugin_errors_total`` and shown
in health, and the other implementations still run. A registration hook that raises or returns
garbage fails only its own plugin (listed by ``ctid plugins`` with the error).

``.. versionadded::`` gives the contract version a hook appeared in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ctid.connector import Connector
    from ctid.crm import CRMAdapter
    from ctid.model import Agent, Call, CallEvent, Task
    from ctid.routes import PluginRoute
    from ctid.services import Services

hookspec = pluggy.HookspecMarker("ctid")

#: Hooks whose implementations return what the plugin provides; each is checked on its own.
REGISTRATION_HOOKS = frozenset({"ctid_register_connectors", "ctid_register_crms", "ctid_register_routes"})
#: Hooks that tell plugins what happened; each implementation fails alone.
OBSERVER_HOOKS = frozenset({
    "ctid_serve_started", "ctid_serve_stopping", "ctid_call_event", "ctid_call_ended", "ctid_agent_status",
    "ctid_task_updated",
})


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

    .. versionadded:: 1.0
    """


@hookspec
def ctid_register_crms() -> list[type[CRMAdapter]]:
    """Return the CRM adapter classes this plugin provides.

    Called once per process after plugins are loaded, before the configuration's ``crm`` section is
    validated. Each class is a subclass of :class:`ctid.crm.CRMAdapter` with a unique
    ``plugin_name``; the configuration selects one with ``crm.plugin``.

    :return: a list of CRM adapter classes (may be empty).

    .. versionadded:: 1.0
    """


@hookspec
def ctid_register_routes() -> list[PluginRoute]:
    """Return the HTTP routes this plugin serves under ``/plugins/{plugin}/...``.

    Called once when ``ctid serve`` builds its web application. ``{plugin}`` is the plugin's
    entry-point name; each :class:`ctid.routes.PluginRoute` gives a method, a path relative to that
    prefix, an async handler and the route's OpenAPI description, which ``/openapi.json`` includes.
    Handlers run supervised: a :class:`ctid.errors.CtidError` becomes its HTTP error answer, any
    other exception is logged, counted and answered ``502 {"error": "plugin_failed"}``.

    :return: a list of :class:`ctid.routes.PluginRoute` (may be empty).

    .. versionadded:: 2.0
    """


# -------------------------------------------------------------------------------------------------
# Lifecycle of `ctid serve`.
# -------------------------------------------------------------------------------------------------


@hookspec
def ctid_serve_started(services: Services) -> None:
    """Called once when ``ctid serve`` is ready: the database is migrated, connectors are open and
    the web server listens.

    :param services: the running daemon's services (directory, store access, public URL).

    .. versionadded:: 1.0
    """


@hookspec
def ctid_serve_stopping(services: Services) -> None:
    """Called once when ``ctid serve`` begins a graceful shutdown, before connectors are closed.

    :param services: the running daemon's services.

    .. versionadded:: 1.0
    """


# -------------------------------------------------------------------------------------------------
# Observers: react to what the switchboard decided, without touching the core.
# -------------------------------------------------------------------------------------------------


@hookspec
def ctid_call_event(event: CallEvent, call: Call) -> None:
    """Called after the switchboard has reduced a newly accepted event into its call.

    Not called for duplicates (redelivered events with a known idempotency key). Facts the PBX
    states about the call (campaign, UTM tags, cost, rating: :mod:`ctid.facts`) come as
    ``event.facts``, merged in event order into ``call.facts``; an event of kind ``facts`` changes
    nothing else about the call.

    :param event: the normalized event as the connector produced it.
    :param call: the call's state after the event (do not modify it).

    .. versionadded:: 1.0
    """


@hookspec
def ctid_call_ended(call: Call) -> None:
    """Called once when a call reaches the ``ended`` state (and again if a later authoritative
    record, such as PBX history, changes its outcome or durations).

    :param call: the ended call (do not modify it).

    .. versionadded:: 1.0
    """


@hookspec
def ctid_agent_status(agent: Agent, previous: str | None) -> None:
    """Called when an agent's presence (available, away, dnd, offline) or busy state changes.

    :param agent: the agent after the change (do not modify it).
    :param previous: the agent's previous ``presence`` value (``busy`` when it was on a call), or
        ``None`` when the agent first appears.

    .. versionadded:: 1.0
    """


@hookspec
def ctid_task_updated(task: Task) -> None:
    """Called when a callback task is created, updated (a repeat miss) or closed.

    :param task: the task after the change (do not modify it).

    .. versionadded:: 1.0
    """
