"""MegaFon pushes fuzzed through a running ctid (ctid.testing.fuzz): the connector's own simulated
pushes for every scenario, in the native wire format with the valid token, with fields spoiled,
dropped or added, as forms and JSON. No answer is a 5xx or a dead letter, each comes within seconds
on one keep-alive connection, and ctid serves on."""

from __future__ import annotations

from test_daemon_e2e import config, tenant  # noqa: F401  (the fake tenant fixture)

from ctid.testing.daemon import running_daemon
from ctid.testing.fuzz import fuzz_simulated_webhooks, sweep_simulated_webhooks


async def test_fuzzed_megafon_pushes_never_5xx(tmp_path, tenant):  # noqa: F811
    _, url = tenant
    async with running_daemon(config(tmp_path, url)) as app:
        statuses = await fuzz_simulated_webhooks(app, "mf")
        assert 200 in statuses, statuses  # the spoiled pushes did not all bounce: the commit path ran too


async def test_every_field_of_every_megafon_push_swept(tmp_path, tenant):  # noqa: F811
    # deterministic: each form field of each simulated push × SWEEP_VALUES (text ones, bytes not UTF-8), deleted too
    _, url = tenant
    async with running_daemon(config(tmp_path, url)) as app:
        statuses = await sweep_simulated_webhooks(app, "mf")
        assert 200 in statuses and 400 in statuses, statuses
