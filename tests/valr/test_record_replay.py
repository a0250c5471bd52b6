"""Recording a VALR market from the simulator and replaying it through the plugin's own MarketFeed: the
replayed book equals the live market's before every recorded input, and at the end."""

from __future__ import annotations

import pytest
from exchanges.valr import Participants
from moonship_valr.client import ValrClient

from moonship_core import MarketStatus
from moonship_core.testing import BookTap, RecordingEvents, book_state, until

from .harness import D, book_levels, make_market, sim_levels, venue

pytestmark = pytest.mark.anyio


async def test_the_replayed_book_equals_the_live_book_at_every_input() -> None:
    async with venue() as (sim, server):
        house = Participants(sim.exchange, "BTCZAR", mid=D(1_000_000), rate=200)
        house.seed_book()
        market, rec = make_market(server)
        client = market.client
        assert isinstance(client, ValrClient)
        tap = BookTap(lambda: market.book)
        client.feed.recorder = tap
        await market.open()
        try:
            await until(lambda: market.status is MarketStatus.OPEN, what="book in sync")
            async with house:
                await until(lambda: house.actions > 100, what="activity")
            await until(lambda: book_levels(market) == sim_levels(sim), what="books equal")
            final, trades = book_state(market.book), list(rec.trades)
            info = market.info
        finally:
            client.feed.recorder = None
            await market.close()
    assert info is not None and len(tap.inputs) > 20

    replayed = RecordingEvents("BTCZAR")
    parser = ValrClient.replay_parser(client.context, replayed, info)
    for i, (kind, data, _) in enumerate(tap.inputs):
        assert book_state(replayed.book) == tap.books[i], f"before input {i} ({kind})"
        parser.feed(kind, data)
    assert book_state(replayed.book) == final
    assert replayed.status_now is MarketStatus.OPEN
    assert [(t.id, t.price, t.quantity) for t in replayed.trades] == [
        (t.id, t.price, t.quantity) for t in trades
    ]
