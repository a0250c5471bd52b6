"""Recording a Luno market from the simulator and replaying it through the plugin's own MarketStream: the
replayed book equals the live client's before every recorded input, and at the end."""

from __future__ import annotations

from decimal import Decimal

import pytest
from exchanges.luno import LunoSimulator
from moonship_luno.client import LunoClient

from moonship_core import MarketStatus
from moonship_core.testing import BookTap, RecordingEvents, book_state, until

from .conftest import PAIR, make_client

pytestmark = pytest.mark.anyio
D = Decimal


async def test_the_replayed_book_equals_the_live_book_at_every_input(sim: LunoSimulator) -> None:
    ex = sim.exchange
    maker = ex.add_user("maker", "m", {"XBT": "10", "ZAR": "100000000"})
    taker = ex.add_user("taker", "t", {"XBT": "10", "ZAR": "100000000"})
    ex.post_limit(maker, PAIR, "ASK", "0.5", "1000100.00")
    ex.post_limit(maker, PAIR, "BID", "1", "999900.00")
    client, events = make_client(sim)
    tap = BookTap(lambda: events.book)
    client.context.recorder = tap
    info = await client.get_market_info()
    await client.connect()
    await until(lambda: events.status_now is MarketStatus.OPEN, what="stream synced")
    for i in range(5):
        ex.post_limit(maker, PAIR, "ASK", "0.1", f"{1000200 + i * 100}.00")
        ex.post_limit(maker, PAIR, "BID", "0.2", f"{999800 - i * 100}.00")
    ex.post_limit(taker, PAIR, "BID", "0.6", "1000200.00")
    ex.post_market(taker, PAIR, "SELL", base_volume="0.3")
    await until(lambda: events.book.sequence == ex.markets[PAIR].sequence, what="all updates")
    await until(lambda: len(events.trades) >= 3, what="trades")
    final, trades = book_state(events.book), list(events.trades)
    await client.close()
    kinds = [kind for kind, _, _ in tap.inputs]
    assert kinds[0] == "open" and kinds.count("ws") > 10

    replayed = RecordingEvents(PAIR)
    parser = LunoClient.replay_parser(client.context, replayed, info)
    for i, (kind, data, _) in enumerate(tap.inputs):
        assert book_state(replayed.book) == tap.books[i], f"before input {i} ({kind})"
        parser.feed(kind, data)
    assert book_state(replayed.book) == final
    assert replayed.status_now is MarketStatus.OPEN
    assert [(t.price, t.quantity, t.taker_side) for t in replayed.trades] == [
        (t.price, t.quantity, t.taker_side) for t in trades
    ]
