"""Password guessing is throttled (ASVS 2.2.1) and password checks never stall the event loop."""

from __future__ import annotations

import functools
import threading

import trio
from hypothesis import given
from hypothesis import strategies as st

from ctid.auth_throttle import LoginThrottle, LoginThrottled, source_key, user_key
from ctid.config.models import LoginThrottleConfig
from ctid.hub.backplane import MemoryBackplane
from ctid.testing.daemon import eventually, running_daemon

from .conftest import PASSWORDS, make_config

CONFIG = LoginThrottleConfig(user_failures=3, source_failures=10, lockout_seconds=30, max_lockout_seconds=120,
                             forget_seconds=600)


def refused(throttle: LoginThrottle, user: str, source: str) -> int | None:
    """Retry-After seconds when the attempt is refused, else None (and the attempt counts as wrong)."""
    try:
        throttle.begin(user, source)
    except LoginThrottled as exc:
        assert exc.status == 429 and exc.error_id == "login_throttled"
        return exc.retry_after
    return None


async def test_a_username_waits_longer_after_each_wrong_password_up_to_the_cap(autojump_clock):
    throttle = LoginThrottle(CONFIG)
    assert [refused(throttle, "alice", f"10.0.0.{i}") for i in range(3)] == [None] * 3  # any address
    assert refused(throttle, "alice", "10.0.0.9") == 30
    assert refused(throttle, "bob", "10.0.0.9") is None  # other usernames are not affected
    await trio.sleep(29)
    assert refused(throttle, "alice", "10.0.0.1") == 1
    waits = []
    for _ in range(4):  # each wrong password after a wait doubles the next wait, up to the cap
        await trio.sleep(waits[-1] if waits else 1)
        assert refused(throttle, "alice", "10.0.0.1") is None
        waits.append(refused(throttle, "alice", "10.0.0.1"))
    assert waits == [60, 120, 120, 120]


async def test_a_right_password_resets_the_username_and_old_failures_are_forgotten(autojump_clock):
    throttle = LoginThrottle(CONFIG)
    for _ in range(2):
        refused(throttle, "alice", "10.0.0.1")
    throttle.succeeded(throttle.begin("alice", "10.0.0.1"))
    assert [refused(throttle, "alice", "10.0.0.2") for _ in range(4)] == [None, None, None, 30]
    await trio.sleep(601)  # the lockout ended long ago and the counter is forgotten
    assert [refused(throttle, "alice", "10.0.0.2") for _ in range(4)] == [None, None, None, 30]


async def test_one_address_guessing_many_usernames_is_throttled(autojump_clock):
    throttle = LoginThrottle(CONFIG)
    assert [refused(throttle, f"user{i}", "2001:db8::1") for i in range(10)] == [None] * 10
    assert refused(throttle, "user99", "2001:db8::ffff") == 30  # the same /64
    assert refused(throttle, "user99", "2001:db9::1") is None
    assert source_key("::ffff:10.1.2.3") == "10.1.2.3" and source_key(None) == "-"


async def test_instances_share_counters_through_the_backplane(autojump_clock):
    backplane = MemoryBackplane()
    first, second = LoginThrottle(CONFIG), LoginThrottle(CONFIG)
    async with trio.open_nursery() as nursery:
        await nursery.start(first.share, backplane, "one")
        await nursery.start(second.share, backplane, "two")
        for _ in range(3):
            refused(first, "alice", "10.0.0.1")
        await trio.testing.wait_all_tasks_blocked()
        assert refused(second, "alice", "10.0.0.2") == 30  # counted on the other instance
        assert len(first.users) == 1  # its own messages are not applied twice: still locked after 3
        nursery.cancel_scope.cancel()


async def test_instances_share_counters_through_redis(redis_url, redis_prefix):
    from ctid.hub.redis_backplane import RedisBackplane

    first, second = LoginThrottle(CONFIG), LoginThrottle(CONFIG)
    one, two = RedisBackplane(redis_url), RedisBackplane(redis_url)
    channel = f"{redis_prefix}auth"
    async with trio.open_nursery() as nursery:
        for backplane in (one, two):
            await nursery.start(backplane.run)
        await nursery.start(functools.partial(first.share, one, "one", channel=channel))
        await nursery.start(functools.partial(second.share, two, "two", channel=channel))

        async def subscribed() -> bool:  # Redis confirmed both subscriptions
            return one.continuity(channel) is not None and two.continuity(channel) is not None

        await eventually(subscribed)
        for _ in range(3):
            refused(first, "alice", "10.0.0.1")

        async def locked_on_the_other() -> bool:
            return second.users.wait(user_key("alice"), trio.current_time()) > 0

        await eventually(locked_on_the_other)
        nursery.cancel_scope.cancel()


async def test_the_api_answers_429_with_retry_after_and_a_stable_error_id(tmp_path, fake_pbx):
    config = make_config(tmp_path, command_url=fake_pbx.url)
    config["auth"]["throttle"] = {"user_failures": 3, "lockout_seconds": 60}
    async with running_daemon(config) as app:
        wrong = {"username": "alice", "password": "guess"}
        statuses = [(await app.client.post("/api/auth/token", json=wrong)).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        response = await app.client.post("/api/auth/token", json={"username": "alice", "password": PASSWORDS["alice"]})
        assert response.status_code == 429 and 55 <= int(response.headers["Retry-After"]) <= 60
        assert response.json()["error"] == "login_throttled"
        assert await app.token("bob", PASSWORDS["bob"])  # another user is unaffected
        assert "429" in (await app.client.get("/openapi.json")).json()["paths"]["/api/auth/token"]["post"]["responses"]


async def test_password_checks_run_in_threads_and_healthz_answers_meanwhile(tmp_path, fake_pbx, monkeypatch):
    """Four clients post passwords whose checks block; /healthz still answers while they are in their
    threads, and never more checks run at once than ``password_threads``."""
    release = threading.Event()
    lock = threading.Lock()
    running, most = [0], [0]

    def blocking_check(password: str, stored: str) -> bool:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(30)  # a slow scrypt; released by the test
        with lock:
            running[0] -= 1
        return False

    monkeypatch.setattr("ctid.auth.verify_password", blocking_check)
    config = make_config(tmp_path, command_url=fake_pbx.url)
    config["auth"]["throttle"] = {"password_threads": 2}
    async with running_daemon(config) as app:
        statuses = []

        async def guess(index: int) -> None:
            response = await app.client.post("/api/auth/token", json={"username": f"u{index}", "password": "x"})
            statuses.append(response.status_code)

        async with trio.open_nursery() as nursery:
            for index in range(4):
                nursery.start_soon(guess, index)

            async def two_checks_running() -> bool:
                return running[0] == 2

            await eventually(two_checks_running)
            health = await app.client.get("/healthz")
            assert health.status_code == 200 and running[0] == 2  # answered while both checks block
            release.set()
        assert statuses == [401] * 4 and most[0] == 2


@given(username=st.text(max_size=300), source=st.one_of(st.none(), st.text(max_size=60)))
def test_any_username_and_address_are_counted_without_crashing(username, source):
    throttle = LoginThrottle(CONFIG, clock=lambda: 0.0)
    keys = throttle.begin(username, source)
    assert len(keys[0]) == 32 and len(keys[1]) <= 100
    throttle.succeeded(keys)
    assert throttle.users.wait(keys[0], 0.0) == 0


async def test_a_locked_username_still_signs_in_from_an_address_it_used_before(autojump_clock):
    """An attacker guessing from elsewhere cannot lock the operator out of their own desk."""
    throttle = LoginThrottle(CONFIG)
    throttle.succeeded(throttle.begin("alice", "10.0.0.7"))  # the operator's desk
    for attempt in range(3):
        refused(throttle, "alice", f"192.0.2.{attempt}")  # the attacker
    assert refused(throttle, "alice", "192.0.2.9") == 30
    keys = throttle.begin("alice", "10.0.0.7")  # not held by alice's wait
    throttle.succeeded(keys)
    await trio.sleep(CONFIG.trusted_seconds + 1)
    for attempt in range(3):
        refused(throttle, "alice", f"192.0.2.{attempt}")
    assert refused(throttle, "alice", "10.0.0.7") == 30  # trust lapses
