"""Callback tasks as a pure function of one remote number's ended calls.

:func:`derive_tasks` walks a number's ended calls in ``(started_at, call id)`` order: a missed inbound
call opens a task (or joins the open one), an answered call closes it. The switchboard re-runs the walk
whenever one of the number's calls ends or changes its ended outcome, so the tasks never depend on
the order in which events arrived. Rules: ``docs/call-model.md``, section "Callback tasks".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from ctid.model import Call, CallState, Direction, Outcome, Task, TaskStatus, task_id_for

#: Unanswered outcomes that ask for a callback (``failed`` is a technical failure, not a miss).
MISSED_OUTCOMES = frozenset({Outcome.MISSED, Outcome.BUSY, Outcome.NO_ANSWER})
#: Directions whose *answered* calls close the open task of their remote number.
CLOSING_DIRECTIONS = frozenset({Direction.INBOUND, Direction.OUTBOUND})

#: ``(started_at, call id)``: the walk order; a horizon is such a key.
WalkKey = tuple[datetime, str]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What the walk needs to know about one ended call (small: kept after the call is evicted)."""

    call_id: str
    number: str
    started_at: datetime
    ended_at: datetime
    direction: Direction
    outcome: Outcome
    answered_at: datetime | None = None
    owner: str | None = None  # the agent an unanswered call last rang for, if exactly one
    group: str | None = None
    line_number: str | None = None

    @classmethod
    def of(cls, call: Call) -> CallRecord | None:
        """The record of an ended call with a remote number, else None (it takes no part in tasks)."""
        if (
            call.state is not CallState.ENDED
            or call.outcome is None
            or not call.remote_number
            or call.started_at is None
            or call.ended_at is None
        ):
            return None
        return cls(
            call_id=call.id,
            number=call.remote_number,
            started_at=call.started_at,
            ended_at=call.ended_at,
            direction=call.direction,
            outcome=call.outcome,
            answered_at=call.answered_at,
            owner=None if call.outcome is Outcome.ANSWERED else call.agent,
            group=call.group,
            line_number=call.line_number,
        )

    def walk_key(self) -> WalkKey:
        return (self.started_at, self.call_id)


def copy_task(task: Task) -> Task:
    return dataclasses.replace(task, missed_calls=list(task.missed_calls))


def void_task(task: Task) -> Task:
    """The form in which a task that no longer exists is reported: done, with no missed call."""
    return dataclasses.replace(
        task, status=TaskStatus.DONE, missed_calls=[], closed_by_call=None, closed_at=None
    )


def is_void(task: Task) -> bool:
    """Whether ``task`` is a retraction: it existed only transiently and should be deleted/cancelled."""
    return task.status is TaskStatus.DONE and not task.missed_calls


def derive_tasks(
    records: Iterable[CallRecord],
    directions: Collection[Direction],
    *,
    base: Task | None = None,
    horizon: WalkKey | None = None,
) -> list[Task]:
    """The tasks of one number, oldest first; only the last may be open.

    :param records: the number's ended calls (any order).
    :param directions: directions whose missed calls ask for a callback (default: inbound).
    :param base: the number's open task as it stood before ``records`` (after calls the switchboard
        has forgotten, or from the store at start-up); it is copied, never changed.
    :param horizon: the walk key of the last call folded into ``base``. A record at or before it
        ended late (it started before forgotten history): if missed it still joins/opens a task,
        if answered it closes nothing (it started before the misses of the open task).
    """
    open_task = copy_task(base) if base is not None else None
    tasks = [open_task] if open_task is not None else []
    for record in sorted(records, key=CallRecord.walk_key):
        if record.outcome in MISSED_OUTCOMES and record.direction in directions:
            if open_task is None:
                open_task = Task(
                    id=task_id_for(record.number, record.call_id),
                    number=record.number,
                    first_missed_at=record.started_at,
                    last_missed_at=record.started_at,
                )
                tasks.append(open_task)
            if record.call_id in open_task.missed_calls:
                continue  # already counted in the base
            open_task.missed_calls.append(record.call_id)
            open_task.first_missed_at = min(filter(None, (open_task.first_missed_at, record.started_at)))
            open_task.last_missed_at = max(filter(None, (open_task.last_missed_at, record.started_at)))
            open_task.owner = open_task.owner or record.owner
            open_task.group = open_task.group or record.group
            open_task.line_number = open_task.line_number or record.line_number
        elif (
            record.outcome is Outcome.ANSWERED
            and record.direction in CLOSING_DIRECTIONS
            and open_task is not None
            and (horizon is None or record.walk_key() > horizon)
        ):
            open_task.status = TaskStatus.DONE
            open_task.closed_by_call = record.call_id
            open_task.closed_at = record.answered_at or record.ended_at
            open_task = None
    return tasks
