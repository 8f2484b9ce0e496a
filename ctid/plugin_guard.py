"""How the plugin manager calls plugins so that each fails alone (mixed into :class:`ctid.plugins.CtidPluginManager`).

When a plugin is registered, each of its non-wrapper implementations of an observer hook
(:data:`ctid.hookspecs.OBSERVER_HOOKS`) is wrapped: an exception it raises is recorded (logged with
the traceback, counted in ``ctid_plugin_errors_total``, shown in health through the manager's
``reporter``) and pluggy goes on with the other implementations. Its registration-hook
implementations are wrapped so that an exception or garbage fails that plugin alone, and its routes
(``ctid_register_routes``) are checked. :meth:`GuardedHooks.notify` calls an observer hook through
pluggy and also survives a wrapper that raises, naming the wrapper's plugin from the traceback.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ctid import hookspecs

if TYPE_CHECKING:
    from ctid.plugin_errors import PluginErrors
    from ctid.routes import PluginRoute


def describe_exception(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class GuardedHooks:
    """The guarded calls of :class:`ctid.plugins.CtidPluginManager` (see the module docstring)."""

    errors: PluginErrors
    reporter: Any
    _failing: set[tuple[str, str]]
    _routes: dict[str, list[PluginRoute]] | None
    _pending_failures: list[tuple[str, str]]
    _collecting: dict[str, list[type]] | None
    hook: Any  # pluggy.PluginManager's; also get_hookcallers() and the manager's _accept()

    def _guard(self, plugin: Any) -> None:
        """Wrap the plugin's non-wrapper implementations of observer and registration hooks so a
        failure stays the plugin's own (see the module docstring)."""
        callers = {caller.name: caller for caller in self.get_hookcallers(plugin) or []}
        # pluggy names a hook once per implementation of it: a plugin with two (an observer and its
        # wrapper, two through specname) would get a guard around a guard, which takes the inner
        # guard's caught failure for a success (health flapping green, every failure logged anew)
        for caller in callers.values():
            guard = (self._guard_observer if caller.name in hookspecs.OBSERVER_HOOKS
                     else self._guard_registration if caller.name in hookspecs.REGISTRATION_HOOKS else None)
            if guard is None:
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper):
                    impl.function = guard(impl.function, impl.plugin_name, caller.name)

    def _guard_observer(self, function: Any, plugin: str, hook: str) -> Any:
        key = (plugin, hook)

        @functools.wraps(function)
        def guarded(*args: Any) -> Any:
            try:
                result = function(*args)
            except Exception as exc:
                self._observer_failed(plugin, hook, exc)
                return None
            if key in self._failing:  # it works again: health turns green
                self._failing.discard(key)
                if self.reporter is not None:
                    self.reporter.succeeded(plugin, hook)
            return result

        return guarded

    def _guard_registration(self, function: Any, plugin: str, hook: str) -> Any:
        if hook == "ctid_register_routes":
            return self._guard_routes(function, plugin, hook)

        @functools.wraps(function)
        def guarded(*args: Any) -> Any:
            try:
                return self._accept(plugin, hook, function(*args))
            except Exception as exc:
                if self._collecting is not None:  # the manager's collection fails the plugin
                    self._pending_failures.append((plugin, f"{hook}: {describe_exception(exc)}"))
                else:  # a direct call of the hook: recorded, the plugin is judged when collected
                    self.errors.record(plugin, hook, exc)
                return None

        return guarded

    def _guard_routes(self, function: Any, plugin: str, hook: str) -> Any:
        from ctid.routes import _PLUGIN_NAME, check_routes, url_name

        @functools.wraps(function)
        def guarded(*args: Any) -> Any:
            try:
                routes = check_routes(function(*args))
                if routes and not _PLUGIN_NAME.match(url_name(plugin)):
                    raise TypeError(f"plugin name {plugin!r} cannot be part of a URL")
            except Exception as exc:  # the plugin's routes are left out; the plugin keeps working
                self.errors.record(plugin, hook, exc)
                return None
            if self._routes is not None:
                self._routes.setdefault(url_name(plugin), []).extend(routes)
            return routes

        return guarded

    def routes(self) -> dict[str, list[PluginRoute]]:
        """``{plugin}`` URL name -> the routes that plugin serves under ``/plugins/{plugin}/``.

        A plugin whose ``ctid_register_routes`` raised or returned garbage mounts no route; its
        error is in :attr:`errors` (and the log, and ``ctid_plugin_errors_total``)."""
        self._routes = {}
        hook = self.hook.ctid_register_routes
        try:
            hook()
        except Exception as exc:  # a wrapper raised
            culprit, cause = self._culprit(hook, exc)
            self.errors.record(culprit, "ctid_register_routes", cause)
        found, self._routes = self._routes, None
        return found

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call observer hook ``hook_name`` through pluggy. Implementations are guarded one by one;
        a wrapper that raises is recorded too (under the wrapper's plugin) and never reaches ctid."""
        hook = getattr(self.hook, hook_name)
        try:
            hook(**kwargs)
        except Exception as exc:
            culprit, cause = self._culprit(hook, exc)
            self._observer_failed(culprit, hook_name, cause)

    def _observer_failed(self, plugin: str, where: str, exc: BaseException) -> None:
        """Record an observer's failure: through :attr:`reporter` (the daemon's supervisor: log,
        metric, health until it works again) when there is one, else in :attr:`errors`."""
        if self.reporter is None:
            self.errors.record(plugin, where, exc)
            return
        self._failing.add((plugin, where))
        self.reporter.failed(plugin, where, exc)

    @staticmethod
    def _culprit(hook: Any, exc: BaseException) -> tuple[str, BaseException]:
        """The plugin whose implementation raised ``exc`` (its frame is in the traceback of ``exc``
        or of an exception it was raised while handling, as pluggy's warning about a failing
        old-style hookwrapper is) and that exception; ``"unknown"`` when no frame is a plugin's."""
        codes = {}
        for impl in hook.get_hookimpls():
            function = getattr(impl.function, "__wrapped__", impl.function)
            codes[getattr(function, "__code__", None)] = impl.plugin_name
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            tb, culprit = current.__traceback__, None
            while tb is not None:
                culprit = codes.get(tb.tb_frame.f_code, culprit)
                tb = tb.tb_next
            if culprit is not None:
                return culprit, current
            current = current.__cause__ or current.__context__
        return "unknown", exc

