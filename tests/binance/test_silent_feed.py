"""A feed that stops while its socket stays open is caught within `silence_timeout`: UNSYNCED at once, the
venue probed (ping/pong, REST depth lastUpdateId against the book's), the book resynced from a fresh snapshot.
A genuinely quiet market is probed ever less often and never reconnected. On the client (through a real
engine with a real algo it is the contract suite's, tests/contract)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from exchanges.binance import BinanceSim
from moonship_binance.client import BinanceSettings

from moonship_core import MarketStatus
from moonship_core.testing import until

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


async def test_a_silent_feed_on_an_active_market_is_caught_and_resynced(sim: BinanceSim) -> None:
    client, events = make_client(fast(sim, silence_timeout=0.5))
    await client.get_market_info()
    await client.connect()
    async with trading(sim):
        await until(lambda: events.status_now is MarketStatus.OPEN and client.feed.active, what="live book")
        sim.go_silent("stream")
        stalled = time.monotonic()
        await until(lambda: any("silent feed" in r for r in events.unsynced()), what="UNSYNCED on silence")
        assert time.monotonic() - stalled < 0.5 + 0.3  # within the timeout (and the 0.1 s update cadence)
        await until(
            lambda: sim.stream_connects == 2 and events.status_now is MarketStatus.OPEN, what="resynced"
        )
        assert client.feed.silence.silences == 1
        assert any("Binance at" in r for r in events.unsynced())  # the REST probe saw the book move on
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
    assert 2 <= client.feed.silence.quiet_probes <= 4
    assert sim.depth_requests - snapshots == client.feed.silence.quiet_probes
    # the market had just been active: UNSYNCED once at the first silence, OPEN again once the probe said so
    assert [r for r in events.unsynced() if "silent" in r] == [events.unsynced()[-1]]
    assert events.status_now is MarketStatus.OPEN
    sim.exchange.set_level("BTCUSDT", "a", "30000.25", "1")  # trading resumes: back to the base timeout
    await until(lambda: events.book.best_ask == D("30000.25"))
    assert client.feed.silence.watch.timeout == 0.2
    await client.close()


def test_the_old_key_names_still_work(caplog: pytest.LogCaptureFixture) -> None:
    settings = BinanceSettings.model_validate({"stale_after": 5, "max_reconnect_delay": 3})
    assert (settings.silence_timeout, settings.reconnect_max_delay) == (5, 3)
    assert "'stale_after' is deprecated: use 'silence_timeout'" in caplog.text
    assert "'max_reconnect_delay' is deprecated: use 'reconnect_max_delay'" in caplog.text
    assert BinanceSettings().silence_timeout == 10.0
