"""Soft lockout of password guessing: per-username and per-address counters of wrong passwords.

OWASP ASVS 2.2.1 asks that brute force, credential stuffing and lockout attacks all be hard. ctid
counts wrong passwords per username (from any address) and per client address (any username; an
IPv6 address by its /64, which one client usually has whole). Below ``user_failures`` /
``source_failures`` nothing changes; from then on every further attempt for that key must wait,
``lockout_seconds`` after the first and twice as long after each further wrong password, never more
than ``max_lockout_seconds``. While a key waits its attempts are refused with 429 and
``Retry-After`` *without* checking the password, so they cost nothing and teach nothing.

The lockout is soft: it ends by itself, a counter with no wrong password for ``forget_seconds``
starts over, and a right password resets the username's counter (not the address's, so one
valid account does not unlock an address that guesses others). An attacker can keep one username
waiting only by guessing on, about once per ``max_lockout_seconds``, and never reaches the password
check while doing so; other usernames and addresses are not affected. And even then the user is
not locked out: an address the username signed in from successfully within ``trusted_seconds``
(the operator's own desk) is not held by the username's wait, only by its own address's.

Every attempt is counted as wrong *before* its password is checked and taken back when it was
right, so a burst of parallel guesses cannot all pass before the first result is in.

Several instances share their counters through the hub's backplane (``share``): every wrong
password and every reset is published on ``ctid:auth``, and each instance applies the others'.
With the in-memory backplane (one instance) nothing is published. Counters live in memory: a
restart forgets them, which costs an attacker's target one more round of free guesses at most.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ctid.config.models import LoginThrottleConfig
from ctid.errors import CtidError

log = logging.getLogger(__name__)

CHANNEL = "ctid:auth"
MAX_KEYS = 100_000  # counters kept per kind; the least recently touched are forgotten first


class LoginThrottled(CtidError):
    """Too many wrong passwords for this username or from this address: wait ``retry_after`` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, error_id="login_throttled")
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(slots=True)
class _Counter:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class _Counters:
    """Counters of one kind (usernames or addresses), bounded to MAX_KEYS."""

    def __init__(self, threshold: int, config: LoginThrottleConfig):
        self.threshold = threshold
        self.config = config
        self._items: OrderedDict[str, _Counter] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        """Seconds ``key`` must still wait (0: may try)."""
        counter = self._items.get(key)
        return max(0.0, counter.locked_until - now) if counter is not None else 0.0

    def fail(self, key: str, now: float) -> None:
        counter = self._items.get(key)
        if counter is None or now - counter.last > self.config.forget_seconds:
            counter = _Counter()
        self._items[key] = counter
        self._items.move_to_end(key)
        while len(self._items) > MAX_KEYS:
            self._items.popitem(last=False)
        counter.failures += 1
        counter.last = now
        over = counter.failures - self.threshold
        if over >= 0:
            wait = min(self.config.lockout_seconds * 2 ** min(over, 32), self.config.max_lockout_seconds)
            counter.locked_until = max(counter.locked_until, now + wait)

    def take_back(self, key: str) -> None:
        """Undo one failure counted ahead of a check that turned out right (the lock, if any, stays)."""
        counter = self._items.get(key)
        if counter is not None and counter.failures > 0:
            counter.failures -= 1

    def reset(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


def source_key(address: str | None) -> str:
    """The counter key of a client address: IPv4 as is, IPv6 by its /64, anything else verbatim."""
    if not address:
        return "-"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def user_key(username: str) -> str:
    """Usernames are counted by a digest: any length or code point, and never published in clear."""
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class LoginThrottle:
    """Decides whether a login attempt may check its password, and learns from each result."""

    def __init__(self, config: LoginThrottleConfig, *, clock: Callable[[], float] | None = None):
        self.config = config
        self._clock = clock or trio.current_time
        self.users = _Counters(config.user_failures, config)
        self.sources = _Counters(config.source_failures, config)
        self.trusted: OrderedDict[tuple[str, str], float] = OrderedDict()  # (user, address) -> last success
        self._publish: Callable[[dict[str, Any]], None] | None = None

    def begin(self, username: str, source: str | None) -> tuple[str, str]:
        """Raise :class:`LoginThrottled` if either key must wait; else count the attempt as wrong
        (taken back by :meth:`succeeded`) and return the keys for :meth:`succeeded`."""
        user, addr = user_key(username), source_key(source)
        if not self.config.enabled:
            return user, addr
        now = self._clock()
        wait = self.sources.wait(addr, now)
        if not self._trusted(user, addr, now):
            wait = max(wait, self.users.wait(user, now))
        if wait > 0:
            raise LoginThrottled(
                f"too many wrong passwords; try again in {max(1, math.ceil(wait))} s", retry_after=wait)
        self._failed(user, addr, now)
        self._share({"k": "fail", "u": user, "s": addr})
        return user, addr

    def succeeded(self, keys: tuple[str, str]) -> None:
        if not self.config.enabled:
            return
        user, addr = keys
        self._succeeded(user, addr)
        self._share({"k": "ok", "u": user, "s": addr})

    def _succeeded(self, user: str, addr: str) -> None:
        self.users.reset(user)
        self.sources.take_back(addr)
        self.trusted[(user, addr)] = self._clock()
        self.trusted.move_to_end((user, addr))
        while len(self.trusted) > MAX_KEYS:
            self.trusted.popitem(last=False)

    def _trusted(self, user: str, addr: str, now: float) -> bool:
        """Whether ``user`` signed in from ``addr`` within ``trusted_seconds``."""
        since = self.trusted.get((user, addr))
        return since is not None and now - since <= self.config.trusted_seconds

    def _failed(self, user: str, addr: str, now: float) -> None:
        self.users.fail(user, now)
        self.sources.fail(addr, now)

    # -- several instances ------------------------------------------------------------------------
    def _share(self, message: dict[str, Any]) -> None:
        if self._publish is not None:
            self._publish(message)

    def apply(self, message: dict[str, Any]) -> None:
        """A wrong password or a reset another instance saw."""
        user, addr = message.get("u"), message.get("s")
        if not isinstance(user, str) or not isinstance(addr, str):
            return
        if message.get("k") == "fail":
            self._failed(user, addr, self._clock())
        elif message.get("k") == "ok":
            self._succeeded(user, addr)

    async def share(self, backplane: Any, instance_id: str, *, channel: str = CHANNEL,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Publish this instance's results on the backplane and apply the other instances' (a task)."""
        from ctid.hub.backplane import sender_prefix

        own = sender_prefix(instance_id)

        def publish(message: dict[str, Any]) -> None:
            data = json.dumps({"o": instance_id, **message}, separators=(",", ":")).encode()
            backplane.publish_nowait(channel, data)

        async with backplane.subscribe(channel) as messages:
            self._publish = publish
            task_status.started()
            try:
                async for data in messages:
                    if data.startswith(own):
                        continue
                    try:
                        message = json.loads(data)
                    except ValueError:
                        log.warning("ignoring an unreadable message on %s", channel)
                        continue
                    if isinstance(message, dict):
                        self.apply(message)
            finally:
                self._publish = None
