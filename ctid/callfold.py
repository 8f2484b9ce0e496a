"""The pure fold from the set of one call's events to its :class:`~ctid.model.Call` state.

:func:`fold_call` is a function of the event *set*: it sorts the events by
:meth:`CallEvent.sort_key` itself, so duplicates removed, any arrival order gives the same call.
The rules are documented in ``docs/call-model.md``; the comments here name them briefly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ctid.facts import merge_facts
from ctid.model import Call, CallEvent, CallState, Direction, EventKind, Outcome
from ctid.phone import normalize

#: Hints an END / LEG_END may give for an unanswered call; others fall back to missed / no_answer.
UNANSWERED_HINTS = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED})

_RINGING, _TALKING, _ENDED = "ringing", "talking", "ended"

#: Events the walk over the call's legs does not see: SUMMARY is overlaid after it, FACTS only
#: add facts (a cost fetched after the call must not revive or re-time it).
_NOT_LIVE = frozenset({EventKind.SUMMARY, EventKind.FACTS})


def seconds(delta: timedelta) -> float:
    """A duration in seconds rounded to milliseconds, never negative."""
    return round(max(delta.total_seconds(), 0.0), 3)


def default_unanswered(direction: Direction) -> Outcome:
    """The outcome of an unanswered call when the PBX gave no usable hint."""
    return Outcome.MISSED if direction is Direction.INBOUND else Outcome.NO_ANSWER


@dataclass(slots=True)
class _Leg:
    """One leg: the caller (``key`` None, created by a RING without agent) or one agent's phone."""

    key: str | None
    login: str | None = None
    agent: str | None = None
    state: str = _RINGING


def _first(values: Iterable[Any]) -> Any:
    return next((value for value in values if value is not None), None)


class _Fold:
    """The walk over the live (non-summary) events of one call, in sort order."""

    def __init__(self, resolve: Callable[[str], str | None]):
        self.resolve = resolve
        self.legs: dict[str | None, _Leg] = {}
        self.started_at: datetime | None = None
        self.last_at: datetime | None = None
        self.answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.final = False  # ended by END (later events are ignored); else ended by legs (may revive)
        self.hint: Outcome | None = None
        self.held_since: datetime | None = None
        self.hold = 0.0
        self.agent: str | None = None
        self.agents: list[str] = []
        self.transferred_from: str | None = None
        self.last_ring: list[str] = []  # agents ringing right after the latest RING

    # -- legs ------------------------------------------------------------------------------------
    def leg(self, event: CallEvent) -> _Leg:
        key = event.leg_id or event.agent_login
        leg = self.legs.get(key)
        if leg is None and not event.leg_id and event.agent_login:
            leg = self.leg_of_login(event.agent_login)  # a leg known by its id, named by login here
        if leg is None:
            leg = self.legs[key] = _Leg(key)
        if event.agent_login:
            leg.login = event.agent_login
            leg.agent = self.resolve(event.agent_login)
        return leg

    def leg_of_login(self, login: str) -> _Leg | None:
        live = [leg for leg in self.legs.values() if leg.login == login and leg.state != _ENDED]
        return live[0] if live else self.legs.get(login)

    def ringing_agents(self) -> list[str]:
        out: list[str] = []
        for leg in self.legs.values():
            if leg.state == _RINGING and leg.agent and leg.agent not in out:
                out.append(leg.agent)
        return out

    # -- call-level transitions ------------------------------------------------------------------
    def talk_with(self, agent: str | None) -> None:
        if agent and (not self.agents or self.agents[-1] != agent):
            self.agents.append(agent)

    def unhold(self, at: datetime) -> None:
        if self.held_since is not None:
            self.hold += (at - self.held_since).total_seconds()
            self.held_since = None

    def end(self, at: datetime, hint: Outcome | None, *, final: bool) -> None:
        self.ended_at, self.hint, self.final = at, hint, final
        self.unhold(at)

    # -- events ----------------------------------------------------------------------------------
    def feed(self, event: CallEvent) -> None:
        at = event.when
        if self.final:
            return  # the call is over: nothing but SUMMARY changes it now
        if self.ended_at is not None:
            if event.kind not in (EventKind.RING, EventKind.ANSWER):
                return
            self.ended_at = self.hint = None  # a leg rings again: the call was not over after all
        if self.started_at is None:
            self.started_at = at
        self.last_at = at
        handler = getattr(self, f"on_{event.kind.value}")
        handler(event, at)

    def on_ring(self, event: CallEvent, at: datetime) -> None:
        leg = self.leg(event)
        if leg.state != _TALKING:
            leg.state = _RINGING
        if self.answered_at is None:
            self.last_ring = self.ringing_agents()

    def on_answer(self, event: CallEvent, at: datetime) -> None:
        leg = self.leg(event)
        leg.state = _TALKING
        caller = self.legs.get(None)
        if caller is not None:
            caller.state = _TALKING
        if self.answered_at is None:
            self.answered_at = at
            self.agent = leg.agent
            for other in self.legs.values():  # the losers of a group call stop ringing now
                if other is not leg and other.key is not None and other.state == _RINGING:
                    other.state = _ENDED
        elif leg.agent and leg.agent != self.agent:  # another phone took over: an implicit transfer
            if self.agent is not None:  # after a transfer with no known target, keep who transferred
                self.transferred_from = self.agent
            self.agent = leg.agent
        self.talk_with(leg.agent)
        self.unhold(at)

    def on_hold(self, event: CallEvent, at: datetime) -> None:
        if self.answered_at is not None and self.held_since is None:
            self.held_since = at

    def on_unhold(self, event: CallEvent, at: datetime) -> None:
        self.unhold(at)

    def on_transfer(self, event: CallEvent, at: datetime) -> None:
        source = self.leg_of_login(event.agent_login) if event.agent_login else None
        if source is not None and source.key is not None:
            source.state = _ENDED
        source_agent = self.resolve(event.agent_login) if event.agent_login else None
        target_agent = self.resolve(event.target_login) if event.target_login else None
        if target_agent is not None and target_agent == self.agent:
            # The target's ANSWER sorted first (PBX clocks stamp it before the TRANSFER that caused
            # it): that implicit transfer already moved the call. This event only says who
            # transferred; the target never transferred to itself.
            previous = source_agent if source_agent != target_agent else None
            previous = previous or self.transferred_from
        else:
            previous = self.agent or source_agent
        if event.target_login:
            target = self.leg_of_login(event.target_login)
            if target is None:
                target = self.legs[event.target_login] = _Leg(event.target_login)
            target.login, target.agent = event.target_login, target_agent
            target.state = _TALKING if self.answered_at is not None else _RINGING
        self.transferred_from = previous
        if self.answered_at is not None:
            self.agent = target_agent
            self.talk_with(target_agent)
            self.unhold(at)
        else:
            self.last_ring = self.ringing_agents()

    def on_leg_end(self, event: CallEvent, at: datetime) -> None:
        self.leg(event).state = _ENDED
        if all(leg.state == _ENDED for leg in self.legs.values()):
            self.end(at, event.outcome, final=False)

    def on_end(self, event: CallEvent, at: datetime) -> None:
        for leg in self.legs.values():
            leg.state = _ENDED
        self.end(at, event.outcome, final=True)

    def on_summary(self, event: CallEvent, at: datetime) -> None:  # pragma: no cover - never fed
        raise AssertionError("summary events are applied after the fold")

    def on_facts(self, event: CallEvent, at: datetime) -> None:  # pragma: no cover - never fed
        raise AssertionError("facts events are not part of the walk")


def fold_call(
    call_id: str,
    events: Iterable[CallEvent],
    *,
    resolve: Callable[[str, str], str | None],
    region: str = "RU",
    recording_url: Callable[[str], str] | None = None,
) -> Call | None:
    """The call described by ``events`` (all of one call, any order, no duplicates), or None if empty.

    :param resolve: ``resolve(connector, login)`` → agent id or None (the directory's mapping).
    :param region: default region for reading phone numbers.
    :param recording_url: maps the call id to the public recording URL once an event mentions a
        recording; without it the PBX's own reference is used.
    """
    ordered = sorted(events, key=CallEvent.sort_key)
    if not ordered:
        return None
    first = ordered[0]
    live = [event for event in ordered if event.kind not in _NOT_LIVE]
    summaries = [event for event in ordered if event.kind is EventKind.SUMMARY]
    if not live and not summaries:
        return None  # facts alone (they came before the call's first event) make no call
    # descriptive fields: first live value, else the summaries', else a facts event's
    described = live + summaries + [event for event in ordered if event.kind is EventKind.FACTS]
    call = Call(id=call_id, connector=first.connector, pbx_call_id=first.pbx_call_id)
    call.direction = _first(event.direction for event in described) or Direction.INBOUND
    call.remote_number = normalize(_first(event.remote_number for event in described), region)
    call.line_number = normalize(_first(event.line_number for event in described), region)
    call.group = _first(event.group for event in described)
    call.updated_at = max(event.received_at for event in ordered)
    call.facts = merge_facts([event.facts for event in ordered])
    recording = _first(event.recording for event in reversed(ordered))
    if recording:
        call.recording_url = recording_url(call_id) if recording_url else recording

    fold = _Fold(lambda login: resolve(call.connector, login))
    for event in live:
        fold.feed(event)
    _settle(call, fold)
    if summaries:
        _overlay_summaries(call, fold, summaries, resolve)
    return call


def _settle(call: Call, fold: _Fold) -> None:
    """Turn the walk's result into the call's state, outcome and durations."""
    call.started_at = fold.started_at
    call.answered_at = fold.answered_at
    call.ended_at = fold.ended_at
    call.agents = list(fold.agents)
    call.transferred_from = fold.transferred_from
    call.hold_seconds = round(fold.hold, 3)
    if fold.ended_at is not None:
        call.state = CallState.ENDED
        if fold.answered_at is not None:
            call.outcome = Outcome.ANSWERED
        elif fold.hint in UNANSWERED_HINTS:
            call.outcome = fold.hint
        else:
            call.outcome = default_unanswered(call.direction)
    elif fold.answered_at is not None:
        call.state = CallState.HELD if fold.held_since is not None else CallState.TALKING
    else:
        call.state = CallState.RINGING
        call.ringing_agents = fold.ringing_agents()
    if fold.answered_at is not None:
        call.agent = fold.agent
    elif call.state is CallState.RINGING:
        call.agent = call.ringing_agents[0] if len(call.ringing_agents) == 1 else None
    else:
        call.agent = fold.last_ring[0] if len(fold.last_ring) == 1 else None
    _durations(call)


def _durations(call: Call, *, wait: float | None = None, talk: float | None = None) -> None:
    if call.started_at is None:
        return
    if call.answered_at is not None:
        call.wait_seconds = seconds(call.answered_at - call.started_at)
    elif call.ended_at is not None:
        call.wait_seconds = seconds(call.ended_at - call.started_at)
    else:
        call.wait_seconds = None
    if call.ended_at is not None and call.answered_at is not None:
        elapsed = (call.ended_at - call.answered_at).total_seconds()
        call.talk_seconds = round(max(elapsed - call.hold_seconds, 0.0), 3)
    else:
        call.talk_seconds = None
    if wait is not None:
        call.wait_seconds = round(max(wait, 0.0), 3)
    if talk is not None and call.answered_at is not None:
        call.talk_seconds = round(max(talk, 0.0), 3)


def _overlay_summaries(
    call: Call, fold: _Fold, summaries: list[CallEvent], resolve: Callable[[str, str], str | None]
) -> None:
    """SUMMARY events (the PBX's after-call record) end the call and correct outcome and durations."""
    outcome: Outcome | None = None
    wait = talk = total = hold = None
    login: str | None = None
    for event in summaries:  # later summaries override earlier ones, field by field
        outcome = event.outcome or outcome
        wait = event.wait_seconds if event.wait_seconds is not None else wait
        talk = event.talk_seconds if event.talk_seconds is not None else talk
        total = event.total_seconds if event.total_seconds is not None else total
        hold = event.hold_seconds if event.hold_seconds is not None else hold
        login = event.agent_login or login
    start = summaries[0].when
    summary_agent = resolve(call.connector, login) if login else None

    if fold.started_at is None:  # the summary alone describes the call
        if outcome is None:
            outcome = Outcome.ANSWERED if talk else default_unanswered(call.direction)
        if total is None:
            total = (wait or 0.0) + (talk or 0.0)
        call.started_at = start
        call.ended_at = start + timedelta(seconds=total)
        if outcome is Outcome.ANSWERED:
            if wait is None:
                wait = max(total - talk, 0.0) if talk is not None else 0.0
            call.answered_at = start + timedelta(seconds=wait)
        call.agent = summary_agent
        call.agents = [summary_agent] if summary_agent and outcome is Outcome.ANSWERED else []
    else:
        if call.ended_at is None:  # END was lost: the summary says it is over
            ended = fold.last_at
            if total is not None:
                ended = max(ended, start + timedelta(seconds=total))
            call.ended_at = ended
            fold.unhold(ended)
            call.hold_seconds = round(fold.hold, 3)
        if outcome is None and call.outcome is not None:
            outcome = call.outcome
        elif outcome is None:
            outcome = Outcome.ANSWERED if call.answered_at is not None else default_unanswered(call.direction)
        if outcome is Outcome.ANSWERED:
            if call.answered_at is None:
                call.answered_at = call.started_at + timedelta(seconds=wait or 0.0)
            if fold.answered_at is None or call.agent is None:
                call.agent = summary_agent or call.agent
            if not call.agents and call.agent:
                call.agents = [call.agent]
        else:
            call.answered_at = None
            call.agents = []
        if summaries[0].at is not None and total is not None:
            # The PBX's own clock in its history beats receipt times of live events (which are all
            # a connector has when the PBX's pushes carry no timestamps).
            call.started_at = start
            call.ended_at = start + timedelta(seconds=total)
            if outcome is Outcome.ANSWERED and wait is not None:
                call.answered_at = start + timedelta(seconds=wait)
    call.state = CallState.ENDED
    call.outcome = outcome
    call.ringing_agents = []
    if hold is not None:  # the PBX's own hold total beats the hold events ctid saw (or missed)
        call.hold_seconds = round(max(hold, 0.0), 3) if outcome is Outcome.ANSWERED else 0.0
    _durations(call, wait=wait, talk=talk)
