"""Plugin discovery (entry points in group `moonship`) and the registries built from their hooks.

Each hook `moonship_<kind>` fills the registry `<kind>` (name -> class, factory or "module:attr" reference).
The core declares the kinds it uses (hookspecs.py); a plugin declares its own kinds by exposing a module or
class of `@hookspec` functions as `moonship_hookspecs` (the monitor's alert actions, for example)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy
from pydantic import BaseModel

from . import hookspecs
from .config import ROOT, MoonshipConfig, validate_sections
from .contracts.stores import Stores
from .errors import ConfigError

log = logging.getLogger("moonship.plugins")

CORE_DISTRIBUTION = "moonship-core"
BUILTIN_MODULE = "moonship_core.builtin"
BUILTIN_NAME = "builtin"

HOOK_PREFIX = "moonship_"
#: the attribute of a plugin that holds the hookspecs it declares
HOOKSPECS_ATTRIBUTE = "moonship_hookspecs"
CORE_HOOKS = [name for name in vars(hookspecs) if name.startswith(HOOK_PREFIX)]

#: the original's dotted class names -> (registry name, distribution that provides it)
SEED_ALIASES = {
    "moonship.client.binance.BinanceClient": ("binance", "moonship-binance"),
    "moonship.client.luno.LunoClient": ("luno", "moonship-luno"),
    "moonship.client.valr.ValrClient": ("valr", "moonship-valr"),
    "moonship.client.paper.PaperTradingClient": ("paper", CORE_DISTRIBUTION),
    "moonship.algo.test.LogMarketInfo": ("log_market_info", CORE_DISTRIBUTION),
}

#: how to install a distribution that is not on a package index (any other: `pip install <distribution>`)
INSTALL_COMMANDS = {
    "moonship-example-algos": "pip install -e examples/moonship-example-algos, in a Moonship checkout",
}

#: the plugin that provides each optional service
SERVICE_DISTRIBUTIONS = {"api": "moonship-api", "monitor": "moonship-monitor"}

#: the distributions known to provide a name, by registry kind: named when the name is not installed
KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    "market_clients": {"binance": "moonship-binance", "luno": "moonship-luno", "valr": "moonship-valr"},
    "services": SERVICE_DISTRIBUTIONS,
    "algos": {"price_alert": "moonship-example-algos"},
}


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded."""

    name: str
    distribution: str | None
    error: str


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin and what it provides, per registry kind (the hook names without `moonship_`)."""

    name: str
    distribution: str | None
    version: str | None
    provides: dict[str, list[str]] = field(default_factory=dict)


class Plugins:
    """The pluggy manager with every loaded plugin, and the registries built from their hooks."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        #: kind -> name -> entry (a class, a factory, or a "module:attr" reference not imported yet)
        self.registries: dict[str, dict[str, Any]] = {}
        self._origins: dict[str, tuple[str | None, str | None]] = {}
        self._provides: dict[str, dict[str, dict[str, Any]]] = {}

    @classmethod
    def load(cls, entry_points: bool = True) -> Plugins:
        """The built-in plugin, then (unless `entry_points` is false) every installed `moonship` plugin."""
        plugins = cls()
        try:
            builtin = importlib.import_module(BUILTIN_MODULE)
        except ModuleNotFoundError as exc:
            if exc.name != BUILTIN_MODULE:
                plugins._fail(BUILTIN_NAME, CORE_DISTRIBUTION, exc)
        except Exception as exc:
            plugins._fail(BUILTIN_NAME, CORE_DISTRIBUTION, exc)
        else:
            plugins._register(builtin, BUILTIN_NAME, CORE_DISTRIBUTION, _version(CORE_DISTRIBUTION))
        if entry_points:
            for ep in sorted(metadata.entry_points(group=hookspecs.PROJECT), key=lambda ep: ep.name):
                dist = ep.dist.name if ep.dist else None
                try:
                    plugin = ep.load()
                except Exception as exc:
                    plugins._fail(ep.name, dist, exc)
                    continue
                if not plugins.manager.is_registered(plugin):
                    plugins._register(plugin, ep.name, dist, ep.dist.version if ep.dist else None)
        plugins._build()
        return plugins

    def register(
        self, plugin: object, name: str, distribution: str | None = None, version: str | None = None
    ) -> None:
        """Register `plugin` (an object with `@hookimpl` functions) and rebuild the registries."""
        self._register(plugin, name, distribution, version)
        self._build()

    def _register(self, plugin: object, name: str, distribution: str | None, version: str | None) -> None:
        try:
            specs = getattr(plugin, HOOKSPECS_ATTRIBUTE, None)
            if specs is not None:
                self.manager.add_hookspecs(specs)
            self.manager.register(plugin, name)
        except Exception as exc:
            self._fail(name, distribution, exc)
        else:
            self._origins[name] = (distribution, version)

    def _fail(self, name: str, distribution: str | None, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        log.error("Plugin %s (%s) failed to load: %s", name, distribution or "unknown distribution", error)
        self.failures.append(PluginFailure(name, distribution, error))

    def _build(self) -> None:
        """Call every plugin's hooks; a plugin whose hook fails is dropped whole. Registries merge in
        registration order: a later plugin's name wins over an earlier one's."""
        hooks = {
            hook.removeprefix(HOOK_PREFIX): getattr(self.manager.hook, hook)
            for hook in sorted(vars(self.manager.hook), key=_hook_order)
            if hook.startswith(HOOK_PREFIX)
        }
        impls = {
            kind: {impl.plugin_name: impl.function for impl in caller.get_hookimpls()}
            for kind, caller in hooks.items()
        }
        self._provides = {}
        for name, (distribution, _) in list(self._origins.items()):
            try:
                self._provides[name] = {
                    kind: _call(found[name]) for kind, found in impls.items() if name in found
                }
            except Exception as exc:
                self._fail(name, distribution, exc)
                self.manager.unregister(name=name)
                del self._origins[name]
        merged: dict[str, dict[str, Any]] = {kind: {} for kind in hooks}
        for name, provided in self._provides.items():
            for kind, entries in provided.items():
                for key in entries.keys() & merged[kind].keys():
                    log.warning("Plugin %s replaces %s %r", name, kind, key)
                merged[kind].update(entries)
        self.registries = merged

    def stores(self, config: MoonshipConfig) -> Stores:
        """The shared cache, bus and journal that `moonship.redis.url` chooses (in-memory without one), made
        by the backend registered for its scheme; not opened."""
        url = config.redis.url
        scheme = url.split(":", 1)[0] if url else "memory"
        backends = self.registries.get("backends", {})
        if scheme not in backends:
            available = ", ".join(sorted(backends))
            raise ConfigError(f"no cache/bus backend for {scheme!r}; available: {available}")
        stores: Stores = _loaded(backends, scheme, "backend")(config)
        return stores

    def names(self, kind: str) -> list[str]:
        """Every registered name of `kind`, sorted."""
        return sorted(self.registries.get(kind, ()))

    def resolve(self, kind: str, name: str, *, dotted: bool = True) -> type[Any]:
        """The entry `name` of registry `kind`, imported now if it was registered by reference. A seed
        dotted name resolves to its registered successor; another dotted name is imported as a class, unless
        `dotted` is false (names from outside, e.g. the API: nothing they contain is ever imported)."""
        registry = self.registries.get(kind, {})
        label = kind.removesuffix("s").replace("_", " ")
        if name in registry:
            return _class(_loaded(registry, name, label), name, label)
        available = f"available: {', '.join(sorted(registry)) or 'none'}"
        if name in SEED_ALIASES:
            alias, distribution = SEED_ALIASES[name]
            if alias in registry:
                return _class(_loaded(registry, alias, label), alias, label)
            raise ConfigError(
                f"unknown {label} {name!r}: it needs the {distribution} plugin "
                f"({install_command(distribution)}); {available}"
            )
        known = KNOWN_PROVIDERS.get(kind, {}).get(name)
        if known is not None:
            raise ConfigError(
                f"unknown {label} {name!r}: it needs the {known} plugin ({install_command(known)}); "
                f"{available}"
            )
        if "." not in name:
            raise ConfigError(f"unknown {label} {name!r}; {available}")
        if not dotted:
            raise ConfigError(
                f"unknown {label} {name!r}: only registered names are accepted here (dotted class paths only "
                f"in the config file); {available}"
            )
        module_name, _, attr = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:
            raise ConfigError(f"cannot import {label} {name!r}: {type(exc).__name__}: {exc}") from None
        if not isinstance(found, type):
            raise ConfigError(f"{label} {name!r} is not a class")
        return found

    def describe(self) -> list[PluginInfo]:
        """Every loaded plugin, in load order."""
        return [
            PluginInfo(name, distribution, version, {k: sorted(v) for k, v in self._provides[name].items()})
            for name, (distribution, version) in self._origins.items()
        ]

    def broken(self) -> dict[tuple[str, str], str]:
        """Import every entry registered by reference; (kind, name) -> the error of each that fails. Kinds
        whose entries are data, not references (config templates), are left alone."""
        found: dict[tuple[str, str], str] = {}
        for kind, registry in self.registries.items():
            if kind in DATA_KINDS:
                continue
            for name in list(registry):
                try:
                    _loaded(registry, name, kind.removesuffix("s").replace("_", " "))
                except ConfigError as exc:
                    found[(kind, name)] = str(exc)
        return found

    def section_models(self) -> Mapping[str, type[BaseModel] | None]:
        """The settings model (or None) of each market client and service, by registry name; a plugin's
        classes are imported only when its section is looked up."""
        return _SectionModels(self)

    def check(self, config: MoonshipConfig, *, resolve: bool = True) -> dict[str, BaseModel | dict[str, Any]]:
        """Validate the plugin sections of `config` and (if `resolve`) that each market's client and each
        strategy's algo resolves; one ConfigError lists every problem. Returns the validated sections."""
        problems: list[str] = []
        sections: dict[str, BaseModel | dict[str, Any]] = {}
        try:
            sections = validate_sections(config, self.section_models())
        except ConfigError as exc:
            problems.append(str(exc))
        if resolve:
            for path, value, resolver in [
                *((f"markets.{n}.client", m.client, "market_clients") for n, m in config.markets.items()),
                *((f"strategies.{n}.algo", s.algo, "algos") for n, s in config.strategies.items()),
            ]:
                try:
                    self.resolve(resolver, value)
                except ConfigError as exc:
                    problems.append(f"{ROOT}.{path}: {exc}")
        if problems:
            raise ConfigError("\n".join(problems))
        return sections


def install_command(distribution: str) -> str:
    """The command that installs `distribution`."""
    return INSTALL_COMMANDS.get(distribution, f"pip install {distribution}")


def _hook_order(hook: str) -> tuple[int, str]:
    """The core's hooks in the order hookspecs.py declares them, then the plugins' own, by name."""
    return (CORE_HOOKS.index(hook) if hook in CORE_HOOKS else len(CORE_HOOKS), hook)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


class _SectionModels(Mapping[str, "type[BaseModel] | None"]):
    def __init__(self, plugins: Plugins) -> None:
        self._plugins = plugins

    def __getitem__(self, name: str) -> type[BaseModel] | None:
        for kind in _SECTION_KINDS:
            if name in self._plugins.registries.get(kind, ()):
                entry = self._plugins.resolve(kind, name)
                model: type[BaseModel] | None = getattr(entry, "settings_model", None)
                return model
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(name in self._plugins.registries.get(kind, ()) for kind in _SECTION_KINDS)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> set[str]:
        return {name for kind in _SECTION_KINDS for name in self._plugins.registries.get(kind, ())}


#: the registry kinds whose entries are data (text), not classes or "module:attr" references
DATA_KINDS = frozenset({"config_templates"})

#: the registry kinds whose entries have a config section of their own (`moonship.<name>`)
_SECTION_KINDS = ("market_clients", "services")


def _loaded(registry: dict[str, Any], name: str, label: str) -> Any:
    """The registry entry `name`, importing it first if the plugin gave a "module:attr" reference."""
    entry = registry[name]
    if isinstance(entry, str):
        entry = registry[name] = _import(entry, label)
    return entry


def _class(entry: Any, name: str, label: str) -> type[Any]:
    if not isinstance(entry, type):
        raise ConfigError(f"{label} {name!r} is not a class")
    return entry


def _import(reference: str, kind: str) -> Any:
    module_name, _, attr = reference.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except Exception as exc:
        raise ConfigError(f"cannot import {kind} {reference!r}: {type(exc).__name__}: {exc}") from None


def _call(hook: Any) -> dict[str, Any]:
    provided = hook()
    if not isinstance(provided, dict):
        raise TypeError(f"{hook.__name__}() returned {type(provided).__name__}, not a dict")
    return provided
