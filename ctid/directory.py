"""The agent directory built from the ``agents:`` section of the configuration.

:class:`StaticDirectory` implements :class:`ctid.services.Directory`: it lists agents, and maps an
agent to and from its login on each PBX connector instance (``agents.<id>.pbx.<instance>``, falling
back to ``agents.<id>.extension``) and its CRM user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ctid.config.models import AgentConfig
from ctid.errors import ConfigError
from ctid.model import Agent

if TYPE_CHECKING:
    from ctid.config.models import CtidConfig


def _login_key(login: str) -> str:
    """PBX logins compare without surrounding blanks and case-insensitively (``Andy`` = ``andy``)."""
    return login.strip().casefold()


class StaticDirectory:
    """Agents from configuration. Agent objects are fresh on every call: callers may keep them.

    Login resolution on connector instance ``C``: an agent's explicit ``pbx.C`` login wins; an agent
    without a ``pbx.C`` entry is known there by its ``extension``. Two agents with the same extension,
    or the same explicit login on one instance, are a :class:`~ctid.errors.ConfigError`; when an
    explicit login of one agent equals the extension of another, the explicit login wins.
    """

    def __init__(self, agents: Mapping[str, AgentConfig]):
        self._configs = dict(agents)
        self._by_extension: dict[str, str] = {}
        self._by_login: dict[str, dict[str, str]] = {}  # instance -> login key -> agent id
        self._by_crm_user: dict[str, str] = {}
        for agent_id, config in self._configs.items():
            if config.extension:
                key = _login_key(config.extension)
                if key in self._by_extension:
                    raise ConfigError(
                        f"extension {config.extension!r} is also used by agent {self._by_extension[key]!r}",
                        path=f"agents.{agent_id}.extension",
                    )
                self._by_extension[key] = agent_id
            for instance, login in config.pbx.items():
                logins = self._by_login.setdefault(instance, {})
                key = _login_key(login)
                if key in logins:
                    raise ConfigError(
                        f"login {login!r} is also used by agent {logins[key]!r}",
                        path=f"agents.{agent_id}.pbx.{instance}",
                    )
                logins[key] = agent_id
            if config.crm_user:
                self._by_crm_user.setdefault(config.crm_user, agent_id)

    @classmethod
    def from_config(cls, config: CtidConfig) -> StaticDirectory:
        return cls(config.agents)

    def _agent(self, agent_id: str, config: AgentConfig) -> Agent:
        return Agent(
            id=agent_id,
            name=config.name,
            extension=config.extension,
            groups=list(config.groups),
            crm_user=config.crm_user,
        )

    def agents(self) -> list[Agent]:
        """Every configured agent, in agent id order."""
        return [self._agent(agent_id, self._configs[agent_id]) for agent_id in sorted(self._configs)]

    def get(self, agent_id: str) -> Agent | None:
        config = self._configs.get(agent_id)
        return None if config is None else self._agent(agent_id, config)

    def agent_for_login(self, connector: str, login: str) -> str | None:
        """The agent id whose login on connector instance ``connector`` is ``login``, or None."""
        if not login:
            return None
        key = _login_key(login)
        explicit = self._by_login.get(connector, {}).get(key)
        if explicit is not None:
            return explicit
        agent_id = self._by_extension.get(key)
        if agent_id is not None and connector not in self._configs[agent_id].pbx:
            return agent_id
        return None

    def login_for_agent(self, connector: str, agent_id: str) -> str | None:
        """The agent's login on ``connector``: its ``pbx.<connector>`` entry, else its extension."""
        config = self._configs.get(agent_id)
        if config is None:
            return None
        return config.pbx.get(connector) or config.extension

    def agent_for_crm_user(self, crm_user: str) -> str | None:
        return self._by_crm_user.get(crm_user)
