"""Recording a Binance market from the simulator and replaying it through the plugin's own BookFeed: the
replayed book equals the live client's before every recorded input, and at the end."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from exchanges.binance import BinanceSim
from moonship_binance.client import BinanceClient

from moonship_core import MarketStatus
from moonship_core.testing import BookTap, RecordingEvents, book_state, until

from .conftest import fast, make_client

pytestmark = pytest.mark.anyio
D = Decimal


async def test_the_replayed_book_equals_the_live_book_at_every_input(sim: BinanceSim) -> None:
    client, events = make_client(fast(sim))
    tap = BookTap(lambda: events.book)
    client.feed.recorder = tap
    info = await client.get_market_info()
    await client.connect()
    sim.exchange.set_level("BTCUSDT", "a", "30000.50", "2")
    await until(lambda: events.status_now is MarketStatus.OPEN, what="book synced")
    for i in range(30):
        sim.exchange.set_level("BTCUSDT", "b", f"{29990 - i}.00", str(i + 1))
        if i % 5 == 0:
            sim.exchange.take("BTCUSDT", "BUY" if i % 10 else "SELL", "0.3")
        sim.exchange.set_level("BTCUSDT", "a", f"{30011 + i}.00", "0.5")
    await until(lambda: events.book.sequence == sim.exchange.symbols["BTCUSDT"].update_id)
    await until(lambda: len(events.trades) == 6)
    final = book_state(events.book)
    await client.close()
    kinds = [kind for kind, _, _ in tap.inputs]
    assert kinds.count("rest:depth") == 1 and kinds.count("ws") >= 4
    assert all(a[2] <= b[2] for a, b in zip(tap.inputs, tap.inputs[1:], strict=False))

    replayed = RecordingEvents("BTCUSDT")
    parser = BinanceClient.replay_parser(client.context, replayed, info)
    for i, (kind, data, _) in enumerate(tap.inputs):
        assert book_state(replayed.book) == tap.books[i], f"before input {i} ({kind})"
        parser.feed(kind, data)
        for _ in range(5):
            await asyncio.sleep(0)
    assert book_state(replayed.book) == final
    assert replayed.status_now is MarketStatus.OPEN
    assert [(t.price, t.quantity, t.taker_side) for t in replayed.trades] == [
        (t.price, t.quantity, t.taker_side) for t in events.trades
    ]
    await parser.book_feed.stop()  # type: ignore[attr-defined]
