"""pytest plugin registered through the ``pytest11`` entry point: ctid's fixtures for plugin tests.

Installed with ctid, active in every pytest run (the fixtures cost nothing until a test asks for
them; the async ones need pytest-trio, ``trio_mode = true``):

- ``ctid_config``: the configuration dict of the daemon; by default :func:`ctid.testing.kit.base_config`
  (``ctid_base_config``). Override it in your ``conftest.py`` or test module to add your plugin.
- ``ctid_plugins``: extra plugin objects registered before the configuration is validated (default: none).
- ``ctid_daemon``: a running ``ctid serve`` (in-process, free port) with ``ctid_config``: a
  :class:`ctid.testing.daemon.RunningDaemon` (``.daemon``, ``.url``, ``.client``, ``.token()``).
- ``ctid_hub``: ``async with ctid_hub("alice") as hub`` — a hub connection as a configured user.
- ``ctid_webhooks``: ``ctid_webhooks(instance, sign=...)`` — a :class:`ctid.testing.kit.WebhookPoster`;
  ``ctid_webhooks()`` posts to the base configuration's generic connector, signed.
- ``ctid_clock``: UTC datetimes on the test's Trio mock clock (:class:`ctid.testing.kit.WallClock`;
  ask for pytest-trio's ``autojump_clock`` or ``mock_clock`` too); pass it to
  ``running_daemon(..., clock=ctid_clock)`` or override ``ctid_daemon_clock`` to use it in ``ctid_daemon``.

The conformance suites for connector and CRM plugins are in :mod:`ctid.testing.conformance`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ctid.testing import kit


@pytest.fixture
def ctid_base_config(tmp_path) -> dict[str, Any]:
    """:func:`ctid.testing.kit.base_config` for this test's ``tmp_path``."""
    return kit.base_config(tmp_path)


@pytest.fixture
def ctid_config(ctid_base_config: dict[str, Any]) -> dict[str, Any]:
    """The configuration ``ctid_daemon`` runs with; override to add your plugin's sections."""
    return ctid_base_config


@pytest.fixture
def ctid_plugins() -> list[Any]:
    """Plugin objects to register in ``ctid_daemon`` besides the installed ones."""
    return []


@pytest.fixture
def ctid_daemon_clock() -> Any:
    """The wall clock of ``ctid_daemon`` (None: the real one); override with ``ctid_clock``."""
    return None


@pytest.fixture
async def ctid_daemon(ctid_config: dict[str, Any], ctid_plugins: list[Any], ctid_daemon_clock: Any,
                      tmp_path) -> AsyncIterator[Any]:
    """A running daemon with ``ctid_config`` and the installed plugins (plus ``ctid_plugins``)."""
    from ctid.testing.daemon import running_daemon

    async with running_daemon(ctid_config, base_dir=tmp_path, plugins=ctid_plugins,
                              clock=ctid_daemon_clock) as app:
        yield app


@pytest.fixture
def ctid_hub(ctid_daemon: Any) -> kit.HubOpener:
    """``async with ctid_hub("alice") as hub:`` a hub client connected as a configured user."""
    return kit.HubOpener(ctid_daemon)


@pytest.fixture
def ctid_webhooks(ctid_daemon: Any) -> Callable[..., kit.WebhookPoster]:
    """``ctid_webhooks(instance, sign=...)``: a webhook poster for a connector instance of ``ctid_daemon``."""

    def poster(instance: str = kit.GENERIC_INSTANCE, *, sign: Callable[[bytes], Any] | None = None) -> kit.WebhookPoster:
        if sign is None and instance == kit.GENERIC_INSTANCE:
            sign = kit.generic_signer()
        return kit.WebhookPoster(ctid_daemon.client, instance, sign=sign)

    return poster


@pytest.fixture
def ctid_clock() -> kit.WallClock:
    """UTC datetimes on the test's Trio mock clock (:class:`ctid.testing.kit.WallClock`, starting at
    :data:`ctid.testing.kit.EPOCH`); the test also asks for ``autojump_clock`` or ``mock_clock``."""
    return kit.WallClock()
