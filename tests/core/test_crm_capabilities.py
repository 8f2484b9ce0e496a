"""The core calls and queues only what a CRM adapter declares (ctid/crm.py capabilities)."""

from __future__ import annotations

import types

import ctid
from ctid.crm import ContactMatch, CRMAdapter, CRMConfig
from ctid.testing.daemon import running_daemon

from .test_hooks import _missed_call


class LookupOnly(CRMAdapter):
    plugin_name = "lookup-only"
    Config = type("LookupOnlyConfig", (CRMConfig,), {})
    capabilities = frozenset({"lookup"})
    lookups: list[str] = []

    async def lookup(self, phone):
        self.lookups.append(phone)
        return [ContactMatch(id="c-9", entity="contact", name="Nina")]


class WritesOnly(CRMAdapter):
    """Declares log_call only: it is never asked to look anybody up."""

    plugin_name = "writes-only"
    Config = type("WritesOnlyConfig", (CRMConfig,), {})
    capabilities = frozenset({"log_call"})
    logged: list[str] = []

    async def log_call(self, call, agent):
        self.logged.append(call.id)
        return call.id


def plugin(cls):
    return types.SimpleNamespace(ctid_register_crms=ctid.hookimpl(lambda: [cls]))


async def test_a_lookup_only_crm_gets_lookups_and_no_outbox_jobs(config):
    config["crm"] = {"plugin": "lookup-only"}
    async with running_daemon(config, plugins=[plugin(LookupOnly)]) as app:
        assert (await _missed_call(app)).status_code == 200
        assert await app.daemon.contacts.lookup("+79161234567") == [
            ContactMatch(id="c-9", entity="contact", name="Nina")]
        stats = await app.daemon.store.outbox_stats()
        assert (stats["pending"], stats["done"], stats["dead"]) == (0, 0, 0)  # no log_call, no task jobs
    assert "+79161234567" in LookupOnly.lookups


async def test_a_crm_without_lookup_is_never_asked(config):
    config["crm"] = {"plugin": "writes-only"}
    async with running_daemon(config, plugins=[plugin(WritesOnly)]) as app:
        assert await app.daemon.contacts.lookup("+79161234567") == []
        assert (await _missed_call(app)).status_code == 200
        stats = await app.daemon.store.outbox_stats()
        assert stats["pending"] + stats["done"] == 1  # the log_call job; no callback-task job
