"""Engines and clients for tests: an embedded engine over a config and test plugins, a plugin that registers
test algos and market clients, a client wired to RecordingEvents."""

from __future__ import annotations

import logging
from functools import partial
from types import ModuleType
from typing import Any, TypeVar

from ..clock import Clock
from ..config import MarketConfig, parse_config
from ..contracts.algo import TradingAlgo
from ..contracts.client import ClientContext, MarketClient, Sessions
from ..contracts.stores import Stores
from ..hookspecs import hookimpl
from ..plugins import Plugins
from ..trading.engine import TradingEngine
from .algos import AnyStatusAlgo, ScriptedAlgo
from .events import RecordingEvents
from .waiting import until

C = TypeVar("C", bound=MarketClient)


class LocalPlugin:
    """Registers the given algos and market clients by name."""

    def __init__(
        self,
        algos: dict[str, type[TradingAlgo]] | None = None,
        market_clients: dict[str, type[MarketClient]] | None = None,
    ) -> None:
        self.algos = algos or {}
        self.market_clients = market_clients or {}

    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return self.algos

    @hookimpl
    def moonship_market_clients(self) -> dict[str, type[MarketClient]]:
        return self.market_clients


def plugins_with(*plugins: object) -> Plugins:
    """The core's plugins and `plugins`: a plugin module (e.g. `moonship_valr.plugin`, registered as its
    distribution would be) or any object with @hookimpl functions."""
    loaded = Plugins.load(entry_points=False)
    for index, plugin in enumerate(plugins):
        if isinstance(plugin, ModuleType):
            package = plugin.__name__.split(".")[0]
            loaded.register(plugin, package.removeprefix("moonship_"), package.replace("_", "-"))
        else:
            loaded.register(plugin, f"test{index}")
    return loaded


def build_engine(
    moonship: dict[str, Any],
    *plugins: object,
    stores: Stores | None = None,
    clock: Clock | None = None,
    timeout: float = 2.0,
) -> TradingEngine:
    """An embedded engine (not started) over the config below the root key `moonship`, with `plugins` (see
    plugins_with) and the algos "scripted" (ScriptedAlgo) and "scripted_any_status" (AnyStatusAlgo);
    ScriptedAlgo.running is cleared for it."""
    config = parse_config({"moonship": moonship})
    scripted = LocalPlugin({"scripted": ScriptedAlgo, "scripted_any_status": AnyStatusAlgo})
    loaded = plugins_with(scripted, *plugins)
    ScriptedAlgo.running.clear()
    return TradingEngine.embedded(config, loaded, stores=stores, clock=clock, timeout=timeout)


async def started(engine: TradingEngine, *strategies: str, timeout: float = 5.0) -> list[ScriptedAlgo]:
    """Start `engine` and return the ScriptedAlgo of each named strategy once it runs."""
    await engine.start()
    await until(lambda: all(s in ScriptedAlgo.running for s in strategies), timeout, "strategies started")
    return [ScriptedAlgo.running[s] for s in strategies]


def make_client(
    client_class: type[C],
    market: dict[str, Any],
    settings: Any,
    *,
    name: str = "test",
    shared: dict[str, Any] | None = None,
    events: RecordingEvents | None = None,
) -> tuple[C, RecordingEvents]:
    """A client of `client_class` for the market config `market` and its validated settings, pushing into
    `events` (new RecordingEvents by default); `shared`: the engine's per-venue state, for clients that share
    one (clients given the same `shared` share their venue sessions too, under its key "sessions")."""
    config = MarketConfig.model_validate(market)
    shared = shared if shared is not None else {}
    context = ClientContext(
        name,
        config,
        settings,
        partial(Plugins.load(entry_points=False).resolve, "market_clients"),
        shared=shared,
        sessions=shared.setdefault("sessions", Sessions()),
        logger=logging.getLogger(f"moonship.market.{name}"),
    )
    events = events or RecordingEvents(config.symbol)
    return client_class(context, events), events
