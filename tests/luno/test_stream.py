"""Market stream resilience: sequence gaps, malformed frames, silent feeds, dropped or refused connections."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from exchanges.luno import LunoSimulator, Participants
from exchanges.luno.engine import SimMarket

from moonship_core import MarketStatus, OrderBook, Side
from moonship_core.testing import RecordingEvents, until

from .conftest import PAIR, make_client

pytestmark = pytest.mark.anyio


def same_book(book: OrderBook, market: SimMarket) -> bool:
    return (
        list(book.levels(Side.BUY)) == market.levels("BUY")
        and list(book.levels(Side.SELL)) == market.levels("SELL")
        and book.sequence == market.sequence
    )


async def synced(
    events: RecordingEvents, sim: LunoSimulator, snapshots: Callable[[], int], count: int
) -> None:
    await until(
        lambda: snapshots() >= count
        and events.status_now is MarketStatus.OPEN
        and same_book(events.book, sim.exchange.markets[PAIR]),
        what=f"snapshot {count} in step with the simulator",
    )


@pytest.mark.parametrize("fault", ["gap", "malformed", "stale", "drop"])
async def test_a_broken_feed_reconnects_for_a_fresh_snapshot(sim: LunoSimulator, fault: str) -> None:
    crowd = Participants(sim.exchange, PAIR, seed=3)
    for _ in range(100):
        crowd.step()
    client, events = make_client(sim, silence_timeout=1.0 if fault == "stale" else 3.0)
    await client.get_market_info()
    await client.connect()
    stream = client.stream
    assert stream is not None
    await synced(events, sim, lambda: stream.snapshots, 1)
    crowd.step()
    await until(lambda: same_book(events.book, sim.exchange.markets[PAIR]), what="first update")
    seen = len(events.statuses)

    if fault == "gap":
        sim.skip_sequence(PAIR)
        crowd.step()
    elif fault == "malformed":
        sim.malformed_frame(PAIR)
    elif fault == "stale":
        sim.go_silent(PAIR)  # silent but open: only the client's silence watch and probe notice
        crowd.step()
    else:
        sim.drop_market_streams()
    await until(lambda: events.unsynced(seen), what="UNSYNCED")
    reason = events.unsynced(seen)[0]
    expected = {"gap": "gap", "malformed": "malformed", "stale": "silent feed", "drop": "closed"}[fault]
    assert expected in reason
    for _ in range(20):
        crowd.step()
    await synced(events, sim, lambda: stream.snapshots, 2)
    # the sequence restarts from the snapshot: exactly one reconnect, no extra one for a stale sequence
    assert sim.stats["market_connects"] == 2 and stream.snapshots == 2
    for _ in range(20):
        crowd.step()
    await until(lambda: same_book(events.book, sim.exchange.markets[PAIR]), what="updates after resync")
    await client.close()


async def test_keepalives_keep_a_quiet_feed_alive(sim: LunoSimulator) -> None:
    client, events = make_client(sim, silence_timeout=1.0)
    await client.get_market_info()
    await client.connect()
    await until(lambda: events.status_now is MarketStatus.OPEN, what="synced")
    before = list(events.statuses)
    # an observation window of two stale timeouts with no market activity: only the simulator's ""
    # keepalives (every 0.2 s) arrive, and they keep the feed alive
    await asyncio.sleep(2.0)
    assert events.statuses == before and sim.stats["market_connects"] == 1
    await client.close()


async def test_refused_connections_retry_with_backoff_until_the_stream_returns(sim: LunoSimulator) -> None:
    sim.faults.market_stream_down = True
    client, events = make_client(sim)
    await client.get_market_info()
    await client.connect()
    stream = client.stream
    assert stream is not None
    await until(lambda: len(events.statuses) >= 2, what="two failed attempts")
    assert all(s is MarketStatus.UNSYNCED for s, _ in events.statuses)
    assert stream.ws.backoff.attempts >= 2
    sim.faults.market_stream_down = False
    await until(lambda: events.status_now is MarketStatus.OPEN, timeout=10, what="synced")
    assert stream.ws.backoff.attempts == 0  # a snapshot resets the backoff
    await client.close()


async def test_wrong_credentials_are_refused_on_the_stream(sim: LunoSimulator) -> None:
    client, events = make_client(sim, api_secret="wrong")
    await client.get_market_info()
    await client.connect()
    await until(lambda: len(events.statuses) >= 1, what="refusal")
    assert events.statuses[0][0] is MarketStatus.UNSYNCED and "invalid_credentials" in events.statuses[0][1]
    await client.close()
