"""Test harness: a simulated VALR on loopback and real core Markets served by ValrClient."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from typing import Any, Literal

from exchanges.valr import SimServer, ValrSimulator
from moonship_valr.auth import Signer
from moonship_valr.client import ValrClient, ValrSettings

from moonship_core import (
    ClientContext,
    Clock,
    LiveClock,
    MarketStatus,
    Order,
    ServerClock,
    Sessions,
    Ticker,
    Trade,
)
from moonship_core.config import MarketConfig
from moonship_core.plugins import Plugins
from moonship_core.stores.memory import MemoryJournal
from moonship_core.trading.market import Market
from moonship_core.trading.orders import OrderManager
from moonship_core.trading.portfolio import Portfolio

D = Decimal
API_KEY = "4f5bdd0b1b4ec0e4a3e0b7b1f1d6d1c8e0a9d0c2b6f7a8e9d0c1b2a3f4e5d6c7"
SECRET = "sim-valr-secret-0001"


#: the strategy name the recorder owns its orders as
OWNER = "recorder"


class Recorder:
    """A strategy-side subscriber of a Market: records what the market publishes."""

    def __init__(self) -> None:
        self.books = 0
        self.orders: list[Order] = []
        self.trades: list[Trade] = []
        self.tickers: list[Ticker] = []
        self.statuses: list[MarketStatus] = []

    def notify_book(self, market: Market) -> None:
        self.books += 1

    def notify(self, kind: str, market: Market, payload: Any) -> None:
        if kind == "order":
            self.orders.append(payload)
        elif kind == "trade":
            self.trades.append(payload)
        elif kind == "ticker":
            self.tickers.append(payload)
        elif kind == "status":
            self.statuses.append(payload)


async def _no_time_source() -> int:
    raise AssertionError("this signer's clock is set by the test, never synced")


def local_signer(
    offset_ms: int = 0,
    *,
    key: str = API_KEY,
    secret: str = SECRET,
    sub_account: str = "",
    clock: Clock | None = None,
) -> Signer:
    """A signer stamping with `clock` (the local one) + `offset_ms` (`signer.server_time.offset_ms`)."""
    server_time = ServerClock(_no_time_source, clock)
    server_time.offset_ms = offset_ms
    return Signer(key, secret, server_time, sub_account)


@asynccontextmanager
async def venue(funds: dict[str, str] | None = None) -> AsyncIterator[tuple[ValrSimulator, SimServer]]:
    """A simulated VALR with our API key funded."""
    sim = ValrSimulator()
    sim.add_key(API_KEY, SECRET)
    for currency, amount in (funds or {"ZAR": "1000000", "BTC": "10"}).items():
        sim.fund(API_KEY, currency, amount)
    async with SimServer(sim) as server:
        yield sim, server


def settings_for(server: SimServer, **overrides: Any) -> ValrSettings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "api_secret": SECRET,
        "rest_url": server.rest_url,
        "ws_url": server.ws_url,
        "fill_wait": 0.3,
        "cancel_wait": 1.0,
        "reconnect_max_delay": 0.5,
    }
    values.update(overrides)
    return ValrSettings.model_validate({k: v for k, v in values.items() if v is not None})


def make_market(
    server: SimServer,
    sessions: Sessions | None = None,
    *,
    name: str = "btc",
    symbol: str = "BTCZAR",
    extra: dict[str, Any] | None = None,
    unknown_orders: Literal["cancel", "adopt", "ignore"] = "cancel",
    **settings: Any,
) -> tuple[Market, Recorder]:
    """A core Market over ValrClient pointed at the simulator, with a recording subscriber and an order
    manager of its own (`unknown_orders`: what it does with the open orders of another process); markets
    given the same `sessions` share one ValrSession, as in an engine."""
    config = MarketConfig.model_validate({"client": "valr", "symbol": symbol, **(extra or {})})
    context = ClientContext(
        name,
        config,
        settings_for(server, **settings),
        partial(Plugins.load(entry_points=False).resolve, "market_clients"),
        sessions=sessions if sessions is not None else Sessions(),
        logger=logging.getLogger(f"moonship.market.{name}"),
    )
    orders = OrderManager(MemoryJournal(), Portfolio(), LiveClock(), unknown_orders=unknown_orders)
    market = Market(name, config, ValrClient, context, orders)
    recorder = Recorder()
    market.subscribe(recorder)
    market.orders.attach(OWNER, recorder)
    return market, recorder


def client_of(market: Market) -> ValrClient:
    client = market.client
    assert isinstance(client, ValrClient)
    return client


def book_levels(market: Market) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    from moonship_core import Side

    return list(market.book.levels(Side.BUY)), list(market.book.levels(Side.SELL))


def sim_levels(sim: ValrSimulator, symbol: str = "BTCZAR") -> tuple[list[tuple[Decimal, Decimal]], ...]:
    book = sim.exchange.books[symbol]
    return (
        [(p, q) for p, q, _ in book.bids.aggregated(40)],
        [(p, q) for p, q, _ in book.asks.aggregated(40)],
    )
