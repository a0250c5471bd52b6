"""Market info, ticker, trades and the trade socket's book against the simulated VALR over real sockets."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import httpx
import orjson
import pytest
from exchanges.valr import Participants, ValrSimulator, valr_signature
from moonship_valr.client import ValrSettings

from moonship_core import ConfigError, MarketStatus, Sessions, Side
from moonship_core.testing import until

from .harness import API_KEY, D, book_levels, client_of, make_market, sim_levels, venue

pytestmark = pytest.mark.anyio


def test_simulator_verifies_valrs_documented_sample_signature() -> None:
    secret = "4961b74efac86b25cce8fbe4c9811c4c7a787b7a5996660afcc2e287ad864363"
    assert valr_signature(secret, "1558014486185", "GET", "/v1/account/balances", b"", "") == (
        "9d52c181ed69460b49307b7891f04658e938b21181173844b5018b2fe783a6d4"
        "c62b8e67a03de4d099e7437ebfabe12c56233b73c6a0cc0f7ae87e05f6289928"
    )


def test_settings_defaults_and_url_validation() -> None:
    s = ValrSettings()
    assert (s.rest_url, s.ws_url) == ("https://api.valr.com", "wss://api.valr.com")
    assert ValrSettings(rest_url="http://127.0.0.1:8080/").rest_url == "http://127.0.0.1:8080"
    with pytest.raises(ValueError, match="without a path"):
        ValrSettings(rest_url="https://api.valr.com/v1")
    with pytest.raises(ValueError):
        ValrSettings(ws_url="https://api.valr.com")
    with pytest.raises(ValueError):
        ValrSettings(ping_interval=26)  # VALR drops sockets idle for 30 s


def test_settings_share_the_venue_key_names_and_accept_the_old_one(caplog: pytest.LogCaptureFixture) -> None:
    s = ValrSettings()
    assert (s.silence_timeout, s.ping_interval, s.reconnect_max_delay) == (10.0, 20.0, 30.0)
    with caplog.at_level(logging.WARNING, "moonship.config"):
        assert ValrSettings.model_validate({"stale_timeout": 3}).silence_timeout == 3
    assert "'stale_timeout' is deprecated: use 'silence_timeout'" in caplog.text


async def test_simulator_wire_shapes_match_the_reference() -> None:
    async with venue() as (sim, server):
        Participants(sim.exchange, "BTCZAR", mid=D(1_000_000)).seed_book(3)
        async with httpx.AsyncClient(base_url=server.rest_url) as http:
            book = (await http.get("/v1/public/BTCZAR/orderbook")).json()
            assert set(book) == {"Asks", "Bids", "LastChange", "SequenceNumber"}
            assert set(book["Asks"][0]) == {"side", "quantity", "price", "currencyPair", "orderCount"}
            assert book["Asks"][0]["side"] == "sell" and book["Bids"][0]["price"] == "999999"
            pair = (await http.get("/v1/public/pairs")).json()[0]
            assert (
                pair["tickSize"] == "1"
                and pair["baseDecimalPlaces"] == "8"
                and pair["minQuoteAmount"] == "10"
            )
            assert (await http.get("/v1/public/status")).json() == {"status": "online"}
            missing = await http.get("/v1/account/balances")
            assert missing.status_code == 403
            forged = await http.get(
                "/v1/account/balances",
                headers={"X-VALR-API-KEY": "nope", "X-VALR-SIGNATURE": "00", "X-VALR-TIMESTAMP": "1"},
            )
            assert forged.status_code == 401


async def test_market_info_ticker_and_recent_trades() -> None:
    async with venue() as (sim, server):
        house = Participants(sim.exchange, "BTCZAR", mid=D(1_000_000))
        house.seed_book(5)
        sim.exchange.place(house.account, "BTCZAR", "buy", kind="market", quantity=D("0.01"))
        sim.exchange.place(house.account, "BTCZAR", "sell", kind="market", quantity=D("0.02"))
        market, _ = make_market(server)
        client = client_of(market)
        info = await client.get_market_info()
        assert (info.base_asset, info.quote_asset) == ("BTC", "ZAR")
        assert (info.tick_size, info.lot_size, info.min_quantity, info.min_notional) == (
            D(1),
            D("1e-8"),
            D("0.0001"),
            D(10),
        )
        assert info.status is MarketStatus.OPEN
        ticker = await client.get_ticker()
        book = sim.exchange.books["BTCZAR"]
        assert (ticker.bid, ticker.ask) == (book.bids.best(), book.asks.best())
        assert ticker.last == sim.exchange.trades["BTCZAR"][-1].price
        trades = await client.get_recent_trades(10)
        wire = list(sim.exchange.trades["BTCZAR"])
        assert [t.id for t in trades] == [t.id for t in wire]  # VALR's own ids, oldest first
        assert trades[-1].taker_side is Side.SELL and trades[0].taker_side is Side.BUY
        sim.status = "read-only"
        client.session._pairs = None
        assert (await client.get_market_info()).status is MarketStatus.CLOSED
        unknown, _ = make_market(server, symbol="DOGEZAR")
        with pytest.raises(ConfigError, match="no pair DOGEZAR"):
            await unknown.client.get_market_info()
        await client.session.aclose()


async def test_book_trades_and_ticker_from_the_trade_socket() -> None:
    async with venue() as (sim, server):
        house = Participants(sim.exchange, "BTCZAR", mid=D(1_000_000), rate=200)
        house.seed_book()
        market, rec = make_market(server)
        await market.open()
        try:
            await until(lambda: market.status is MarketStatus.OPEN, what="book in sync")
            assert book_levels(market) == sim_levels(sim)
            # a level change shows as that level changing in the core's book
            version = market.book.version
            sim.exchange.place(
                house.account, "BTCZAR", "sell", kind="limit", quantity=D("1"), price=D(1_000_000)
            )
            await until(lambda: market.book.best_ask == D(1_000_000), what="new best ask")
            assert market.book.version > version
            assert market.book.quantity_at(Side.SELL, D(1_000_000)) == D(1)
            assert market.book.quantity_at(Side.SELL, D(1_000_001)) > 0  # untouched levels stay
            # a taker: NEW_TRADE with VALR's id and taker side, MARKET_SUMMARY_UPDATE as the ticker
            sim.exchange.place(house.account, "BTCZAR", "buy", kind="market", quantity=D("0.4"))
            await until(lambda: rec.trades and rec.tickers, what="trade and ticker")
            wire = sim.exchange.trades["BTCZAR"][-1]
            assert rec.trades[-1].id == wire.id and rec.trades[-1].taker_side is Side.BUY
            assert rec.trades[-1].price == D(1_000_000) and rec.trades[-1].quantity == D("0.4")
            await until(lambda: market.ticker.last == D(1_000_000), what="ticker")
            await until(lambda: market.book.quantity_at(Side.SELL, D(1_000_000)) == D("0.6"), what="level")
            # the book follows a busy feed exactly
            async with house:
                await until(lambda: house.actions > 200, what="activity")
            await until(lambda: book_levels(market) == sim_levels(sim), what="books equal")
        finally:
            await market.close()
        assert market.status is MarketStatus.CLOSED


async def test_all_markets_share_one_trade_and_one_account_socket() -> None:
    async with venue() as (sim, server):
        Participants(sim.exchange, "BTCZAR", mid=D(1_000_000)).seed_book(3)
        Participants(sim.exchange, "ETHZAR", mid=D(50_000)).seed_book(3)
        sessions = Sessions()
        btc, _ = make_market(server, sessions, name="btc", symbol="BTCZAR")
        eth, _ = make_market(server, sessions, name="eth", symbol="ETHZAR")
        await asyncio.gather(btc.open(), eth.open())
        try:
            await until(
                lambda: btc.status is MarketStatus.OPEN and eth.status is MarketStatus.OPEN, what="open"
            )
            assert sim.connections == {"trade": 1, "account": 1}
            assert len(sim.trade_conns) == 1 and len(sim.account_conns) == 1
            assert eth.book.best_bid == D(49_999) and btc.book.best_bid == D(999_999)
            assert sim.requests.count(("GET", "/v1/public/pairs")) == 1  # one metadata call for both
            limits = client_of(btc).rest.limits
            assert limits is client_of(eth).rest.limits  # one per engine
            limiter = limits.limiter(limits.pools[0], API_KEY)
            assert (limits.pools[0].name, limiter.limit) == ("key", 2000)  # per key, shared
            # the account socket's start-up reconciliation may still be calling: count once it is quiet
            used = -1
            while limiter.used != used:
                used = limiter.used
                await asyncio.sleep(0.2)
            await eth.client.get_balances()
            assert limiter.used == used + 1
            await btc.close()
            await until(
                lambda: sim.connections == {"trade": 1, "account": 1} and eth.book.best_ask, what="eth"
            )
            assert len(sim.trade_conns) == 1  # still serving eth
        finally:
            await btc.close()
            await eth.close()
        await until(lambda: not sim.trade_conns and not sim.account_conns, what="sockets closed")


async def test_unauthenticated_client_streams_market_data() -> None:
    async with venue() as (sim, server):
        Participants(sim.exchange, "BTCZAR", mid=D(1_000_000)).seed_book(3)
        market, _ = make_market(server, api_key="", api_secret="")
        assert client_of(market).rest.signer is None
        await market.open()
        try:
            await until(lambda: market.status is MarketStatus.OPEN, what="open")
            assert sim.connections == {"trade": 1, "account": 0}
            assert (await market.client.get_recent_trades()) == []
            assert ("GET", "/v1/public/BTCZAR/trades") in sim.requests
        finally:
            await market.close()


async def test_raw_trade_socket_subscription_replaces_pair_lists() -> None:
    """The simulator's SUBSCRIBE semantics: a full book on subscribe, later lists replace earlier ones."""
    import websockets

    async with venue() as (sim, server):
        Participants(sim.exchange, "BTCZAR", mid=D(1_000_000)).seed_book(2)
        Participants(sim.exchange, "ETHZAR", mid=D(50_000)).seed_book(2)
        async with websockets.connect(server.ws_url + "/ws/trade") as ws:
            sub = {
                "type": "SUBSCRIBE",
                "subscriptions": [{"event": "AGGREGATED_ORDERBOOK_UPDATE", "pairs": ["BTCZAR"]}],
            }
            await ws.send(orjson.dumps(sub).decode())
            first = orjson.loads(await ws.recv())
            assert first["type"] == "AGGREGATED_ORDERBOOK_UPDATE" and first["currencyPairSymbol"] == "BTCZAR"
            assert [level["price"] for level in first["data"]["Bids"]] == ["999999", "999998"]
            sub["subscriptions"][0]["pairs"] = ["ETHZAR"]
            await ws.send(orjson.dumps(sub).decode())
            second = orjson.loads(await ws.recv())
            assert second["currencyPairSymbol"] == "ETHZAR"
            await ws.send('{"type":"PING"}')
            assert orjson.loads(await ws.recv()) == {"type": "PONG"}


def test_decimal_wire_values_are_strings() -> None:
    sim = ValrSimulator()
    house = Participants(sim.exchange, "BTCZAR", mid=D(1_000_000))
    house.seed_book(1)
    wire = sim.exchange.books["BTCZAR"].wire()
    level = wire["Asks"][0]  # type: ignore[index]
    assert isinstance(level["quantity"], str) and Decimal(level["quantity"]) > 0
