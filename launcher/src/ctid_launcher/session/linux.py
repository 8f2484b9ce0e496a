"""Linux: logind's ``LockedHint`` of this process's session on the system bus (jeepney on trio),
with the desktop's ScreenSaver ``ActiveChanged`` on the session bus as the fallback, and logind's
``PrepareForSleep`` for suspend / resume.

``LockedHint`` is what the desktop sets when the screen really locks; logind's ``Lock`` /
``Unlock`` signals are only *requests* to the screen locker, so they are not used. Signals are
not emitted on the ``session/auto`` alias: the real session path is resolved first
(``GetSession($XDG_SESSION_ID)`` or ``GetSessionByPID``). The bus addresses come from
``DBUS_SYSTEM_BUS_ADDRESS`` / ``DBUS_SESSION_BUS_ADDRESS`` (tests run a private ``dbus-daemon``).
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio
from jeepney import (
    DBusAddress,
    DBusErrorResponse,
    HeaderFields,
    MatchRule,
    MessageType,
    Properties,
    new_method_call,
)
from jeepney.bus_messages import message_bus
from jeepney.io.trio import open_dbus_connection

from ctid_launcher.policy import Event, Kind

log = logging.getLogger(__name__)

LOGIN1 = "org.freedesktop.login1"
MANAGER = DBusAddress("/org/freedesktop/login1", bus_name=LOGIN1, interface="org.freedesktop.login1.Manager")
SESSION_IF = "org.freedesktop.login1.Session"
AUTO_PATH = "/org/freedesktop/login1/session/auto"
SCREENSAVERS = [  # (bus name, object path, interface), in order of preference
    ("org.freedesktop.ScreenSaver", "/org/freedesktop/ScreenSaver", "org.freedesktop.ScreenSaver"),
    ("org.gnome.ScreenSaver", "/org/gnome/ScreenSaver", "org.gnome.ScreenSaver"),
]


class Bus:
    """One D-Bus connection without jeepney's router (the router's teardown races with trio
    cancellation in jeepney 0.9): a method call waits for its own reply; signals arriving meanwhile
    are kept for :meth:`next_signal`."""

    def __init__(self, conn):
        self.conn = conn
        self._backlog: collections.deque = collections.deque()

    async def call(self, message) -> tuple:
        serial = next(self.conn.outgoing_serial)
        await self.conn.send(message, serial=serial)
        while True:
            reply = await self.conn.receive()
            if reply.header.fields.get(HeaderFields.reply_serial) == serial:
                if reply.header.message_type is MessageType.error:
                    raise DBusErrorResponse(reply)
                return reply.body
            self._backlog.append(reply)

    async def next_signal(self):
        while True:
            message = self._backlog.popleft() if self._backlog else await self.conn.receive()
            if message.header.message_type is MessageType.signal:
                return message

    async def add_match(self, rule: MatchRule) -> None:
        await self.call(message_bus.AddMatch(rule))


@asynccontextmanager
async def open_bus(address: str) -> AsyncIterator[Bus]:
    conn = await open_dbus_connection(address)
    try:
        yield Bus(conn)
    finally:
        with trio.CancelScope(shield=True):
            await conn.aclose()


async def session_path(bus) -> str:
    """This process's logind session object path (not the ``auto`` alias)."""
    session_id = os.environ.get("XDG_SESSION_ID")
    if session_id:
        try:
            return (await bus.call(new_method_call(MANAGER, "GetSession", "s", (session_id,))))[0]
        except DBusErrorResponse as exc:
            log.warning("logind does not know session %s (%s); asking by process", session_id, exc)
    try:
        return (await bus.call(new_method_call(MANAGER, "GetSessionByPID", "u", (os.getpid(),))))[0]
    except DBusErrorResponse as exc:
        log.warning("logind has no session for this process (%s); using the 'auto' alias", exc)
        return AUTO_PATH


async def locked_hint(bus, path: str) -> bool | None:
    """The session's ``LockedHint``, or None when logind does not have it."""
    address = DBusAddress(path, bus_name=LOGIN1, interface=SESSION_IF)
    try:
        (value,) = await bus.call(Properties(address).get("LockedHint"))
    except DBusErrorResponse:
        return None
    return bool(value[1])


class LinuxWatcher:
    def __init__(self, system_bus: str = "SYSTEM", session_bus: str = "SESSION"):
        self.system_bus, self.session_bus = system_bus, session_bus
        self.description = "not probed yet"

    async def locked(self) -> bool:
        try:
            async with open_bus(self.system_bus) as bus:
                hint = await locked_hint(bus, await session_path(bus))
                if hint is not None:
                    self.description = "logind LockedHint"
                    return hint
        except (OSError, KeyError, DBusErrorResponse) as exc:
            log.info("no system bus / logind (%s)", exc)
        for name, path, interface in SCREENSAVERS:
            try:
                async with open_bus(self.session_bus) as bus:
                    address = DBusAddress(path, bus_name=name, interface=interface)
                    (active,) = await bus.call(new_method_call(address, "GetActive"))
                    self.description = f"{name} ActiveChanged"
                    return bool(active)
            except (OSError, KeyError, DBusErrorResponse):
                continue
        self.description = "none (no logind LockedHint, no ScreenSaver service)"
        return False

    async def watch(self, emit: Callable[[Event], None]) -> None:
        try:
            async with open_bus(self.system_bus) as bus:
                path = await session_path(bus)
                hint = await locked_hint(bus, path)
                if hint is not None:
                    self.description = "logind LockedHint"
                    log.info("watching logind LockedHint of %s", path)
                    await self._watch_logind(bus, path, hint, emit)
                    return
                log.info("logind session %s has no LockedHint: trying the ScreenSaver services", path)
        except (OSError, KeyError, DBusErrorResponse) as exc:
            log.info("no system bus / logind (%s): trying the ScreenSaver services", exc)
        await self._watch_screensaver(emit)

    async def _watch_logind(self, bus: Bus, path: str, hint: bool, emit: Callable[[Event], None]) -> None:
        changed = MatchRule(type="signal", interface="org.freedesktop.DBus.Properties", member="PropertiesChanged",
                            path=path)
        changed.add_arg_condition(0, SESSION_IF)
        sleep = MatchRule(type="signal", interface=MANAGER.interface, member="PrepareForSleep",
                          path=MANAGER.object_path)
        for rule in (changed, sleep):
            await bus.add_match(rule)
        while True:
            message = await bus.next_signal()
            fields = message.header.fields
            member = fields.get(HeaderFields.member)
            if member == "PropertiesChanged" and fields.get(HeaderFields.path) == path:
                interface, values, invalidated = message.body
                if interface != SESSION_IF:
                    continue
                if "LockedHint" in values:
                    now = bool(values["LockedHint"][1])
                elif "LockedHint" in invalidated:
                    now = bool(await locked_hint(bus, path))
                else:
                    continue
                if now != hint:
                    hint = now
                    emit(Event(Kind.LOCKED if now else Kind.UNLOCKED))
            elif member == "PrepareForSleep" and fields.get(HeaderFields.interface) == MANAGER.interface:
                if message.body[0]:
                    emit(Event(Kind.SUSPEND))
                else:
                    hint = bool(await locked_hint(bus, path))
                    emit(Event(Kind.RESUME, locked=hint))

    async def _watch_screensaver(self, emit: Callable[[Event], None]) -> None:
        for name, path, interface in SCREENSAVERS:
            try:
                async with open_bus(self.session_bus) as bus:
                    address = DBusAddress(path, bus_name=name, interface=interface)
                    (active,) = await bus.call(new_method_call(address, "GetActive"))
                    rule = MatchRule(type="signal", interface=interface, member="ActiveChanged", path=path)
                    await bus.add_match(rule)
                    self.description = f"{name} ActiveChanged"
                    log.info("watching %s ActiveChanged", name)
                    while True:
                        message = await bus.next_signal()
                        if message.header.fields.get(HeaderFields.member) != "ActiveChanged":
                            continue
                        now = bool(message.body[0])
                        if now != active:
                            active = now
                            emit(Event(Kind.LOCKED if now else Kind.UNLOCKED))
            except (OSError, KeyError, DBusErrorResponse) as exc:
                log.info("%s unavailable: %s", name, exc)
        self.description = "none (no logind LockedHint, no ScreenSaver service)"
        log.warning("no lock source on this desktop: the launcher cannot see the workstation lock")
        await trio.sleep_forever()
