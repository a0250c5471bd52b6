"""A market feed that stops while its socket stays open is caught within `silence_timeout`: UNSYNCED at once,
Luno probed (ping/pong, REST orderbook_top against the book: Luno's REST books carry no sequence), the book
resynced from a fresh snapshot. A genuinely quiet market is probed ever less often and never reconnected.
Through a real engine with a real algo it is the contract suite's (tests/contract)."""

from __future__ import annotations

import asyncio
import time

import pytest
from exchanges.luno import LunoSimulator, Participants
from moonship_luno.client import LunoSettings

from moonship_core import MarketStatus
from moonship_core.testing import until

from .conftest import PAIR, make_client
from .test_stream import same_book

pytestmark = pytest.mark.anyio


async def test_a_silent_feed_on_an_active_market_is_caught_and_resynced(sim: LunoSimulator) -> None:
    crowd = Participants(sim.exchange, PAIR, seed=5)
    for _ in range(50):
        crowd.step()
    client, events = make_client(sim, silence_timeout=0.5)
    await client.get_market_info()
    await client.connect()
    stream = client.stream
    assert stream is not None
    await until(lambda: events.status_now is MarketStatus.OPEN, what="synced")
    crowd.step()
    await until(lambda: stream.active, what="an active market")
    sim.go_silent(PAIR)
    stalled = time.monotonic()
    crowd.step()  # the book moves on behind the stalled feed
    await until(lambda: any("silent feed: no update" in r for r in events.unsynced()), what="UNSYNCED")
    assert time.monotonic() - stalled < 0.5 + 0.3
    await until(lambda: sim.stats["market_connects"] == 2 and events.status_now is MarketStatus.OPEN,
                what="resynced")
    assert stream.silence.silences == 1
    assert any("differs from Luno's orderbook_top" in r for r in events.unsynced())  # the REST probe saw it
    await until(lambda: same_book(events.book, sim.exchange.markets[PAIR]), what="the simulator's book")
    await client.close()


async def test_a_quiet_market_is_probed_less_and_less_and_never_reconnected(sim: LunoSimulator) -> None:
    client, events = make_client(sim, silence_timeout=0.2)
    await client.get_market_info()
    await client.connect()
    stream = client.stream
    assert stream is not None
    await until(lambda: events.status_now is MarketStatus.OPEN, what="synced")
    probes = sim.stats["/api/1/orderbook_top"]
    await asyncio.sleep(2.0)
    assert sim.stats["market_connects"] == 1
    # probes ~0.2, 0.6, 1.4 s after the snapshot (the wait doubles), not one every 0.2 s
    assert 2 <= stream.silence.quiet_probes <= 4
    assert sim.stats["/api/1/orderbook_top"] - probes == stream.silence.quiet_probes
    assert not events.unsynced() and events.status_now is MarketStatus.OPEN  # never active: no status churn
    await client.close()


def test_the_old_key_names_still_work(caplog: pytest.LogCaptureFixture) -> None:
    settings = LunoSettings.model_validate({"stale_timeout": 5, "max_reconnect_delay": 3})
    assert (settings.silence_timeout, settings.reconnect_max_delay) == (5, 3)
    assert "'stale_timeout' is deprecated: use 'silence_timeout'" in caplog.text
    assert "'max_reconnect_delay' is deprecated: use 'reconnect_max_delay'" in caplog.text
    assert LunoSettings().silence_timeout == 10.0
