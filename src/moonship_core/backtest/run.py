"""One backtest: the config's strategies in a real engine whose markets are paper markets over the recording's
replay, under a SimClock. Deterministic: client order ids count up, time is the recording's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from ..clock import SimClock, epoch_ns, from_epoch_ns
from ..config import MoonshipConfig
from ..contracts.client import MarketClient
from ..errors import ConfigError
from ..model import sequential_client_order_ids
from ..plugins import Plugins
from ..record.reader import Recording
from ..sim.paper import PaperClient
from ..sim.replay import REPLAY, Replay, ReplayClient
from ..trading.engine import TradingEngine
from .report import Collector

#: equity samples per strategy over the whole range (besides one at every fill)
SAMPLES = 1000


class BacktestEngine(TradingEngine):
    """The engine with every exchange client replaced by the replay of its recording."""

    def replay(self, replay: Replay) -> None:
        """Feed the markets from `replay` (before they open); it delivers to the strategies inline."""
        self._shared[REPLAY] = replay
        for strategy in self.strategies.values():
            strategy.mailbox.pump = replay.defer

    def _client_class(self, name: str) -> type[MarketClient]:
        if name == PaperClient.name:
            return PaperClient
        return ReplayClient


@dataclass
class Outcome:
    collector: Collector
    events: int
    first_ns: int | None
    last_ns: int | None
    wall_seconds: float


def backtest_config(config: MoonshipConfig, latency_ms: Decimal) -> MoonshipConfig:
    """`config` for a backtest: each market a paper market over its venue (with `latency_ms`), no
    recording, no strategy started before the replay reaches the range."""
    data: dict[str, Any] = config.model_dump()
    for market in data["markets"].values():
        if market["client"] != PaperClient.name:
            market["real_client"] = market["client"]
            market["client"] = PaperClient.name
        market["latency_ms"] = latency_ms
    data["record"] = {"dir": None}
    data["engine"]["summary_interval"] = 0
    for strategy in data["strategies"].values():
        strategy["auto_start"] = False
    return MoonshipConfig.model_validate(data)


async def run_backtest(
    config: MoonshipConfig,
    data: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    latency_ms: Decimal = Decimal(0),
    plugins: Plugins | None = None,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Run the auto-start strategies of `config` over the recording in `data`, between `start` and `end`."""
    plugins = plugins or Plugins.load()
    recording = Recording(data)
    missing = [name for name in config.markets if name not in recording.markets]
    if missing:
        raise ConfigError(
            f"market {missing[0]} is not in the recording {data} (it holds "
            f"{', '.join(sorted(recording.markets)) or 'none'})"
        )
    firsts = [m.first_ns for m in recording.markets.values() if m.first_ns is not None]
    if not firsts:
        raise ConfigError(f"the recording {data} holds no input")
    venues = {m.venue: plugins.resolve("market_clients", m.venue) for m in recording.markets.values()}
    clock = SimClock(from_epoch_ns(min(firsts)))
    replay = Replay(recording, clock, venues)
    auto = [name for name, s in config.strategies.items() if s.auto_start]
    with sequential_client_order_ids():
        built = BacktestEngine.embedded(backtest_config(config, latency_ms), plugins, clock=clock)
        engine = cast(BacktestEngine, built)
        engine.replay(replay)
        span = (recording.manifest.get("last_ns", 0) - min(firsts)) or 1
        collector = Collector(engine, clock, max(span // SAMPLES, 1_000_000_000))
        wall = time.perf_counter()
        await engine.start()
        try:
            await asyncio.gather(*(m.open() for m in engine.markets.values()))
            start_ns = epoch_ns(start) - 1 if start is not None else None
            if start_ns is not None:
                await replay.run(start_ns, count=False)  # the books as they stood at `start`
            await asyncio.gather(*(engine.strategies[name].start() for name in auto))
            collector.start()
            await replay.run(epoch_ns(end) if end is not None else None, progress=progress)
            collector.finish()
        finally:
            await replay.finish(engine.stop())
        wall = time.perf_counter() - wall
    return Outcome(collector, replay.events, replay.first_ns, replay.last_ns, wall)
