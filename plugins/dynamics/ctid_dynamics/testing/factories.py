"""Test factories for the Dynamics plugin: a minimal agent directory, ended calls and callback tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ctid.model import Agent, Call, CallState, Direction, Outcome, Task, call_id_for, task_id_for


class FakeDirectory:
    """The agent directory the core would build from config."""

    def __init__(self, agents: list[Agent]):
        self._agents = {agent.id: agent for agent in agents}

    def agents(self) -> list[Agent]:
        return list(self._agents.values())

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def agent_for_login(self, connector: str, login: str) -> str | None:
        return next((a.id for a in self._agents.values() if a.extension == login), None)

    def login_for_agent(self, connector: str, agent_id: str) -> str | None:
        agent = self._agents.get(agent_id)
        return agent.extension if agent else None

    def agent_for_crm_user(self, crm_user: str) -> str | None:
        return next((a.id for a in self._agents.values() if a.crm_user == crm_user), None)


T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def make_call(
    pbx_id: str,
    number: str,
    *,
    agent: str | None = "alice",
    direction: Direction = Direction.INBOUND,
    outcome: Outcome = Outcome.ANSWERED,
    start: datetime = T0,
    talk: float = 125,
) -> Call:
    answered = outcome is Outcome.ANSWERED
    return Call(
        id=call_id_for("pbx", pbx_id), connector="pbx", pbx_call_id=pbx_id, direction=direction,
        state=CallState.ENDED, outcome=outcome, remote_number=number, line_number="+74950001122",
        agent=agent if answered else None, group="sales", started_at=start,
        answered_at=start + timedelta(seconds=8) if answered else None,
        ended_at=start + timedelta(seconds=8 + (talk if answered else 30)),
        wait_seconds=8 if answered else 38, talk_seconds=talk if answered else 0,
        agents=[agent] if answered and agent else [],
    )


def make_task(number: str, calls: list[Call], *, owner: str | None = None, group: str | None = "sales") -> Task:
    return Task(
        id=task_id_for(number, calls[0].id), number=number, missed_calls=[c.id for c in calls],
        first_missed_at=calls[0].started_at, last_missed_at=calls[-1].started_at, owner=owner, group=group,
        line_number="+74950001122",
    )
