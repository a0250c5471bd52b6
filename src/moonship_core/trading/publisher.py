"""StatePublisher: an engine's registration, heartbeat and strategy state in the shared cache. Changes are
written by a background task (coalesced), so nothing on the trading path waits on the cache; an outage is
ridden out and the whole state republished when the cache is back.

Its clock paces the heartbeat, whose TTL the cache counts in real time: the engine gives it a LiveClock even
when trading runs on a SimClock (the strategies' own times, in what it publishes, stay simulated)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from ..clock import Clock
from ..contracts.stores import ENGINES_KEY, SharedCache, heartbeat_key, metrics_key, strategies_key
from ..errors import MoonshipError
from .counters import EngineCounters

HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TTL = 15.0
#: state changes are written at most this often (they coalesce in between)
PUBLISH_INTERVAL = 0.25
#: seconds between two writes of the engine's metrics
METRICS_INTERVAL = 1.0
#: the errors a cache backend raises when it cannot be reached
CACHE_ERRORS = (OSError, ConnectionError, TimeoutError)


class Publishable(Protocol):
    def info(self) -> dict[str, Any]:
        """The StrategyInfo to publish."""
        ...


class StatePublisher:
    """Publishes the StrategyInfo of each of one engine's strategies (`strategies`, a live mapping)."""

    def __init__(
        self,
        engine: str,
        instance: str,
        started: datetime,
        cache: SharedCache,
        clock: Clock,
        strategies: Mapping[str, Publishable],
        logger: logging.Logger,
        counters: EngineCounters | None = None,
    ) -> None:
        self.engine = engine
        self.instance = instance
        self.started = started
        self.cache = cache
        self.clock = clock
        self.logger = logger
        self._strategies = strategies
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cache_ok = True
        self._stopping = False
        #: what the engine's registration shows beside its instance and start time (its trading state)
        self.engine_info: Callable[[], dict[str, Any]] = dict
        self._engine_dirty = False
        #: the engine's metrics (counters and prices), written every METRICS_INTERVAL; None: none
        self.metrics: Callable[[], dict[str, Any]] | None = None
        #: the engine's counters (cache outages are counted here)
        self.counters = counters or EngineCounters()

    def changed(self, name: str) -> None:
        self._dirty.add(name)
        self._wake.set()

    def engine_changed(self) -> None:
        """The engine's own state (its registration) changed."""
        self._engine_dirty = True
        self._wake.set()

    def removed(self, name: str) -> None:
        self._dirty.discard(name)
        self._removed.add(name)
        self._wake.set()

    async def claim_name(self) -> None:
        """Refuse to run beside a live engine of the same name; outwait the heartbeat of a crashed one."""
        key = heartbeat_key(self.engine)
        first = await self.cache.get(key)
        if first is None:
            return
        self.logger.warning("engine %s has a heartbeat: waiting to see whether it is alive", self.engine)
        deadline = self.clock.monotonic() + HEARTBEAT_TTL + 1
        while self.clock.monotonic() < deadline:
            await self.clock.sleep(0.5)
            beat = await self.cache.get(key)
            if beat is None:
                return
            if beat != first:
                raise MoonshipError(
                    f"engine name {self.engine!r} is in use by a running engine; "
                    "give this one another moonship.engine.name"
                )

    async def start(self) -> None:
        """Replace what a previous run of this engine left, register, and start publishing."""
        await self.cache.delete(strategies_key(self.engine))
        self._dirty.update(self._strategies)
        self._wake.set()
        await self._register()
        self._task = asyncio.create_task(self._run(), name="engine-publisher")

    async def stop(self) -> None:
        """Write the final state and deregister (best effort: the cache may be gone)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            async with asyncio.timeout(5):
                await self.flush()
                await self.cache.delete(heartbeat_key(self.engine), metrics_key(self.engine))
                await self.cache.hdel(ENGINES_KEY, self.engine)
        except CACHE_ERRORS as exc:
            self.logger.warning("could not write the final state to the shared cache: %s", exc)

    async def flush(self) -> None:
        """Write every pending change now."""
        dirty, self._dirty = self._dirty, set()
        removed, self._removed = self._removed, set()
        engine, self._engine_dirty = self._engine_dirty, False
        try:
            if engine and self._task is not None:
                await self._register()
            key = strategies_key(self.engine)
            current = self._strategies
            infos = {n: current[n].info() for n in dirty if n in current}
            if infos:
                await self.cache.hset(key, infos)
            if removed:
                await self.cache.hdel(key, *removed)
        except BaseException:
            self._dirty |= dirty
            self._removed |= removed
            self._engine_dirty |= engine
            raise

    async def _register(self) -> None:
        registration = {"instance": self.instance, "started": self.started, **self.engine_info()}
        await self.cache.hset(ENGINES_KEY, {self.engine: registration})
        beat = {"instance": self.instance, "time": self.clock.now()}
        await self.cache.set(heartbeat_key(self.engine), beat, ttl=HEARTBEAT_TTL)

    async def _run(self) -> None:
        """Write state changes (coalesced) and the heartbeat; ride out cache outages and then republish."""
        clock = self.clock
        next_beat = clock.monotonic() + HEARTBEAT_INTERVAL
        next_metrics = clock.monotonic()
        backoff = 0.5
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await clock.wait_for(self._wake.wait(), min(next_beat, next_metrics) - clock.monotonic())
            self._wake.clear()
            try:
                if not self._cache_ok:
                    self._dirty.update(self._strategies)
                    await self._register()
                if clock.monotonic() >= next_beat:
                    await self._register()
                    next_beat = clock.monotonic() + HEARTBEAT_INTERVAL
                if clock.monotonic() >= next_metrics:
                    if self.metrics is not None:
                        await self.cache.set(metrics_key(self.engine), self.metrics(), ttl=HEARTBEAT_TTL)
                    next_metrics = clock.monotonic() + METRICS_INTERVAL
                await self.flush()
                if not self._cache_ok:
                    self.logger.info("shared cache reachable again: state republished")
                    self._cache_ok = True
                backoff = 0.5
                await clock.sleep(PUBLISH_INTERVAL)
            except CACHE_ERRORS as exc:
                if self._cache_ok:
                    self.logger.error("shared cache unreachable (%s); trading goes on, retrying", exc)
                    self._cache_ok = False
                    self.counters.cache_outages += 1
                await clock.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                self._wake.set()
