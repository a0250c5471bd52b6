"""Fixtures: a running Binance simulator, and clients wired to recording market events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any

import pytest
from exchanges.binance import BinanceSim
from moonship_binance.client import BinanceClient

from moonship_core import Balance, Candle, ClientContext, MarketStatus, Order, OrderBook, Ticker, Trade
from moonship_core.config import MarketConfig
from moonship_core.plugins import Plugins


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim() as running:
        seed_book(running)
        yield running


def seed_book(sim: BinanceSim, symbol: str = "BTCUSDT") -> None:
    """Anonymous liquidity: bids 29990..29999, asks 30001..30010, 1 BTC each."""
    for i in range(1, 11):
        sim.exchange.set_level(symbol, "b", f"{30000 - i}.00", "1")
        sim.exchange.set_level(symbol, "a", f"{30000 + i}.00", "1")


class Events:
    """MarketEvents that record everything a client pushes."""

    def __init__(self, symbol: str) -> None:
        self.book = OrderBook(symbol, price_decimals=8)
        self.book_changes = 0
        self.statuses: list[tuple[MarketStatus, str]] = []
        self.trades: list[Trade] = []
        self.tickers: list[Ticker] = []
        self.orders: list[Order] = []
        self.balance_events: list[list[Balance]] = []

    @property
    def status_now(self) -> MarketStatus | None:
        return self.statuses[-1][0] if self.statuses else None

    def book_changed(self) -> None:
        self.book_changes += 1

    def trade(self, trade: Trade) -> None:
        self.trades.append(trade)

    def ticker(self, ticker: Ticker) -> None:
        self.tickers.append(ticker)

    def candle(self, candle: Candle) -> None:
        pass

    def status(self, status: MarketStatus, reason: str = "") -> None:
        self.statuses.append((status, reason))

    def order_update(self, order: Order) -> None:
        self.orders.append(order)

    def balances(self, balances: Sequence[Balance]) -> None:
        self.balance_events.append(list(balances))

    def latest(self, client_order_id: str) -> Order | None:
        for order in reversed(self.orders):
            if order.client_order_id == client_order_id:
                return order
        return None


def make_client(
    settings: dict[str, Any],
    symbol: str = "BTCUSDT",
    *,
    shared: dict[str, Any] | None = None,
    market: dict[str, Any] | None = None,
    name: str = "btc",
) -> tuple[BinanceClient, Events]:
    events = Events(symbol)
    config = MarketConfig.model_validate({"client": "binance", "symbol": symbol, **(market or {})})
    context = ClientContext(
        name,
        config,
        BinanceClient.settings_model.model_validate(settings),  # type: ignore[union-attr]
        partial(Plugins.load(entry_points=False).resolve, "market_clients"),
        shared=shared if shared is not None else {},
    )
    return BinanceClient(context, events), events


def fast(sim: BinanceSim, **extra: Any) -> dict[str, Any]:
    """Settings for tests: the simulator's URLs and keys, short timeouts."""
    return sim.settings(**{"request_timeout": 2.0, "max_reconnect_delay": 0.3, **extra})


async def until(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait for `check()` to be true (polling; no fixed sleeps)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.005)
