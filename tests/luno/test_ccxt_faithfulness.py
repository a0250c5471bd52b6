"""The simulator is Luno-faithful: ccxt's `luno` (a client nobody here wrote) works against it unchanged,
with only its API URLs pointed at the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from exchanges.luno import LunoSimulator, Participants

from .conftest import KEY, PAIR, SECRET

ccxt_async = pytest.importorskip("ccxt.async_support")

pytestmark = pytest.mark.anyio
D = Decimal


@pytest.fixture
async def luno(sim: LunoSimulator) -> AsyncIterator[Any]:
    exchange = ccxt_async.luno({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False})
    base = sim.rest_url
    exchange.urls["api"] = {
        "public": f"{base}/api",
        "private": f"{base}/api",
        "exchange": f"{base}/api/exchange",
        "exchangePrivate": f"{base}/api/exchange",
    }
    try:
        yield exchange
    finally:
        await exchange.close()


def num(value: Any) -> Decimal:
    return D(str(value))


async def test_ccxt_luno_loads_markets_reads_data_and_trades(sim: LunoSimulator, luno: Any) -> None:
    crowd = Participants(sim.exchange, PAIR, seed=5)
    for _ in range(200):
        crowd.step()
    market = sim.exchange.markets[PAIR]

    markets = await luno.load_markets()
    btc = markets["BTC/ZAR"]  # ccxt maps Luno's XBT to BTC
    assert btc["id"] == PAIR and btc["active"] is True
    assert num(btc["precision"]["price"]) == D("0.01") and num(btc["precision"]["amount"]) == D("0.0001")
    assert num(btc["limits"]["amount"]["min"]) == market.min_volume

    book = await luno.fetch_order_book("BTC/ZAR")  # the full book: one entry per order
    assert [(num(p), num(v)) for p, v in book["bids"]] == [
        (o.limit_price, o.remaining) for o in market.orders("BUY")
    ]
    assert [(num(p), num(v)) for p, v in book["asks"]] == [
        (o.limit_price, o.remaining) for o in market.orders("SELL")
    ]
    top = await luno.fetch_order_book("BTC/ZAR", limit=50)  # aggregated levels
    assert [(num(p), num(v)) for p, v in top["asks"]][:5] == market.levels("SELL")[:5]

    trades = await luno.fetch_trades("BTC/ZAR")
    newest = list(market.trades)[-len(trades):]
    assert sorted(int(t["id"]) for t in trades) == [t["sequence"] for t in newest]
    assert all(t["side"] in ("buy", "sell") and t["price"] > 0 for t in trades)

    ticker = await luno.fetch_ticker("BTC/ZAR")
    assert num(ticker["bid"]) == market.best("BUY") and num(ticker["ask"]) == market.best("SELL")

    balance = await luno.fetch_balance()
    assert num(balance["ZAR"]["total"]) == D("2000000") and num(balance["BTC"]["free"]) == D("2")

    price = market.best("BUY") - 1000  # rests below the market
    created = await luno.create_order("BTC/ZAR", "limit", "buy", 0.01, float(price))
    mine = sim.exchange.orders[created["id"]]
    assert (mine.side, mine.limit_volume, mine.limit_price) == ("BUY", D("0.01"), price)
    assert mine.status == "PENDING"
    balance = await luno.fetch_balance()
    assert num(balance["ZAR"]["used"]) == price * D("0.01")

    fetched = await luno.fetch_order(created["id"])
    assert fetched["status"] == "open" and fetched["side"] == "buy"
    assert num(fetched["amount"]) == D("0.01") and num(fetched["price"]) == price
    assert [o["id"] for o in await luno.fetch_open_orders("BTC/ZAR")] == [created["id"]]

    await luno.cancel_order(created["id"])
    assert mine.status == "COMPLETE" and mine.expired
    cancelled = await luno.fetch_order(created["id"])
    assert cancelled["info"]["state"] == "COMPLETE" and num(cancelled["filled"]) == 0

    bought = await luno.create_order("BTC/ZAR", "market", "buy", 1000)  # ccxt sends counter_volume
    fills = await luno.fetch_my_trades("BTC/ZAR")
    assert {t["order"] for t in fills} == {bought["id"]}
    assert sum(num(t["cost"]) for t in fills) <= D("1000")

    with pytest.raises(ccxt_async.InsufficientFunds):
        await luno.create_order("BTC/ZAR", "limit", "buy", 50, float(price))
    with pytest.raises(ccxt_async.OrderNotFound):
        await luno.fetch_order("BXNOSUCHORDER12")
