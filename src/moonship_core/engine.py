"""TradingEngine: builds markets and strategies from config, runs them, obeys control commands, and keeps
the shared cache up to date without ever making the trading path wait on it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from typing import Any

from .bus import MemoryBus, MessageBus
from .cache import ENGINES_KEY, MemoryCache, SharedCache, heartbeat_key, strategies_key
from .client import ClientContext
from .config import (
    MarketConfig,
    MoonshipConfig,
    StrategyConfig,
    section_settings,
    validate_model,
    validate_sections,
)
from .control import ControlPlane
from .errors import ConfigError, ControlError, MoonshipError
from .market import Market
from .model import utc_now
from .plugins import Plugins
from .service import Service, ServiceContext
from .strategy import Strategy

HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TTL = 15.0
#: state changes are written at most this often (they coalesce in between)
PUBLISH_INTERVAL = 0.25
#: replies remembered for de-duplicating retried commands
REMEMBERED_COMMANDS = 1000


class TradingEngine(Service):
    name = "engine"

    def __init__(self, context: ServiceContext) -> None:
        super().__init__(context)
        config = context.config
        self.engine_name = config.engine.name
        self.instance = uuid.uuid4().hex[:12]
        self.started = utc_now()
        self._shared: dict[str, Any] = {}
        self.markets = {name: self._build_market(name, mc) for name, mc in config.markets.items()}
        self.strategies = {name: self._build_strategy(name, sc) for name, sc in config.strategies.items()}
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self._wake = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        self._replies: OrderedDict[str, asyncio.Future[dict[str, Any]]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._cache_ok = True
        self._stopping = False
        self._ready = asyncio.Event()

    @classmethod
    def embedded(
        cls,
        config: MoonshipConfig,
        plugins: Plugins | None = None,
        *,
        cache: SharedCache | None = None,
        bus: MessageBus | None = None,
        timeout: float = 20.0,
    ) -> TradingEngine:
        """An engine for use inside another program (or a test): in-memory cache and bus unless given;
        its `context.control` drives it. Call `start()` and `stop()` yourself."""
        plugins = plugins or Plugins.load()
        cache = cache or MemoryCache()
        bus = bus or MemoryBus()
        sections: dict[str, Any] = validate_sections(config, plugins.section_models())
        context = ServiceContext(
            config=config,
            settings={},
            sections=sections,
            plugins=plugins,
            cache=cache,
            bus=bus,
            control=ControlPlane(cache, bus, timeout),
        )
        return cls(context)

    # ------------------------------------------------------------------ building
    def _build_market(self, name: str, config: MarketConfig) -> Market:
        ctx = self.context
        try:
            client_class = ctx.plugins.market_client(config.client)
        except ConfigError as exc:
            raise ConfigError(f"moonship.markets.{name}.client: {exc}") from None
        client_context = ClientContext(
            market_name=name,
            config=config,
            settings=section_settings(ctx.sections, client_class.name, client_class.settings_model),
            plugins=ctx.plugins,
            sections=ctx.sections,
            shared=self._shared,
        )
        return Market(name, config, client_class, client_context)

    def _build_strategy(self, name: str, config: StrategyConfig) -> Strategy:
        try:
            algo_class = self.context.plugins.algo(config.algo)
        except ConfigError as exc:
            raise ConfigError(f"moonship.strategies.{name}.algo: {exc}") from None
        unknown = [m for m in config.markets if m not in self.markets]
        if unknown:
            raise ConfigError(f"moonship.strategies.{name}.markets: unknown market {unknown[0]!r}")
        markets = {m: self.markets[m] for m in config.markets}
        return Strategy(name, self.engine_name, config, algo_class, markets, self._changed)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        cache = self.context.cache
        await self._claim_name()
        await cache.delete(strategies_key(self.engine_name))  # a restarted engine replaces its old state
        self._dirty.update(self.strategies)
        self._wake.set()
        await self._register()
        self._sync_task = asyncio.create_task(self._sync(), name="engine-sync")
        await self.context.bus.serve(self.engine_name, self._handle)
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
        self._ready.set()  # commands received meanwhile run now, on the started strategies

    async def stop(self) -> None:
        await self.context.bus.unserve(self.engine_name)
        await asyncio.gather(*(s.stop("engine stopped") for s in self.strategies.values()))
        results = await asyncio.gather(*(m.close() for m in self.markets.values()), return_exceptions=True)
        for market, result in zip(self.markets.values(), results, strict=True):
            if isinstance(result, BaseException):
                self.logger.warning("closing market %s failed: %s", market.name, result)
        self._stopping = True
        self._wake.set()
        if self._sync_task is not None:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
        try:
            await asyncio.wait_for(self._flush(), 5)
            await self.context.cache.delete(heartbeat_key(self.engine_name))
            await self.context.cache.hdel(ENGINES_KEY, self.engine_name)
        except (OSError, ConnectionError, TimeoutError) as exc:
            self.logger.warning("could not write the final state to the shared cache: %s", exc)
        self.logger.info("engine %s stopped", self.engine_name)

    # ------------------------------------------------------------------ shared cache
    def _changed(self, strategy: Strategy) -> None:
        self._dirty.add(strategy.name)
        self._wake.set()

    async def _claim_name(self) -> None:
        """Refuse to run beside a live engine of the same name; outwait the heartbeat of a crashed one."""
        key = heartbeat_key(self.engine_name)
        cache = self.context.cache
        first = await cache.get(key)
        if first is None:
            return
        self.logger.warning("engine %s has a heartbeat: waiting to see whether it is alive", self.engine_name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HEARTBEAT_TTL + 1
        while loop.time() < deadline:
            await asyncio.sleep(0.5)
            beat = await cache.get(key)
            if beat is None:
                return
            if beat != first:
                raise MoonshipError(
                    f"engine name {self.engine_name!r} is in use by a running engine; "
                    "give this one another moonship.engine.name"
                )

    async def _register(self) -> None:
        cache = self.context.cache
        registration = {"instance": self.instance, "started": self.started}
        await cache.hset(ENGINES_KEY, {self.engine_name: registration})
        beat = {"instance": self.instance, "time": utc_now()}
        await cache.set(heartbeat_key(self.engine_name), beat, ttl=HEARTBEAT_TTL)

    async def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        removed, self._removed = self._removed, set()
        try:
            key = strategies_key(self.engine_name)
            infos = {n: self.strategies[n].info() for n in dirty if n in self.strategies}
            if infos:
                await self.context.cache.hset(key, infos)
            if removed:
                await self.context.cache.hdel(key, *removed)
        except BaseException:
            self._dirty |= dirty
            self._removed |= removed
            raise

    async def _sync(self) -> None:
        """Write state changes (coalesced) and the heartbeat; ride out cache outages and then republish."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + HEARTBEAT_INTERVAL
        backoff = 0.5
        while not self._stopping:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancel that stops us
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_beat - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if not self._cache_ok:
                    self._dirty.update(self.strategies)
                    await self._register()
                if loop.time() >= next_beat:
                    await self._register()
                    next_beat = loop.time() + HEARTBEAT_INTERVAL
                await self._flush()
                if not self._cache_ok:
                    self.logger.info("shared cache reachable again: state republished")
                    self._cache_ok = True
                backoff = 0.5
                await asyncio.sleep(PUBLISH_INTERVAL)
            except (OSError, ConnectionError, TimeoutError) as exc:
                if self._cache_ok:
                    self.logger.error("shared cache unreachable (%s); trading goes on, retrying", exc)
                    self._cache_ok = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                self._wake.set()

    # ------------------------------------------------------------------ commands
    async def _handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run a command once per id (a retry gets the first run's reply), after start-up is complete."""
        await self._ready.wait()
        cid = str(command.get("id") or uuid.uuid4().hex)
        earlier = self._replies.get(cid)
        if earlier is not None:
            return await asyncio.shield(earlier)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[cid] = future
        while len(self._replies) > REMEMBERED_COMMANDS:
            self._replies.popitem(last=False)
        try:
            reply = {"id": cid, "ok": True, "result": await self._execute(command)}
            # read-your-writes: the change is in the cache before the caller hears it is done
            with contextlib.suppress(OSError, ConnectionError, TimeoutError):
                async with asyncio.timeout(2):
                    await self._flush()
        except ControlError as exc:
            reply = {"id": cid, "ok": False, "error": str(exc), "status": exc.status}
        except ConfigError as exc:
            reply = {"id": cid, "ok": False, "error": str(exc), "status": 400}
        except MoonshipError as exc:
            reply = {"id": cid, "ok": False, "error": str(exc), "status": 500}
        except Exception as exc:
            self.logger.exception("command %s failed", command.get("command"))
            reply = {"id": cid, "ok": False, "error": f"Internal error: {type(exc).__name__}", "status": 500}
        future.set_result(reply)
        return reply

    async def _execute(self, command: dict[str, Any]) -> Any:
        action = command.get("command")
        if action == "list":
            return [s.info() for s in self.strategies.values()]
        name = command.get("strategy")
        if not isinstance(name, str) or not name:
            raise ControlError("Missing or bad strategy field", 400)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if action == "add":
                return await self._add(name, command.get("config"))
            strategy = self.strategies.get(name)
            if strategy is None:
                raise ControlError("No such strategy", 404)
            if action == "start":
                await strategy.start()
            elif action == "stop":
                await strategy.stop("stopped by command")
            elif action == "update":
                await self._update(strategy, command.get("config"))
            elif action == "remove":
                await strategy.stop("removed")
                del self.strategies[name]
                self._dirty.discard(name)
                self._removed.add(name)
                self._wake.set()
                self.logger.info("strategy %s removed", name)
            else:
                raise ControlError("Missing or bad command field", 400)
            return self.strategies[name].info() if name in self.strategies else None

    async def _add(self, name: str, config: Any) -> dict[str, Any]:
        if name in self.strategies:
            raise ControlError(f"Strategy {name} already exists", 400)
        strategy = self._build_strategy(name, _strategy_config(name, config))
        self.strategies[name] = strategy
        self._changed(strategy)
        self.logger.info("strategy %s added", name)
        if strategy.config.auto_start:
            await strategy.start()
        return strategy.info()

    async def _update(self, strategy: Strategy, changes: Any) -> None:
        if not isinstance(changes, dict):
            raise ControlError("Missing or bad config field", 400)
        merged = strategy.config.model_dump() | changes
        replacement = self._build_strategy(strategy.name, _strategy_config(strategy.name, merged))
        was_active = strategy.active
        await strategy.stop("updated")
        self.strategies[strategy.name] = replacement
        self._changed(replacement)
        self.logger.info("strategy %s updated", strategy.name)
        if was_active:
            await replacement.start()


def _strategy_config(name: str, data: Any) -> StrategyConfig:
    if not isinstance(data, dict):
        raise ControlError("Missing or bad config field", 400)
    return validate_model(StrategyConfig, data, f"moonship.strategies.{name}")
