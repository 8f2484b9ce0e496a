"""A plugin with two implementations of one hook (an observer and a wrapper of it, or two observers
through ``specname``) is guarded once per implementation: pluggy's ``get_hookcallers`` names the hook
once per implementation, and a guard wrapped around a guard saw the inner one's caught failure as a
success, so health flapped to "works again" on every call and each failure was logged anew."""

from __future__ import annotations

import logging

import trio

import ctid
from ctid.plugins import CtidPluginManager
from ctid.supervise import Supervisor


class TwoOfOneHook:
    """An always-failing observer of ctid_call_ended, and a second one of the same hook."""

    @ctid.hookimpl
    def ctid_call_ended(self, call):
        raise KeyError("observer bug")

    @ctid.hookimpl(specname="ctid_call_ended")
    def also_ended(self, call):
        raise KeyError("observer bug")

    @ctid.hookimpl(wrapper=True, specname="ctid_call_ended")
    def around(self, call):
        return (yield)


def test_each_implementation_is_guarded_once() -> None:
    pm = CtidPluginManager()
    pm.register(TwoOfOneHook(), name="twice")
    for impl in pm.hook.ctid_call_ended.get_hookimpls():
        depth, function = 0, impl.function
        while hasattr(function, "__wrapped__"):
            depth, function = depth + 1, function.__wrapped__
        assert depth == (0 if impl.wrapper else 1), impl


def test_an_observer_failing_every_time_stays_failing_and_is_logged_once(caplog) -> None:
    async def main() -> None:
        pm = CtidPluginManager()
        supervisor = Supervisor(errors=pm.errors)
        pm.reporter = supervisor
        pm.register(TwoOfOneHook(), name="twice")
        with caplog.at_level(logging.DEBUG, logger="ctid"):
            for _ in range(5):
                pm.notify("ctid_call_ended", call=object())
        assert not [r for r in caplog.records if "works again" in r.getMessage()]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and errors[0].exc_info is not None
        assert supervisor.health()["twice"]["ok"] is False
        assert pm.errors.count("twice", "ctid_call_ended") == 10  # two implementations, five calls

    trio.run(main)
