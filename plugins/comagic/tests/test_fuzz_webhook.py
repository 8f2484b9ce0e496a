"""CoMagic notifications fuzzed through a running ctid (ctid.testing.fuzz): the connector's own
simulated notifications for every scenario, with fields spoiled, dropped or added. No answer is a 5xx
or a dead letter, each comes within seconds on one keep-alive connection, and ctid serves on."""

from __future__ import annotations

from test_daemon_e2e import account, config, ready  # noqa: F401  (the fake account fixture)

from comagic_kit import INSTANCE
from ctid.testing.daemon import running_daemon
from ctid.testing.fuzz import fuzz_simulated_webhooks, sweep_simulated_webhooks


async def test_fuzzed_comagic_notifications_never_5xx(tmp_path, account):  # noqa: F811
    _, url = account
    async with running_daemon(config(tmp_path, url)) as app:
        await ready(app)
        statuses = await fuzz_simulated_webhooks(app, INSTANCE)
        assert 200 in statuses, statuses


async def test_every_field_of_every_comagic_notification_swept(tmp_path, account):  # noqa: F811
    # deterministic: each field of each simulated notification × SWEEP_VALUES (found the '³' session id)
    _, url = account
    async with running_daemon(config(tmp_path, url)) as app:
        await ready(app)
        statuses = await sweep_simulated_webhooks(app, INSTANCE)
        assert 400 in statuses and 200 in statuses, statuses
