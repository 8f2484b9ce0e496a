"""Hooks are called through pluggy: its documented order, firstresult, both kinds of wrappers, and
plugins that fail alone (an observer or a wrapper raising leaves the others called)."""

from __future__ import annotations

import types

import pytest

import ctid
from ctid.connector import Connector, ConnectorConfig
from ctid.plugins import CtidPluginManager


def _plugin(**hooks: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(**hooks)


def _observers(log: list[str]) -> list[tuple[str, object]]:
    """Five observers of ctid_call_ended registered in this order: plain-1, first, last, plain-2, new/old wrappers."""

    def plain(name):
        return ctid.hookimpl(lambda call: log.append(name))

    @ctid.hookimpl(wrapper=True)
    def new_wrapper(call):
        log.append("wrapper:before")
        result = yield
        log.append(f"wrapper:after:{result!r}")
        return result

    @ctid.hookimpl(hookwrapper=True)
    def old_wrapper(call):
        log.append("hookwrapper:before")
        outcome = yield
        log.append(f"hookwrapper:after:{outcome.get_result()!r}")

    return [
        ("plain-1", _plugin(ctid_call_ended=plain("plain-1"))),
        ("first", _plugin(ctid_call_ended=ctid.hookimpl(tryfirst=True)(lambda call: log.append("first")))),
        ("last", _plugin(ctid_call_ended=ctid.hookimpl(trylast=True)(lambda call: log.append("last")))),
        ("plain-2", _plugin(ctid_call_ended=plain("plain-2"))),
        ("new-wrapper", _plugin(ctid_call_ended=new_wrapper)),
        ("old-wrapper", _plugin(ctid_call_ended=old_wrapper)),
    ]


def test_observers_run_in_pluggys_documented_order() -> None:
    log: list[str] = []
    pm = CtidPluginManager()
    for name, plugin in _observers(log):
        pm.register(plugin, name=name)
    pm.notify("ctid_call_ended", call=object())
    # pluggy: wrappers around everything (the one registered last outermost); then tryfirst, the
    # plain ones last-registered-first (LIFO), trylast; wrappers' teardowns in reverse.
    assert log == [
        "hookwrapper:before", "wrapper:before",
        "first", "plain-2", "plain-1", "last",
        "wrapper:after:[]", "hookwrapper:after:[]",
    ]


def test_a_raising_observer_leaves_the_others_called_and_is_recorded(caplog) -> None:
    log: list[str] = []
    pm = CtidPluginManager()
    for name, plugin in _observers(log):
        pm.register(plugin, name=name)

    @ctid.hookimpl
    def crash(call):
        raise ValueError("observer bug")

    pm.register(_plugin(ctid_call_ended=crash), name="crasher")
    pm.notify("ctid_call_ended", call=object())
    assert log[2:6] == ["first", "plain-2", "plain-1", "last"]
    assert log[-2:] == ["wrapper:after:[]", "hookwrapper:after:[]"]  # wrappers saw no exception
    assert pm.errors.count("crasher", "ctid_call_ended") == 1 and pm.errors.count() == 1
    [record] = [r for r in caplog.records if "crasher" in r.getMessage()]
    assert record.getMessage() == "plugin crasher failed in ctid_call_ended: ValueError: observer bug"
    assert record.exc_info is not None and record.exc_info[0] is ValueError  # logged with the traceback
    assert pm.errors.to_json()[0] | {"last_at": None} == {
        "plugin": "crasher", "where": "ctid_call_ended", "count": 1,
        "last_error": "ValueError: observer bug", "last_at": None}


def test_a_raising_wrapper_is_recorded_under_its_plugin_and_never_reaches_ctid() -> None:
    called: list[str] = []

    @ctid.hookimpl(wrapper=True)
    def broken(task):
        yield
        raise RuntimeError("wrapper bug")

    pm = CtidPluginManager()
    pm.register(_plugin(ctid_task_updated=ctid.hookimpl(lambda task: called.append("plain"))), name="plain")
    pm.register(_plugin(ctid_task_updated=broken), name="broken-wrapper")
    pm.notify("ctid_task_updated", task=object())
    assert called == ["plain"]
    assert pm.errors.count("broken-wrapper", "ctid_task_updated") == 1


def test_registration_hooks_go_through_pluggy_with_wrappers() -> None:
    seen: list[object] = []

    class Wrapped(Connector):
        plugin_name = "wrapped"
        Config = ConnectorConfig

    @ctid.hookimpl(wrapper=True)
    def watch():
        result = yield
        seen.append(result)
        return result

    pm = CtidPluginManager()
    pm.load_builtins()
    pm.register(_plugin(ctid_register_connectors=ctid.hookimpl(lambda: [Wrapped])), name="wrapped")
    pm.register(_plugin(ctid_register_connectors=watch), name="watcher")
    assert pm.connector_classes()["wrapped"] is Wrapped
    assert [Wrapped] in seen[0]  # the wrapper saw every plugin's result


def test_a_raising_registration_wrapper_fails_its_own_plugin_only() -> None:
    @ctid.hookimpl(hookwrapper=True)
    def broken():
        yield
        raise RuntimeError("bad wrapper")

    pm = CtidPluginManager()
    pm.load_builtins()
    pm.register(_plugin(ctid_register_connectors=broken), name="broken")
    assert "generic" in pm.connector_classes()
    assert [f.name for f in pm.failures] == ["broken"]
    assert pm.failures[0].error == "ctid_register_connectors: RuntimeError: bad wrapper"


def test_a_builtin_name_cannot_be_taken_by_a_later_plugin() -> None:
    """pluggy calls the last registered plugin first; the first registered keeps its plugin_name."""
    impostor = type("Impostor", (Connector,), {"plugin_name": "generic", "Config": ConnectorConfig})
    pm = CtidPluginManager()
    pm.load_builtins()
    pm.register(_plugin(ctid_register_connectors=ctid.hookimpl(lambda: [impostor])), name="impostor")
    assert pm.connector_classes()["generic"].__module__ == "ctid.builtins.generic"
    assert "already registered" in pm.failures[0].error and pm.failures[0].name == "impostor"


@pytest.mark.parametrize("kwargs", [{"tryfirst": True}, {"trylast": True}, {}])
def test_an_observer_may_take_a_subset_of_the_arguments(kwargs) -> None:
    got: list[object] = []
    pm = CtidPluginManager()
    pm.register(_plugin(ctid_call_event=ctid.hookimpl(**kwargs)(lambda call: got.append(call))), name="subset")
    pm.notify("ctid_call_event", event="the-event", call="the-call")
    assert got == ["the-call"]


def test_a_direct_call_of_a_registration_hook_checks_without_failing_anyone_yet() -> None:
    good = type("Good", (Connector,), {"plugin_name": "good", "Config": ConnectorConfig})
    pm = CtidPluginManager()
    pm.register(_plugin(ctid_register_connectors=ctid.hookimpl(lambda: [good])), name="good")
    pm.register(_plugin(ctid_register_connectors=ctid.hookimpl(lambda: "junk")), name="junk")
    assert pm.hook.ctid_register_connectors() == [[good]]  # junk's answer is dropped and recorded
    assert pm.errors.count("junk", "ctid_register_connectors") == 1 and pm.failures == []
    assert pm.connector_classes() == {"good": good}  # collecting judges it
    assert [f.name for f in pm.failures] == ["junk"]
