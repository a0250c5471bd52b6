"""Market info, ticker, trades and the order book over the simulator's REST and combined stream."""

from __future__ import annotations

from decimal import Decimal

import pytest
from exchanges.binance import BinanceSim, SymbolSpec

from moonship_core import MarketStatus, Side
from moonship_core.testing import until

from .conftest import fast, make_client

pytestmark = pytest.mark.anyio
D = Decimal


async def test_market_info_from_exchange_info_filters(sim: BinanceSim) -> None:
    client, _ = make_client(fast(sim))
    info = await client.get_market_info()
    assert (info.symbol, info.base_asset, info.quote_asset) == ("BTCUSDT", "BTC", "USDT")
    assert info.tick_size == D("0.01") and info.lot_size == D("0.00001")
    assert info.min_quantity == D("0.00001") and info.min_notional == D("5")
    assert info.status is MarketStatus.OPEN
    await client.close()


async def test_halted_symbol_is_closed(sim: BinanceSim) -> None:
    sim.exchange.symbols["ETHUSDT"].spec.status = "HALT"
    client, _ = make_client(fast(sim), "ETHUSDT")
    assert (await client.get_market_info()).status is MarketStatus.CLOSED


async def test_ticker_and_recent_trades(sim: BinanceSim) -> None:
    sim.exchange.take("BTCUSDT", "BUY", "0.5")
    sim.exchange.take("BTCUSDT", "SELL", "0.25")
    client, _ = make_client(fast(sim))
    ticker = await client.get_ticker()
    assert (ticker.bid, ticker.ask, ticker.last) == (D("29999"), D("30001"), D("29999"))
    trades = await client.get_recent_trades(10)
    assert [(t.price, t.quantity, t.taker_side) for t in trades] == [
        (D("30001"), D("0.5"), Side.BUY),
        (D("29999"), D("0.25"), Side.SELL),
    ]
    await client.close()


async def test_market_data_needs_no_keys(sim: BinanceSim) -> None:
    settings = fast(sim)
    del settings["api_key"], settings["api_secret"]
    client, events = make_client(settings)
    await client.get_market_info()
    await client.connect()
    await until(lambda: events.status_now is MarketStatus.OPEN, what="book synced")
    assert events.book.best_bid == D("29999")
    await client.close()


async def test_book_syncs_from_snapshot_and_follows_diffs_and_trades(sim: BinanceSim) -> None:
    client, events = make_client(fast(sim))
    await client.get_market_info()
    await client.connect()
    sim.exchange.set_level("BTCUSDT", "a", "30000.50", "2")  # the first diff triggers the snapshot
    await until(lambda: events.status_now is MarketStatus.OPEN, what="book synced")
    assert events.book.best_ask == D("30000.50")
    sim.exchange.take("BTCUSDT", "BUY", "2.5")  # takes 30000.50 and half of 30001
    sim.exchange.set_level("BTCUSDT", "b", "29999", "0")
    await until(lambda: events.book.best_bid == D("29998") and events.book.best_ask == D("30001"))
    assert events.book.quantity_at(Side.SELL, D("30001")) == D("0.5")
    assert events.book.sequence == sim.exchange.symbols["BTCUSDT"].update_id
    await until(lambda: len(events.trades) == 2)
    assert [(t.price, t.taker_side) for t in events.trades] == [
        (D("30000.50"), Side.BUY),
        (D("30001"), Side.BUY),
    ]
    assert_book_matches(sim, events)
    await client.close()
    assert events.status_now is MarketStatus.CLOSED


def assert_book_matches(sim: BinanceSim, events: object, symbol: str = "BTCUSDT") -> None:
    state = sim.exchange.symbols[symbol]
    book = events.book  # type: ignore[attr-defined]
    assert [p for p, _ in book.levels(Side.BUY)] == state.bids.prices()
    assert [p for p, _ in book.levels(Side.SELL)] == state.asks.prices()
    assert all(q == state.bids.quantity(p) for p, q in book.levels(Side.BUY))


async def test_one_websocket_carries_every_market(sim: BinanceSim) -> None:
    shared: dict[str, object] = {}
    btc, btc_events = make_client(fast(sim), shared=shared)
    eth, eth_events = make_client(fast(sim), "ETHUSDT", shared=shared, name="eth")
    sim.exchange.set_level("ETHUSDT", "b", "2000", "3")
    for client in (btc, eth):
        await client.get_market_info()
        await client.connect()
    sim.exchange.set_level("BTCUSDT", "b", "29999.5", "1")
    sim.exchange.set_level("ETHUSDT", "a", "2001", "4")
    await until(
        lambda: btc_events.status_now is MarketStatus.OPEN and eth_events.status_now is MarketStatus.OPEN
    )
    assert eth_events.book.best_bid == D("2000") and eth_events.book.best_ask == D("2001")
    assert sim.stream_connects == 1
    (conn,) = [c for c in sim.conns if c.kind == "stream"]
    assert conn.streams == {"btcusdt@depth@100ms", "btcusdt@trade", "ethusdt@depth@100ms", "ethusdt@trade"}
    await eth.close()
    await until(lambda: "ethusdt@trade" not in conn.streams, what="unsubscribe")
    await btc.close()
    await until(lambda: not sim.conns, what="socket closed after the last market")


async def test_snapshot_older_than_the_stream_is_redone(sim: BinanceSim) -> None:
    """Binance serves snapshots from a cache that can lag the stream: the client must refetch."""
    client, events = make_client(fast(sim))
    original = sim.exchange.symbols["BTCUSDT"].depth
    stale = {"served": 0}

    def lagging(limit: int) -> dict[str, object]:
        snapshot = original(limit)
        if not stale["served"]:
            stale["served"] = 1
            snapshot["lastUpdateId"] = int(snapshot["lastUpdateId"]) - 50  # type: ignore[call-overload]
        return snapshot

    sim.exchange.symbols["BTCUSDT"].depth = lagging  # type: ignore[method-assign]
    await client.get_market_info()
    await client.connect()
    await until(lambda: sim.depth_requests == 1)
    sim.exchange.set_level("BTCUSDT", "a", "30000.50", "2")  # its diff does not follow the stale snapshot
    await until(lambda: events.book.best_ask == D("30000.50") and events.status_now is MarketStatus.OPEN)
    assert sim.depth_requests == 2
    assert events.book.sequence == sim.exchange.symbols["BTCUSDT"].update_id
    assert_book_matches(sim, events)
    await client.close()


async def test_spec_symbols_fixture_is_binance_like() -> None:
    spec = SymbolSpec("BTCUSDT", "BTC", "USDT").to_json()
    assert {f["filterType"] for f in spec["filters"]} >= {
        "PRICE_FILTER",
        "LOT_SIZE",
        "MARKET_LOT_SIZE",
        "NOTIONAL",
    }
