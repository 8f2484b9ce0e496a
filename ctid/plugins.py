"""The plugin manager: loads built-in and third-party plugins, collects their classes, reports failures.

Built-in plugins (:data:`BUILTIN_PLUGINS`) are registered through the same hooks as third-party
ones, which are found through the ``ctid`` entry-point group. Loading never raises: every entry
point is loaded in its own ``try``, and a plugin that fails to import, implements a misspelled hook
or returns garbage from a registration hook is recorded in :attr:`CtidPluginManager.failures` and
left out. ``ctid plugins`` and ``ctid config ...`` therefore always run; only a configuration that
*needs* a failed plugin is refused (:meth:`CtidPluginManager.ensure_enabled_ok`).

``CTID_LOAD_PLUGINS`` is a comma-separated allow-list of entry-point names: unset loads every
installed plugin, set but empty loads none (built-ins are always loaded).

Every plugin module declares the contract version it was written for, ``CTID_CONTRACT = "2.0"``;
it loads when its major version is ctid's (:data:`ctid.CONTRACT_VERSION`) and its minor version is
not newer (:func:`check_contract`), else it is a failure naming both versions.

Every hook is called through pluggy (``pm.hook.<name>(...)``), so ``tryfirst`` / ``trylast``,
``firstresult`` and wrappers (``wrapper=True`` and old-style ``hookwrapper``) work as pluggy
documents. Plugins fail alone: when a plugin is registered, each of its non-wrapper
implementations of an observer hook (:data:`ctid.hookspecs.OBSERVER_HOOKS`) is wrapped so that an
exception it raises is recorded in :attr:`CtidPluginManager.errors` (logged with the traceback,
counted in ``ctid_plugin_errors_total``) and the other implementations still run; its
registration-hook implementations are wrapped so that an exception or garbage fails that plugin
alone. :meth:`CtidPluginManager.notify` calls an observer hook and also survives a failing wrapper.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from ctid import CONTRACT_VERSION, __version__, hookspecs
from ctid.errors import ConfigError, PluginLoadError
from ctid.plugin_errors import PluginErrors
from ctid.plugin_guard import GuardedHooks, describe_exception

if TYPE_CHECKING:
    from ctid.config.loader import Settings
    from ctid.config.models import CtidConfig
    from ctid.connector import Connector
    from ctid.crm import CRMAdapter
    from ctid.routes import PluginRoute

#: Modules registered as plugins in every process, before third-party entry points.
BUILTIN_PLUGINS = ("ctid.builtins.generic", "ctid.builtins.directory")

#: Entry-point group third-party plugins register under.
ENTRY_POINT_GROUP = "ctid"

#: Environment variable holding the allow-list of entry-point names.
LOAD_PLUGINS_ENV = "CTID_LOAD_PLUGINS"

#: The module attribute a plugin declares its contract version in.
CONTRACT_ATTRIBUTE = "CTID_CONTRACT"


def _parse_version(text: Any) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)", text.strip()) if isinstance(text, str) else None
    return (int(match[1]), int(match[2])) if match else None


def check_contract(plugin: Any, name: str) -> str | None:
    """The contract version ``plugin`` declares (``CTID_CONTRACT``); raise :class:`PluginLoadError`
    naming the plugin and both versions unless ctid's contract can serve it: same major version,
    the plugin's minor version not newer than ctid's."""
    declared = getattr(plugin, CONTRACT_ATTRIBUTE, None)
    core = _parse_version(CONTRACT_VERSION)
    assert core is not None
    if declared is None:
        raise PluginLoadError(
            f"plugin {name!r} declares no contract version ({CONTRACT_ATTRIBUTE} = \"{CONTRACT_VERSION}\" "
            f"in its module); ctid's plugin contract is {CONTRACT_VERSION}"
        )
    version = _parse_version(declared)
    if version is None:
        raise PluginLoadError(
            f"plugin {name!r} declares contract {declared!r}, which is not MAJOR.MINOR; "
            f"ctid's plugin contract is {CONTRACT_VERSION}"
        )
    if version[0] != core[0] or version[1] > core[1]:
        hint = "upgrade ctid" if version > core else "upgrade the plugin"
        raise PluginLoadError(
            f"plugin {name!r} needs plugin contract {declared}, but this ctid provides {CONTRACT_VERSION} "
            f"({hint})"
        )
    return declared


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A plugin that could not be used: ``name`` is its entry-point (or module) name."""

    name: str
    dist: str | None
    version: str | None
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dist": self.dist, "version": self.version, "error": self.error}


@dataclass(frozen=True, slots=True)
class _Origin:
    dist: str | None
    version: str | None
    builtin: bool


class CtidPluginManager(GuardedHooks, pluggy.PluginManager):
    """pluggy's manager plus ctid's bookkeeping: origins, failures and the registered classes."""

    def __init__(self) -> None:
        super().__init__("ctid")
        self.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self._origins: dict[str, _Origin] = {}
        self._classes: tuple[dict[str, type[Connector]], dict[str, type[CRMAdapter]]] | None = None
        self._provided: dict[str, tuple[list[str], list[str]]] = {}
        #: Installed entry points left out by ``CTID_LOAD_PLUGINS`` (name -> origin).
        self.skipped: dict[str, _Origin] = {}
        #: Exceptions plugin code raised while ctid called it (logged, counted, shown in health).
        self.errors = PluginErrors()
        #: Where observer failures go besides :attr:`errors`: an object with ``failed(plugin, where,
        #: exc)`` and ``succeeded(plugin, where)`` (``ctid serve``: its :class:`ctid.supervise.Supervisor`,
        #: which records in :attr:`errors` and shows failures in health until they stop).
        self.reporter: Any = None
        self._failing: set[tuple[str, str]] = set()
        self._contracts: dict[str, str] = {}
        self._collecting: dict[str, list[type]] | None = None  # plugin -> classes, while collecting
        self._pending_failures: list[tuple[str, str]] = []
        self._routes: dict[str, list[PluginRoute]] | None = None  # filled while routes() runs

    # -- registration ----------------------------------------------------------------------------
    def register(self, plugin: Any, name: str | None = None) -> str | None:
        self._classes = None
        registered = super().register(plugin, name)
        if registered is not None:
            self._guard(plugin)
        return registered

    def _fail(self, name: str, error: str) -> None:
        origin = self._origins.get(name, _Origin(None, None, False))
        failure = PluginFailure(name, origin.dist, origin.version, error)
        if failure not in self.failures:
            self.failures.append(failure)
        plugin = self.get_plugin(name)
        if plugin is not None:
            self.unregister(plugin)
        self.set_blocked(name)

    def load_builtins(self) -> None:
        """Import and register :data:`BUILTIN_PLUGINS`; a missing or broken one is a failure."""
        for module_name in BUILTIN_PLUGINS:
            self._origins[module_name] = _Origin("ctid", __version__, True)
            if self.has_plugin(module_name) or self.is_blocked(module_name):
                continue
            try:
                module = importlib.import_module(module_name)
                # built-ins ship with ctid: the contract is theirs even where a module does not say so
                self._contracts[module_name] = (check_contract(module, module_name)
                                                if hasattr(module, CONTRACT_ATTRIBUTE) else CONTRACT_VERSION)
                self.register(module, name=module_name)
            except Exception as exc:
                self._fail(module_name, describe_exception(exc))

    def load_entry_points(self) -> None:
        """Load every ``ctid`` entry point allowed by ``CTID_LOAD_PLUGINS``, each in its own try."""
        allowed = os.environ.get(LOAD_PLUGINS_ENV)
        allow = None if allowed is None else {part.strip() for part in allowed.split(",") if part.strip()}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            name = entry_point.name
            dist = entry_point.dist
            origin = _Origin(dist.name if dist else None, dist.version if dist else None, builtin=False)
            if allow is not None and name not in allow:
                self.skipped.setdefault(name, origin)
                continue
            if self.has_plugin(name) or self.is_blocked(name):
                continue
            self._origins[name] = origin
            try:
                plugin = entry_point.load()
                self._contracts[name] = check_contract(plugin, name)
                self.register(plugin, name=name)
            except PluginLoadError as exc:
                self._fail(name, str(exc))
            except (Exception, SystemExit) as exc:
                self._fail(name, describe_exception(exc))

    def check_hooks(self) -> None:
        """Run ``check_pending`` until it passes, failing each plugin with a misspelled hook."""
        while True:
            try:
                self.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.get_name(exc.plugin) or repr(exc.plugin)
                self._fail(name, self._unknown_hook_message(str(exc)))

    def _unknown_hook_message(self, text: str) -> str:
        match = re.search(r"unknown hook '([^']+)'", text)
        if match is None:
            return f"PluginValidationError: {text}"
        specs = [name for name in vars(hookspecs) if name.startswith("ctid_")]
        close = difflib.get_close_matches(match[1], specs, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"PluginValidationError: unknown hook {match[1]!r}{hint}"

    # -- classes -----------------------------------------------------------------------------------
    def _collect_hook(self, hook_name: str, base: type) -> dict[str, type]:
        """Call registration hook ``hook_name`` through pluggy; each implementation's classes are
        checked by its guard (:meth:`_accept`), and a plugin that raised or returned garbage fails.
        A ``plugin_name`` two plugins provide stays with the one registered first (built-ins first),
        whatever order pluggy calls them in; the other fails."""
        self._collecting = {}
        try:
            getattr(self.hook, hook_name)()
        except Exception as exc:  # a wrapper of the registration hook raised
            culprit, cause = self._culprit(getattr(self.hook, hook_name), exc)
            if culprit == "unknown":
                self.errors.record(culprit, hook_name, exc)
            self._pending_failures.append((culprit, f"{hook_name}: {describe_exception(cause)}"))
        results, self._collecting = self._collecting, None
        failures, self._pending_failures = self._pending_failures, []
        found: dict[str, type] = {}
        for plugin, _object in self.list_name_plugin():  # registration order
            classes = results.get(plugin, [])
            taken = [cls for cls in classes if cls.plugin_name in found]
            if taken:
                failures.append((plugin, f"{hook_name}: TypeError: plugin_name {taken[0].plugin_name!r} of "
                                         f"{taken[0].__name__} is already registered"))
                continue
            found.update((cls.plugin_name, cls) for cls in classes)
            provided = self._provided.setdefault(plugin, ([], []))
            provided[0 if hook_name == "ctid_register_connectors" else 1].extend(cls.plugin_name for cls in classes)
        for plugin, error in failures:
            if self.get_plugin(plugin) is not None:
                self._fail(plugin, error)
        return found

    def _accept(self, plugin: str, hook_name: str, result: Any) -> list[type]:
        """Check the classes one implementation returned and keep them as ``plugin``'s (while
        collecting; a direct ``pm.hook.ctid_register_*()`` call gets them checked, unrecorded)."""
        from ctid.connector import Connector
        from ctid.crm import CRMAdapter

        classes = _check_classes(result, Connector if hook_name == "ctid_register_connectors" else CRMAdapter,
                                 hook_name, {})
        if self._collecting is not None:
            self._collecting[plugin] = classes
        return classes

    def _collect(self) -> tuple[dict[str, type[Connector]], dict[str, type[CRMAdapter]]]:
        from ctid.connector import Connector
        from ctid.crm import CRMAdapter

        while self._classes is None:
            self._provided = {}
            failures = len(self.failures)
            connectors = self._collect_hook("ctid_register_connectors", Connector)
            crms = self._collect_hook("ctid_register_crms", CRMAdapter)
            if len(self.failures) == failures:  # a failure unregisters a plugin: collect again
                self._classes = (connectors, crms)
        return self._classes

    def connector_classes(self) -> dict[str, type[Connector]]:
        """``plugin_name`` -> connector class, from every working plugin."""
        return dict(self._collect()[0])

    def crm_classes(self) -> dict[str, type[CRMAdapter]]:
        """``plugin_name`` -> CRM adapter class, from every working plugin."""
        return dict(self._collect()[1])

    # -- reporting ---------------------------------------------------------------------------------
    def describe(self, all: bool = False) -> list[dict[str, Any]]:  # noqa: A002 - mirrors --all
        """Plugins as ``ctid plugins --json`` prints them: built-in and third-party, each with ``builtin``.

        Failed plugins are always listed, with ``error``. With ``all``, installed plugins that
        ``CTID_LOAD_PLUGINS`` left out are listed too, with ``skipped`` saying why.
        """
        self._collect()
        rows: list[dict[str, Any]] = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:  # blocked: a failure, listed below
                continue
            origin = self._origins.get(name, _Origin(None, None, False))
            connectors, crms = self._provided.get(name, ([], []))
            hooks = sorted(caller.name for caller in self.get_hookcallers(plugin) or [])
            rows.append(
                {
                    "name": name,
                    "dist": origin.dist,
                    "version": origin.version,
                    "builtin": origin.builtin,
                    "hooks": hooks,
                    "connectors": sorted(connectors),
                    "crms": sorted(crms),
                    "contract": self._contracts.get(name),
                }
            )
        for failure in self.failures:
            origin = self._origins.get(failure.name, _Origin(None, None, False))
            rows.append(
                {
                    "name": failure.name,
                    "dist": failure.dist,
                    "version": failure.version,
                    "builtin": origin.builtin,
                    "hooks": [],
                    "connectors": [],
                    "crms": [],
                    "contract": self._contracts.get(failure.name),
                    "error": failure.error,
                }
            )
        if all:
            for name, origin in self.skipped.items():
                rows.append(
                    {
                        "name": name,
                        "dist": origin.dist,
                        "version": origin.version,
                        "builtin": False,
                        "hooks": [],
                        "connectors": [],
                        "crms": [],
                        "skipped": f"not in {LOAD_PLUGINS_ENV}",
                    }
                )
        return rows

    # -- the configuration's needs -----------------------------------------------------------------
    def ensure_enabled_ok(self, config: CtidConfig | Settings) -> None:
        """Check every plugin the configuration (core model or loaded settings) names is available.

        Raises :class:`PluginLoadError` when a needed plugin is missing and a recorded failure may
        explain it (one line naming the failed plugin and its error), and :class:`ConfigError` with
        the YAML path when the name is simply unknown. Connector instances with ``enabled: false``
        whose plugin failed are not needed and pass.
        """
        if hasattr(config, "core"):  # Settings: look at the raw sections
            config = config.core
        connectors, crms = self._collect()
        for instance, raw in config.connectors.items():
            _require_name(raw, f"connectors.{instance}.plugin")
            enabled = _truthy(raw.get("enabled", True))
            self._ensure_one(raw["plugin"], connectors, f"connectors.{instance}.plugin", "connector", enabled)
        if config.crm is not None:
            _require_name(config.crm, "crm.plugin")
            self._ensure_one(config.crm["plugin"], crms, "crm.plugin", "CRM", True)

    def _ensure_one(
        self, wanted: str, available: dict[str, type], path: str, kind: str, needed: bool
    ) -> None:
        if wanted in available:
            return
        suspects = self.failures_for(wanted)
        if suspects and not needed:
            return
        if len(suspects) == 1:
            failure = suspects[0]
            raise PluginLoadError(
                f"{path}: {kind} plugin {wanted!r} is unavailable: plugin {failure.name!r}"
                f"{f' ({failure.dist} {failure.version})' if failure.dist else ''} failed to load: {failure.error}"
            )
        if suspects:
            listed = "; ".join(f"{failure.name!r}: {failure.error}" for failure in suspects)
            raise PluginLoadError(
                f"{path}: unknown {kind} plugin {wanted!r}; these plugins failed to load and may provide it: {listed}"
            )
        known = ", ".join(sorted(available)) or "none"
        raise ConfigError(f"unknown {kind} plugin {wanted!r} (installed: {known})", path=path)

    def failures_for(self, plugin_name: str) -> list[PluginFailure]:
        """Failures that may explain a missing ``plugin_name``: a failure whose entry-point name or
        distribution name matches it, else every failure (a failed import does not say what it
        would have provided)."""
        key = _normalize(plugin_name)
        matching = [
            failure
            for failure in self.failures
            if key
            in {
                _normalize(failure.name),
                _normalize(failure.name.rsplit(".", 1)[-1]),
                _normalize(failure.dist or ""),
                _normalize((failure.dist or "").removeprefix("ctid-").removeprefix("ctid_")),
            }
        ]
        return matching or list(self.failures)


def _require_name(section: dict[str, Any], path: str) -> None:
    if "plugin" not in section:
        raise ConfigError("missing required key (the name of the plugin to use)", path=path)
    if not isinstance(section["plugin"], str) or not section["plugin"]:
        raise ConfigError("must be the name of a plugin (see `ctid plugins --all`)", path=path)


def _truthy(value: Any) -> bool:
    """``enabled`` as pydantic will read it (``"false"`` from a substitution is False)."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(bool).validate_python(value)
    except ValidationError:
        return True  # invalid: the connector's model will say so, so treat it as needed


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _check_classes(result: Any, base: type, hook_name: str, found: dict[str, type]) -> list[type]:
    """Validate what a registration hook returned; raise ``TypeError`` describing garbage."""
    if result is None:
        return []
    if isinstance(result, (str, bytes)) or not isinstance(result, (list, tuple)):
        raise TypeError(f"returned {type(result).__name__}, expected a list of {base.__name__} subclasses")
    classes: list[type] = []
    for item in result:
        if not (isinstance(item, type) and issubclass(item, base)):
            raise TypeError(f"returned {item!r}, which is not a {base.__name__} subclass")
        name = getattr(item, "plugin_name", "")
        if not isinstance(name, str) or not name:
            raise TypeError(f"{item.__name__} has no plugin_name")
        config_base = base.Config  # type: ignore[attr-defined]
        if not (isinstance(item.Config, type) and issubclass(item.Config, config_base)):
            raise TypeError(f"{item.__name__}.Config is not a {config_base.__name__} subclass")
        from ctid.connector import contract_problems

        problems = contract_problems(item)
        if problems:
            raise TypeError(f"{item.__name__} ({name}): {'; '.join(problems)}")
        if name in found or any(cls.plugin_name == name for cls in classes):
            raise TypeError(f"plugin_name {name!r} of {item.__name__} is already registered")
        classes.append(item)
    return classes


def get_plugin_manager(*, load_entry_points: bool = True) -> CtidPluginManager:
    """A plugin manager with the built-ins and (unless told not to) the installed plugins loaded.

    Never raises because of a plugin: look at :attr:`CtidPluginManager.failures`.
    """
    pm = CtidPluginManager()
    pm.load_builtins()
    if load_entry_points:
        pm.load_entry_points()
    pm.check_hooks()
    pm._collect()
    return pm
