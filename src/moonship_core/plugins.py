"""Plugin discovery (entry points in group `moonship`) and the name -> class registries built from them."""

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
from .errors import ConfigError

log = logging.getLogger("moonship.plugins")

CORE_DISTRIBUTION = "moonship-core"
BUILTIN_MODULE = "moonship_core.builtin"
BUILTIN_NAME = "builtin"

#: registry kind -> the hook that fills it
KINDS = {
    "clients": "moonship_market_clients",
    "algos": "moonship_algos",
    "services": "moonship_services",
    "backends": "moonship_backends",
    "alert_actions": "moonship_alert_actions",
}

#: the original's dotted class names -> (registry name, distribution that provides it)
SEED_ALIASES = {
    "moonship.client.binance.BinanceClient": ("binance", "moonship-binance"),
    "moonship.client.luno.LunoClient": ("luno", "moonship-luno"),
    "moonship.client.valr.ValrClient": ("valr", "moonship-valr"),
    "moonship.client.paper.PaperTradingClient": ("paper", CORE_DISTRIBUTION),
    "moonship.algo.test.LogMarketInfo": ("log_market_info", CORE_DISTRIBUTION),
}

#: the plugin that provides each optional service
SERVICE_DISTRIBUTIONS = {"api": "moonship-api", "monitor": "moonship-monitor"}


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded."""

    name: str
    distribution: str | None
    error: str


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin and what it provides, per registry kind (see `KINDS`)."""

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
        self.market_clients: dict[str, type[Any]] = {}
        self.algos: dict[str, type[Any]] = {}
        self.services: dict[str, type[Any]] = {}
        self.backends: dict[str, Any] = {}
        self.alert_actions: dict[str, type[Any]] = {}
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
        impls = {
            kind: {
                impl.plugin_name: impl.function for impl in getattr(self.manager.hook, name).get_hookimpls()
            }
            for kind, name in KINDS.items()
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
        merged: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        for name, provided in self._provides.items():
            for kind, entries in provided.items():
                for key in entries.keys() & merged[kind].keys():
                    log.warning("Plugin %s replaces %s %r", name, kind, key)
                merged[kind].update(entries)
        self.market_clients = merged["clients"]
        self.algos = merged["algos"]
        self.services = merged["services"]
        self.backends = merged["backends"]
        self.alert_actions = merged["alert_actions"]

    def backend(self, scheme: str) -> Any:
        """The cache/bus backend factory for a `moonship.redis.url` scheme ("memory" without one)."""
        factory = self.backends.get(scheme)
        if factory is None:
            available = ", ".join(sorted(self.backends))
            raise ConfigError(f"no cache/bus backend for {scheme!r}; available: {available}")
        if isinstance(factory, str):
            factory = self.backends[scheme] = _import(factory, "backend")
        return factory

    def market_client(self, name: str) -> type[Any]:
        """The market client class for `markets.NAME.client`."""
        return self._resolve(name, self.market_clients, "market client")

    def algo(self, name: str) -> type[Any]:
        """The trading algo class for `strategies.NAME.algo`."""
        return self._resolve(name, self.algos, "algo")

    def service(self, name: str) -> type[Any]:
        """The service class called `name`."""
        return self._resolve(name, self.services, "service")

    def alert_action(self, name: str) -> type[Any]:
        """The monitor alert action class called `name`."""
        return self._resolve(name, self.alert_actions, "alert action")

    def _resolve(self, name: str, registry: dict[str, Any], kind: str) -> type[Any]:
        if name in registry:
            return _loaded(registry, name, kind)
        available = f"available: {', '.join(sorted(registry)) or 'none'}"
        if name in SEED_ALIASES:
            alias, distribution = SEED_ALIASES[name]
            if alias in registry:
                return _loaded(registry, alias, kind)
            raise ConfigError(
                f"unknown {kind} {name!r}: it needs the {distribution} plugin "
                f"(pip install {distribution}); {available}"
            )
        if "." not in name:
            raise ConfigError(f"unknown {kind} {name!r}; {available}")
        module_name, _, attr = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:
            raise ConfigError(f"cannot import {kind} {name!r}: {type(exc).__name__}: {exc}") from None
        if not isinstance(found, type):
            raise ConfigError(f"{kind} {name!r} is not a class")
        return found

    def describe(self) -> list[PluginInfo]:
        """Every loaded plugin, in load order."""
        return [
            PluginInfo(name, distribution, version, {k: sorted(v) for k, v in self._provides[name].items()})
            for name, (distribution, version) in self._origins.items()
        ]

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
                *((f"markets.{n}.client", m.client, self.market_client) for n, m in config.markets.items()),
                *((f"strategies.{n}.algo", s.algo, self.algo) for n, s in config.strategies.items()),
            ]:
                try:
                    resolver(value)
                except ConfigError as exc:
                    problems.append(f"{ROOT}.{path}: {exc}")
        if problems:
            raise ConfigError("\n".join(problems))
        return sections


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


class _SectionModels(Mapping[str, "type[BaseModel] | None"]):
    def __init__(self, plugins: Plugins) -> None:
        self._plugins = plugins

    def __getitem__(self, name: str) -> type[BaseModel] | None:
        plugins = self._plugins
        if name in plugins.market_clients:
            cls = plugins.market_client(name)
        elif name in plugins.services:
            cls = plugins.service(name)
        else:
            raise KeyError(name)
        model: type[BaseModel] | None = getattr(cls, "settings_model", None)
        return model

    def __contains__(self, name: object) -> bool:
        return name in self._plugins.market_clients or name in self._plugins.services

    def __iter__(self) -> Iterator[str]:
        return iter(self._plugins.market_clients.keys() | self._plugins.services.keys())

    def __len__(self) -> int:
        return len(self._plugins.market_clients.keys() | self._plugins.services.keys())


def _loaded(registry: dict[str, Any], name: str, kind: str) -> type[Any]:
    """The registry entry `name`, importing it first if the plugin gave a "module:attr" reference."""
    entry = registry[name]
    if isinstance(entry, str):
        entry = registry[name] = _import(entry, kind)
        if not isinstance(entry, type):
            raise ConfigError(f"{kind} {name!r} is not a class")
    return entry  # type: ignore[no-any-return]


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
