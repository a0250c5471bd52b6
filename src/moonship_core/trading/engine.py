"""TradingEngine: composes markets and strategies from config, its state publisher and its command handler,
and runs them."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import Clock, LiveClock
from ..config import MarketConfig, MoonshipConfig, StrategyConfig, section_settings, validate_sections
from ..contracts.client import ClientContext, MarketClient, Sessions
from ..contracts.service import Service, ServiceContext
from ..contracts.stores import Stores
from ..control import ControlPlane
from ..errors import ConfigError
from ..metrics import EngineMetrics, MetricsServer, render
from ..plugins import Plugins
from ..stores.memory import MemoryBus, MemoryCache, MemoryJournal
from .commands import Commands
from .counters import EngineCounters
from .market import Market
from .orders import OrderManager
from .portfolio import Portfolio
from .publisher import StatePublisher
from .risk import Risk
from .strategy import Strategy
from .summary import figures, line, table

if TYPE_CHECKING:
    from ..record.writer import RecordWriter


class TradingEngine(Service):
    name = "engine"

    def __init__(self, context: ServiceContext) -> None:
        super().__init__(context)
        config = context.config
        self.clock = context.clock
        self.engine_name = config.engine.name
        self.instance = uuid.uuid4().hex[:12]
        self.started = self.clock.now()
        self._shared: dict[str, Any] = {}
        self.sessions = Sessions()
        self.strategies: dict[str, Strategy] = {}
        #: what the engine counts for its metrics (`moonship_core.metrics`)
        self.counters = EngineCounters()
        # the heartbeat is the engine's liveness in the shared cache, whose TTLs run on real time: the
        # publisher paces it (and its writes) on the system clock even when the engine runs on a SimClock
        self.publisher = StatePublisher(
            self.engine_name, self.instance, self.started, context.cache, LiveClock(), self.strategies,
            self.logger, self.counters,
        )
        self.publisher.metrics = self.metrics
        self.journal = context.stores.journal or MemoryJournal()
        self.orders = OrderManager(
            self.journal, Portfolio(), self.clock, self.publisher.changed, config.journal.unknown_orders,
            self.counters,
        )
        self.risk = Risk(
            config.risk, self.orders, self.journal, self.clock, self.publisher.changed,
            self.publisher.engine_changed,
        )
        self.publisher.engine_info = self.risk.engine_info
        self.recording: RecordWriter | None = None
        if config.record.dir:
            from ..record.writer import RecordWriter  # gzip and the recorder only when recording

            self.recording = RecordWriter(Path(config.record.dir))
        self.markets = {name: self._build_market(name, mc) for name, mc in config.markets.items()}
        for name, strategy_config in config.strategies.items():
            self.strategies[name] = self._build_strategy(name, strategy_config)
        self.commands = Commands(
            self.strategies, self._build_strategy, self.publisher, self.logger, self.journal, self.risk
        )
        self.summary_interval = config.engine.summary_interval
        self._summaries: asyncio.Task[None] | None = None
        #: the engine's own GET /metrics listener (`moonship.metrics.port`), bound by preflight()
        self.metrics_server: MetricsServer | None = None
        self._started = False

    @classmethod
    def embedded(
        cls,
        config: MoonshipConfig,
        plugins: Plugins | None = None,
        *,
        stores: Stores | None = None,
        timeout: float = 20.0,
        clock: Clock | None = None,
    ) -> TradingEngine:
        """An engine for use inside another program (or a test): in-memory cache and bus unless given;
        its `context.control` drives it. Call `start()` and `stop()` yourself. `clock` is the time its
        markets, strategies and simulated clients see (a SimClock for a backtest; the system's by default).
        """
        plugins = plugins or Plugins.load()
        stores = stores or Stores(MemoryCache(), MemoryBus(), MemoryJournal())
        context = ServiceContext(
            config=config,
            settings={},
            sections=validate_sections(config, plugins.section_models()),
            registry=plugins,
            stores=stores,
            control=ControlPlane(stores.cache, stores.bus, timeout),
            clock=clock or LiveClock(),
        )
        return cls(context)

    # ------------------------------------------------------------------ building
    def _client_class(self, name: str) -> type[MarketClient]:
        client_class: type[MarketClient] = self.context.registry.resolve("market_clients", name)
        return client_class

    def _build_market(self, name: str, config: MarketConfig) -> Market:
        ctx = self.context
        try:
            client_class = self._client_class(config.client)
        except ConfigError as exc:
            raise ConfigError(f"moonship.markets.{name}.client: {exc}") from None
        client_context = ClientContext(
            market_name=name,
            config=config,
            settings=section_settings(ctx.sections, client_class.name, client_class.settings_model),
            resolve_client=self._client_class,
            sections=ctx.sections,
            shared=self._shared,
            sessions=self.sessions,
            clock=self.clock,
            journal=self.journal,
            counters=self.counters.venues,
        )
        if self.recording is not None:
            from ..record.writer import recorded_client

            recorded = recorded_client(config, client_class, self._client_class)
            client_context.recorder = self.recording.market(name, config.symbol, recorded)
        return Market(name, config, client_class, client_context, self.orders, self.risk, self.counters)

    def _build_strategy(self, name: str, config: StrategyConfig, *, dotted: bool = True) -> Strategy:
        """The strategy `name`; its algo may be a dotted class path only if `dotted` (the operator's config
        file: commands from the bus name registered algos only)."""
        try:
            algo_class = self.context.registry.resolve("algos", config.algo, dotted=dotted)
        except ConfigError as exc:
            raise ConfigError(f"moonship.strategies.{name}.algo: {exc}") from None
        unknown = [m for m in config.markets if m not in self.markets]
        if unknown:
            raise ConfigError(f"moonship.strategies.{name}.markets: unknown market {unknown[0]!r}")
        markets = {m: self.markets[m] for m in config.markets}
        strategy = Strategy(
            name, self.engine_name, config, algo_class, markets, self._changed, self.clock, self.orders,
            self.risk,
        )
        self.risk.configure(name, config.risk)
        return strategy

    def metrics(self) -> dict[str, Any]:
        """What the engine publishes for its metrics: its counters and each market's mid (else last) price."""
        prices: dict[str, Any] = {}
        for name, market in self.markets.items():
            bid, ask = market.book.best_bid, market.book.best_ask
            price = (bid + ask) / 2 if bid is not None and ask is not None else market.last_price
            if price is not None:
                prices[name] = price
        return {**self.counters.snapshot(), "prices": prices}

    def _changed(self, strategy: Strategy) -> None:
        self.publisher.changed(strategy.name)

    def prometheus(self) -> bytes:
        """This engine's metrics in the Prometheus text format."""
        strategies = [s.info() for s in self.strategies.values()]
        return render([EngineMetrics(self.engine_name, True, self.metrics(), strategies)])

    # ------------------------------------------------------------------ lifecycle
    async def preflight(self) -> None:
        """The metrics port is free (`moonship.metrics.port`): bound now, kept for start()."""
        metrics = self.context.config.metrics
        if metrics.port is not None and self.metrics_server is None:
            self.metrics_server = MetricsServer.bind(metrics.host, metrics.port, self.prometheus)

    async def start(self) -> None:
        """Claim the name, take up the journal, reconcile the markets that had open orders with their
        exchanges, and only then serve commands and start the auto-started strategies (crash-only: a start
        after kill -9 and a clean start are the same path)."""
        self._started = True
        await self.publisher.claim_name()
        if self.recording is not None:
            await self.recording.start(lambda: {name: m.info for name, m in self.markets.items()})
        await self.journal.open()
        await self.risk.restore()
        with self.risk.restoring():
            await self.orders.restore(self.markets)
        pending = [m for m in self.markets.values() if self.orders.open_orders(m.name)]
        results = await asyncio.gather(*(m.open() for m in pending), return_exceptions=True)
        for market, result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                self.logger.error("market %s did not open to reconcile its orders: %s", market.name, result)
        await self.publisher.start()
        await self.preflight()
        if self.metrics_server is not None:
            await self.metrics_server.start()
        await self.context.bus.serve(self.engine_name, self.commands.handle)
        self.logger.info(
            "engine %s started: %d markets, %d strategies",
            self.engine_name,
            len(self.markets),
            len(self.strategies),
        )
        auto = [s for s in self.strategies.values() if s.config.auto_start]
        results = await asyncio.gather(*(s.start() for s in auto), return_exceptions=True)
        for strategy, result in zip(auto, results, strict=True):
            if isinstance(result, BaseException):
                self.logger.error("strategy %s did not start: %s", strategy.name, result)
        self.commands.ready.set()  # commands received meanwhile run now, on the started strategies
        if self.summary_interval > 0:
            self._summaries = asyncio.create_task(self._log_summaries(), name="engine:summaries")

    async def _log_summaries(self) -> None:
        """Every summary_interval seconds, one line per running strategy in its own log."""
        while True:
            await self.clock.sleep(self.summary_interval)
            for strategy in list(self.strategies.values()):
                if strategy.active:
                    strategy.logger.info("%s", line(figures(strategy, self.orders)))

    def summary_table(self) -> str:
        """Every strategy's position, P/L, fees, orders and fills as an aligned table."""
        return table([figures(s, self.orders) for s in self.strategies.values()])

    async def stop(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.close()
            self.metrics_server = None
        if not self._started:  # only preflight() ran (another service's check failed)
            return
        await self.context.bus.unserve(self.engine_name)
        if self._summaries is not None:
            self._summaries.cancel()
            await asyncio.gather(self._summaries, return_exceptions=True)
        await asyncio.gather(*(s.stop("engine stopped") for s in self.strategies.values()))
        await self.risk.close()
        if self.strategies:  # marked at the books as they were at stop, before the markets close
            self.logger.info("summary at stop:\n%s", self.summary_table())
        results = await asyncio.gather(*(m.close() for m in self.markets.values()), return_exceptions=True)
        for market, result in zip(self.markets.values(), results, strict=True):
            if isinstance(result, BaseException):
                self.logger.warning("closing market %s failed: %s", market.name, result)
        try:
            await self.sessions.aclose()
        except Exception as exc:
            self.logger.warning("closing the venue sessions failed: %s", exc)
        if self.recording is not None:
            await self.recording.close()
        await self.publisher.stop()
        try:
            await self.journal.close()
        except Exception as exc:
            self.logger.error("the journal could not be written at stop: %s", exc)
        self.logger.info("engine %s stopped", self.engine_name)
