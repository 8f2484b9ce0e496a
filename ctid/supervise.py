"""Supervision of plugin code: every call into a connector or CRM adapter runs through here.

Plugin code is foreign code (DESIGN.md, "Plugins fail alone"). :class:`Supervisor` is the one place
where its failures are handled, the same way for every hook and task:

- :meth:`Supervisor.call` awaits one call (``lookup``, ``handle_webhook``, a command, ``history``,
  ``health``). A :class:`~ctid.errors.CtidError` is the plugin's own, expected answer and passes
  through unchanged. Any other exception is a bug in the plugin: it is logged with its traceback,
  counted in ``ctid_plugin_errors_total{plugin,where}``, remembered for health, and re-raised as a
  :class:`~ctid.errors.PluginError` (``error_id`` ``plugin_failed``, HTTP 502) naming the exception, which
  every caller already handles like any other ctid error.
- :meth:`Supervisor.keep_running` runs a long-lived task (a connector's ``run``) and restarts it
  after any failure with capped exponential backoff (:class:`Backoff`), for as long as ctid runs.

A failure is logged with its traceback once; the same failure again (same place, same exception
type) is logged at debug level only, so a plugin failing on every webhook does not flood
the log. :meth:`Supervisor.health` is what ``/readyz`` and ``ctid check`` show: for each plugin
instance the places where it failed last, red until the same place next succeeds.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from ctid.errors import CtidError, PluginError

log = logging.getLogger("ctid.plugins")

T = TypeVar("T")


def describe(exc: BaseException) -> str:
    """An exception as health and answers name it: ``KeyError: 'x'``."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class Failure:
    """The last failure of one plugin instance at one place (``where``)."""

    plugin: str
    where: str
    error: str  # describe(exc)
    at: float  # trio.current_time()
    count: int = 1
    clears_at: float | None = None  # a restarted task that runs until then is well again
    kind: str = ""  # the exception's type: a failure of the same type again is the same failure

    @property
    def current(self) -> bool:
        return self.clears_at is None or trio.current_time() < self.clears_at

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "error": self.error, "count": self.count}


@dataclass
class Backoff:
    """Capped exponential backoff: ``first``, 2×, 4×, … up to ``cap`` seconds; back to ``first`` once
    a run lasted ``healthy`` seconds (it was not failing at once any more)."""

    first: float = 1.0
    cap: float = 300.0
    healthy: float = 60.0
    _next: float = field(default=0.0, init=False)

    def delay(self, ran_for: float) -> float:
        if ran_for >= self.healthy or self._next == 0:
            self._next = self.first
        else:
            self._next = min(self._next * 2, self.cap)
        return self._next


class Supervisor:
    """Runs plugin code where its failure is caught, logged, counted and shown in health."""

    def __init__(self, metrics: Any = None, errors: Any = None):
        self.metrics = metrics
        self.errors = errors  # the plugin manager's PluginErrors (ctid/plugin_errors.py), when there is one
        self.failures: dict[tuple[str, str], Failure] = {}
        self.restarts: dict[str, int] = {}  # plugin instance -> restarts of its task

    # -- bookkeeping -----------------------------------------------------------------------------
    def failed(self, plugin: str, where: str, exc: BaseException) -> Failure:
        """Record a failure of ``plugin`` at ``where``: log (traceback once), count, remember."""
        error = describe(exc)
        known = self.failures.get((plugin, where))
        if known is not None and not known.current:  # it had recovered since: a new failure
            known = None
        if known is not None and known.kind == type(exc).__name__:
            # the same failure again (its message may name other data): counted, shown, not re-logged
            known.count += 1
            known.at = trio.current_time()
            known.error = error
            known.clears_at = None
            log.debug("plugin %s failed again in %s: %s", plugin, where, error)
            self._count(plugin, where)
            return known
        failure = Failure(plugin, where, error, trio.current_time(), (known.count + 1) if known else 1,
                          kind=type(exc).__name__)
        self.failures[(plugin, where)] = failure
        if self.errors is not None:
            self.errors.record(plugin, where, exc)  # logs with the traceback and counts
        else:
            log.error("plugin %s failed in %s: %s", plugin, where, error, exc_info=exc)
            self._count(plugin, where)
        return failure

    def _count(self, plugin: str, where: str) -> None:
        """Count a failure that was not logged (a repeat) in the metric and the plugin manager's record."""
        stat = self.errors.stats.get((plugin, where)) if self.errors is not None else None
        if stat is not None:
            stat.count += 1
        counter = getattr(self.errors, "counter", None) if self.errors is not None else None
        if counter is None and self.metrics is not None:
            counter = self.metrics.plugin_errors
        if counter is not None:
            counter.labels(plugin=plugin, where=where).inc()

    def succeeded(self, plugin: str, where: str) -> None:
        """``plugin`` worked at ``where`` again: its failure there is history."""
        if self.failures.pop((plugin, where), None) is not None:
            log.info("plugin %s works again in %s", plugin, where)

    def health(self) -> dict[str, dict[str, Any]]:
        """``{plugin: {"ok": false, "failures": [...]}}`` for every plugin instance failing now."""
        out: dict[str, dict[str, Any]] = {}
        for key in [key for key, failure in self.failures.items() if not failure.current]:
            log.info("plugin %s works again in %s", *key)
            del self.failures[key]
        for (plugin, _where), failure in sorted(self.failures.items()):
            entry = out.setdefault(plugin, {"ok": False, "failures": []})
            entry["failures"].append(failure.to_json())
        for plugin, count in self.restarts.items():
            if plugin in out:
                out[plugin]["restarts"] = count
        return out

    # -- running plugin code ---------------------------------------------------------------------
    @contextlib.contextmanager
    def guarding(self, plugin: str, where: str) -> Iterator[None]:
        """Plugin code runs inside: a non-ctid exception becomes a recorded :class:`PluginError`
        (502); leaving without one marks ``(plugin, where)`` working again."""
        try:
            yield
        except CtidError:
            raise
        except Exception as exc:
            self.failed(plugin, where, exc)
            raise PluginError(f"plugin {plugin} failed in {where}: {describe(exc)}", status=502) from exc
        if self.failures and (plugin, where) in self.failures:
            self.succeeded(plugin, where)

    async def call(self, plugin: str, where: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` :meth:`guarding` it."""
        with self.guarding(plugin, where):
            return await fn(*args, **kwargs)

    def call_sync(self, plugin: str, where: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`call` for a plain function."""
        with self.guarding(plugin, where):
            return fn(*args, **kwargs)

    async def keep_running(self, plugin: str, where: str, fn: Callable[..., Awaitable[Any]], *,
                           backoff: Backoff | None = None,
                           task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run ``fn(task_status=...)`` (a ``nursery.start``-style task) and restart it whenever it fails.

        ``task_status.started()`` is passed through the first time ``fn`` calls it, or called here
        when ``fn`` fails before starting, so the daemon's start-up never waits on a broken plugin.
        ``fn`` returning normally ends supervision (the task had nothing more to do). A CtidError
        counts as a failure too: the task is restarted, as after any other exception.
        """
        backoff = backoff or Backoff()
        status = _Started(task_status)
        while True:
            began = trio.current_time()
            try:
                await fn(task_status=status)
            except Exception as exc:
                if isinstance(exc, CtidError):
                    log.error("plugin %s stopped in %s: %s", plugin, where, exc)
                    self._count_only(plugin, where, exc)
                else:
                    self.failed(plugin, where, exc)
            else:
                return
            status.started()  # never wait for a task that failed before it was ready
            delay = backoff.delay(trio.current_time() - began)
            self.restarts[plugin] = self.restarts.get(plugin, 0) + 1
            log.info("restarting %s of plugin %s in %g s", where, plugin, delay)
            await trio.sleep(delay)
            failure = self.failures.get((plugin, where))
            if failure is not None:  # green again once the new run lasts as long as a healthy one
                failure.clears_at = trio.current_time() + backoff.healthy

    def _count_only(self, plugin: str, where: str, exc: BaseException) -> None:
        """A CtidError that ended a task: health and metric as for any failure, one line, no traceback."""
        error = describe(exc)
        self._count(plugin, where)
        known = self.failures.get((plugin, where))
        if known is not None and known.kind == type(exc).__name__:
            known.count += 1
            known.error = error
            known.clears_at = None
        else:
            self.failures[(plugin, where)] = Failure(plugin, where, error, trio.current_time(),
                                                     (known.count + 1) if known else 1, kind=type(exc).__name__)


class _Started:
    """A task status that passes ``started()`` on the first time only (restarts are not starts)."""

    def __init__(self, real: trio.TaskStatus[None]):
        self._real = real
        self.done = False

    def started(self, value: Any = None) -> None:
        if not self.done:
            self.done = True
            self._real.started(value)
