"""The fuzz suite: hypothesis strategies thrown at a running daemon over real sockets.

Each test starts one daemon, then runs hypothesis in a worker thread; every example is sent through
``trio.from_thread.run`` to the daemon's loop (hypothesis drives examples synchronously, the daemon
lives in Trio). The number of examples per test is ``CTID_FUZZ_EXAMPLES`` (default 40: the whole
suite stays around a minute on CI); a release run raises it, e.g. ``CTID_FUZZ_EXAMPLES=2000``
(docs/input-limits.md, "Fuzzing").
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from core.conftest import make_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("CTID_FUZZ_EXAMPLES", "40"))


async def fuzz(strategy: st.SearchStrategy[Any], check: Callable[[Any], Awaitable[None]], *,
               examples: int | None = None) -> None:
    """Run ``check(example)`` in this Trio loop for each example hypothesis draws from ``strategy``;
    a failing check fails the test with hypothesis' shrunk example."""
    token = trio.lowlevel.current_trio_token()

    @settings(max_examples=examples or EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(example: Any) -> None:
        trio.from_thread.run(check, example, trio_token=token)

    await trio.to_thread.run_sync(run)


@pytest.fixture
def config(tmp_path) -> dict[str, Any]:
    """The core tests' configuration (generic connector ``office``, users, keys, directory CRM)."""
    return make_config(tmp_path)
