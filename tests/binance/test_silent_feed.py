"""A feed that stops while its socket stays open is caught within `silence_timeout`: UNSYNCED at once, the
venue probed (ping/pong, REST depth lastUpdateId against the book's), the book resynced from a fresh snapshot.
A genuinely quiet market is probed ever less often and never reconnected. On the client and through a real
engine with a real algo."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import ClassVar

import moonship_binance.plugin
import pytest
from exchanges.binance import BinanceSim
from moonship_binance.client import BinanceClient, BinanceSettings

from moonship_core import MarketStatus, StrategyMarket, TradingAlgo, hookimpl
from moonship_core.config import parse_config
from moonship_core.plugins import Plugins
from moonship_core.testing import RecordingEvents, until
from moonship_core.trading.engine import TradingEngine

from .conftest import fast, make_client
from .test_market_data import assert_book_matches

pytestmark = pytest.mark.anyio
D = Decimal


@contextlib.asynccontextmanager
async def trading(sim: BinanceSim, every: float = 0.05) -> AsyncIterator[None]:
    """An active market: the BTCUSDT book changes every `every` seconds."""

    async def churn() -> None:
        for i in range(10**6):
            sim.exchange.set_level("BTCUSDT", "b", "29000.00", str(i % 9 + 1))
            await asyncio.sleep(every)

    task = asyncio.create_task(churn())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def unsynced(events: RecordingEvents) -> list[str]:
    return [reason for status, reason in events.statuses if status is MarketStatus.UNSYNCED]


async def test_a_silent_feed_on_an_active_market_is_caught_and_resynced(sim: BinanceSim) -> None:
    client, events = make_client(fast(sim, silence_timeout=0.5))
    await client.get_market_info()
    await client.connect()
    async with trading(sim):
        await until(lambda: events.status_now is MarketStatus.OPEN and client.feed.active, what="live book")
        sim.go_silent("stream")
        stalled = time.monotonic()
        await until(lambda: any("silent feed" in r for r in unsynced(events)), what="UNSYNCED on silence")
        assert time.monotonic() - stalled < 0.5 + 0.3  # within the timeout (and the 0.1 s update cadence)
        await until(
            lambda: sim.stream_connects == 2 and events.status_now is MarketStatus.OPEN, what="resynced"
        )
        assert client.feed.silences == 1
        assert any("Binance at" in r for r in unsynced(events))  # the REST probe saw the book move on
    await until(lambda: events.book.sequence == sim.exchange.symbols["BTCUSDT"].update_id, what="caught up")
    assert_book_matches(sim, events)
    await client.close()


async def test_a_quiet_market_is_probed_less_and_less_and_never_reconnected(sim: BinanceSim) -> None:
    client, events = make_client(fast(sim, silence_timeout=0.2))
    await client.get_market_info()
    await client.connect()
    await until(lambda: events.status_now is MarketStatus.OPEN, what="book synced")
    sim.exchange.set_level("BTCUSDT", "a", "30000.50", "1")  # one update, then nothing trades
    await until(lambda: events.book.best_ask == D("30000.50"))
    snapshots = sim.depth_requests
    await asyncio.sleep(2.0)
    assert sim.stream_connects == 1
    # probes ~0.2, 0.6, 1.4 s after the last update (the interval doubles), not one every 0.2 s
    assert 2 <= client.feed.quiet_probes <= 4
    assert sim.depth_requests - snapshots == client.feed.quiet_probes
    # the market had just been active: UNSYNCED once at the first silence, OPEN again once the probe said so
    assert [r for r in unsynced(events) if "silent" in r] == [unsynced(events)[-1]]
    assert events.status_now is MarketStatus.OPEN
    sim.exchange.set_level("BTCUSDT", "a", "30000.25", "1")  # trading resumes: back to the base timeout
    await until(lambda: events.book.best_ask == D("30000.25"))
    assert client.feed.watch.timeout == 0.2
    await client.close()


def test_the_old_key_names_still_work(caplog: pytest.LogCaptureFixture) -> None:
    settings = BinanceSettings.model_validate({"stale_after": 5, "max_reconnect_delay": 3})
    assert (settings.silence_timeout, settings.reconnect_max_delay) == (5, 3)
    assert "'stale_after' is deprecated: use 'silence_timeout'" in caplog.text
    assert "'max_reconnect_delay' is deprecated: use 'reconnect_max_delay'" in caplog.text
    assert BinanceSettings().silence_timeout == 10.0


# ---------------------------------------------------------------------- through an engine
class Watcher(TradingAlgo):
    """Records every market status it hears, with the time, and counts book callbacks."""

    seen: ClassVar[dict[str, Watcher]] = {}

    async def on_start(self) -> None:
        self.statuses: list[tuple[float, MarketStatus]] = []
        self.books = 0
        Watcher.seen[self.name] = self

    async def on_order_book(self, market: StrategyMarket) -> None:
        self.books += 1

    async def on_market_status(self, market: StrategyMarket, status: MarketStatus) -> None:
        self.statuses.append((time.monotonic(), status))


class WatcherPlugin:
    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"watcher": Watcher}


async def engine_with_watcher(sim: BinanceSim, silence_timeout: float) -> tuple[TradingEngine, Watcher]:
    config = parse_config(
        {
            "moonship": {
                "engine": {"name": "silent"},
                "markets": {"btc": {"client": "binance", "symbol": "BTCUSDT"}},
                "strategies": {"w": {"algo": "watcher", "auto_start": True, "markets": ["btc"]}},
                "binance": fast(sim, silence_timeout=silence_timeout),
            }
        }
    )
    plugins = Plugins.load(entry_points=False)
    plugins.register(moonship_binance.plugin, "binance", "moonship-binance")
    plugins.register(WatcherPlugin(), "test")
    Watcher.seen.clear()
    engine = TradingEngine.embedded(config, plugins, timeout=2)
    await engine.start()
    await until(lambda: "w" in Watcher.seen, what="strategy started")
    return engine, Watcher.seen["w"]


async def test_an_engine_strategy_sees_a_silent_feed_unsynced_in_time_and_the_book_resynced(
    sim: BinanceSim,
) -> None:
    engine, watcher = await engine_with_watcher(sim, silence_timeout=0.5)
    market = engine.markets["btc"]
    try:
        async with trading(sim):
            await until(lambda: watcher.books > 5 and market.status is MarketStatus.OPEN, what="live")
            sim.go_silent("stream")
            stalled = time.monotonic()
            await until(lambda: market.status is MarketStatus.UNSYNCED, what="UNSYNCED")
            assert time.monotonic() - stalled < 0.8
            await until(lambda: watcher.statuses and watcher.statuses[-1][1] is MarketStatus.UNSYNCED)
            await until(
                lambda: market.status is MarketStatus.OPEN and sim.stream_connects == 2, what="resynced"
            )
            books = watcher.books
            await until(lambda: watcher.books > books + 3, what="book updates flowing again")
        await until(lambda: market.book.sequence == sim.exchange.symbols["BTCUSDT"].update_id)
        assert_book_matches(sim, market)
        assert watcher.statuses[-1][1] is MarketStatus.OPEN
        assert engine.counters.venues.reconnects == {"binance": 1}  # the metrics saw the reconnect
    finally:
        await engine.stop()


async def test_an_engine_on_a_quiet_market_keeps_one_connection_and_stays_open(sim: BinanceSim) -> None:
    engine, watcher = await engine_with_watcher(sim, silence_timeout=0.2)
    market = engine.markets["btc"]
    try:
        await until(lambda: market.status is MarketStatus.OPEN, what="open")
        opened = len(watcher.statuses)
        await asyncio.sleep(2.0)  # ten silence timeouts without a single update
        assert sim.stream_connects == 1 and market.status is MarketStatus.OPEN
        assert len(watcher.statuses) == opened  # never active: probed quietly, no status churn
        assert engine.counters.venues.reconnects == {}
    finally:
        await engine.stop()
    client = market.client
    assert isinstance(client, BinanceClient)
    assert client.session.closed and client.session.http.is_closed  # the engine closed the venue session
    assert not sim.conns
