"""The simulator is Binance-faithful: ccxt's binance (a client nobody here wrote), pointed at its URLs,
loads markets, reads the book and trades, and places, queries and cancels signed orders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

ccxt = pytest.importorskip("ccxt.async_support")
errors = pytest.importorskip("ccxt.base.errors")

from exchanges.binance import KEY, SECRET, BinanceSim  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture
async def exchange(sim: BinanceSim) -> AsyncIterator[Any]:
    client = ccxt.binance(
        {
            "apiKey": KEY,
            "secret": SECRET,
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
        }
    )
    for name in list(client.urls["api"]):
        if name in ("public", "private"):
            client.urls["api"][name] = f"{sim.rest_url}/api/v3"
    yield client
    await client.close()


async def test_ccxt_market_data(sim: BinanceSim, exchange: Any) -> None:
    sim.exchange.take("BTCUSDT", "BUY", "0.5")
    markets = await exchange.load_markets()
    btc = markets["BTC/USDT"]
    assert (
        btc["id"] == "BTCUSDT" and btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 1e-05
    )
    assert btc["limits"]["cost"]["min"] == 5.0 and btc["limits"]["amount"]["min"] == 1e-05
    book = await exchange.fetch_order_book("BTC/USDT", 5)
    assert book["bids"][0] == [29999.0, 1.0] and book["asks"][0] == [30001.0, 0.5]
    assert book["nonce"] == sim.exchange.symbols["BTCUSDT"].update_id
    (trade,) = await exchange.fetch_trades("BTC/USDT")
    assert (trade["price"], trade["amount"], trade["side"]) == (30001.0, 0.5, "buy")
    ticker = await exchange.fetch_ticker("BTC/USDT")
    assert ticker["last"] == 30001.0 and ticker["bid"] == 29999.0


async def test_ccxt_signed_orders(sim: BinanceSim, exchange: Any) -> None:
    await exchange.load_markets()
    balance = await exchange.fetch_balance()
    assert balance["BTC"]["free"] == 10.0 and balance["USDT"]["total"] == 100000.0
    order = await exchange.create_order("BTC/USDT", "limit", "buy", 0.1, 29000)
    assert order["status"] == "open" and order["clientOrderId"]
    fetched = await exchange.fetch_order(order["id"], "BTC/USDT")
    assert fetched["status"] == "open" and fetched["amount"] == 0.1
    assert [o["id"] for o in await exchange.fetch_open_orders("BTC/USDT")] == [order["id"]]
    cancelled = await exchange.cancel_order(order["id"], "BTC/USDT")
    assert cancelled["status"] == "canceled"
    taken = await exchange.create_order("BTC/USDT", "market", "buy", 0.5)
    assert taken["status"] == "closed" and taken["filled"] == 0.5 and taken["average"] == 30001.0
    assert taken["fee"]["currency"] == "BTC"
    (mine,) = await exchange.fetch_my_trades("BTC/USDT")
    assert mine["order"] == taken["id"] and mine["fee"]["cost"] == 0.0005


async def test_ccxt_maps_the_simulators_errors(sim: BinanceSim, exchange: Any) -> None:
    await exchange.load_markets()
    with pytest.raises(errors.InsufficientFunds):
        await exchange.create_order("BTC/USDT", "limit", "buy", 5, 29000)
    with pytest.raises(errors.InvalidOrder):
        await exchange.create_order("BTC/USDT", "limit", "sell", 1, 29999, {"postOnly": True})
    sent = [p for m, path, p in sim.requests if m == "POST" and path == "/api/v3/order"][-1]
    assert sent["type"] == "LIMIT_MAKER" and "timeInForce" not in sent
    with pytest.raises(errors.OrderNotFound):
        await exchange.cancel_order("424242", "BTC/USDT")
    exchange.secret = "wrong"
    with pytest.raises(errors.AuthenticationError):
        await exchange.fetch_balance()
