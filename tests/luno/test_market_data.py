"""Market info, ticker, trades and the order-level market stream against the simulator."""

from __future__ import annotations

from decimal import Decimal

import pytest
from exchanges.luno import LunoSimulator, Participants

from moonship_core import MarketStatus, Side
from moonship_core.testing import until

from .conftest import PAIR, make_client

pytestmark = pytest.mark.anyio
D = Decimal


def l2(book: object, side: Side) -> list[tuple[Decimal, Decimal]]:
    return list(book.levels(side))  # type: ignore[attr-defined]


async def test_market_info_ticker_and_recent_trades(sim: LunoSimulator) -> None:
    sim.exchange.add_market("ETHZAR", "ETH", "ZAR", price_scale=0, volume_scale=2, min_volume="0.01")
    crowd = Participants(sim.exchange, PAIR)
    for _ in range(200):
        crowd.step()
    client, _ = make_client(sim)
    info = await client.get_market_info()
    assert (info.symbol, info.base_asset, info.quote_asset) == (PAIR, "XBT", "ZAR")
    assert (info.tick_size, info.lot_size, info.min_quantity) == (D("0.01"), D("0.0001"), D("0.0005"))
    assert info.status is MarketStatus.OPEN
    ticker = await client.get_ticker()
    market = sim.exchange.markets[PAIR]
    assert (ticker.bid, ticker.ask) == (market.best("BUY"), market.best("SELL"))
    trades = await client.get_recent_trades(5)
    assert [t.id for t in trades] == [str(t["sequence"]) for t in list(market.trades)[-5:]]
    assert all(t.price == D(s["price"]) for t, s in zip(trades, list(market.trades)[-5:], strict=True))
    eth, _ = make_client(sim, pair="ETHZAR", shared=client.context.shared)
    assert (await eth.get_market_info()).tick_size == D("1")
    assert sim.stats["/api/exchange/1/markets"] == 1  # one markets call serves every Luno market
    await client.close()


async def test_post_only_and_suspended_markets_map_to_market_status(sim: LunoSimulator) -> None:
    sim.exchange.add_market("ETHZAR", "ETH", "ZAR")
    sim.exchange.markets["ETHZAR"].status = "POSTONLY"
    sim.exchange.add_market("XRPZAR", "XRP", "ZAR")
    sim.exchange.markets["XRPZAR"].status = "DISABLED"
    shared: dict[str, object] = {}
    statuses = [
        (await make_client(sim, pair=p, shared=shared)[0].get_market_info()).status
        for p in (PAIR, "ETHZAR", "XRPZAR")
    ]
    assert statuses == [MarketStatus.OPEN, MarketStatus.OPEN_POST_ONLY, MarketStatus.CLOSED]


async def test_stream_builds_the_l2_book_from_orders_and_reports_trades(sim: LunoSimulator) -> None:
    ex = sim.exchange
    maker = ex.add_user("maker", "m", {"XBT": "10", "ZAR": "100000000"})
    taker = ex.add_user("taker", "t", {"XBT": "10", "ZAR": "100000000"})
    ex.post_limit(maker, PAIR, "ASK", "0.5", "1000100.00")
    ex.post_limit(maker, PAIR, "ASK", "0.25", "1000100.00")
    ex.post_limit(maker, PAIR, "BID", "1", "999900.00")
    client, events = make_client(sim)
    await client.get_market_info()
    await client.connect()
    await until(lambda: events.status_now is MarketStatus.OPEN, what="stream synced")
    assert l2(events.book, Side.SELL) == [(D("1000100"), D("0.75"))]
    assert l2(events.book, Side.BUY) == [(D("999900"), D("1"))]
    olb = client.order_level_book
    assert olb is not None and len(olb) == 3

    # a taker buys through the first ask entirely and part of the second, then rests its remainder
    first_ask = olb.orders_at(Side.SELL, D("1000100"))[0].id
    ex.post_limit(taker, PAIR, "BID", "1", "1000100.00")
    await until(lambda: len(events.trades) == 2, what="two trades")
    assert [(t.price, t.quantity, t.taker_side) for t in events.trades] == [
        (D("1000100"), D("0.5"), Side.BUY),
        (D("1000100"), D("0.25"), Side.BUY),
    ]
    assert first_ask not in olb  # a maker filled by trades leaves the book without a delete
    assert l2(events.book, Side.SELL) == []
    assert l2(events.book, Side.BUY) == [(D("1000100"), D("0.25")), (D("999900"), D("1"))]

    # a seller hits the bid: the maker was a bid, so the taker sold
    ex.post_market(taker, PAIR, "SELL", base_volume="0.1")
    await until(lambda: len(events.trades) == 3, what="sell trade")
    assert events.trades[-1].taker_side is Side.SELL and events.trades[-1].quantity == D("0.1")
    assert events.book.quantity_at(Side.BUY, D("1000100")) == D("0.15")
    assert events.book.sequence == ex.markets[PAIR].sequence
    await client.close()
    assert events.status_now is MarketStatus.CLOSED
