"""Fixtures for the Luno client tests: a started simulator, a recording MarketEvents, client factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any

import pytest
from exchanges.luno import LunoSimulator
from moonship_luno.client import LunoClient, LunoSettings

from moonship_core import (
    Balance,
    Candle,
    ClientContext,
    MarketConfig,
    MarketStatus,
    Order,
    OrderBook,
    Ticker,
    Trade,
)
from moonship_core.plugins import Plugins

KEY, SECRET = "sim-luno-keyid", "sim-luno-secret"
PAIR = "XBTZAR"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[LunoSimulator]:
    async with LunoSimulator(keepalive=0.2, replay_window=2.0) as simulator:
        simulator.exchange.add_market(PAIR, "XBT", "ZAR", price_scale=2, volume_scale=4)
        simulator.exchange.add_user(KEY, SECRET, {"XBT": "2", "ZAR": "2000000"})
        yield simulator


class Events:
    """A MarketEvents that records what the client pushes (the real Market is used elsewhere)."""

    def __init__(self, symbol: str = PAIR) -> None:
        self.book = OrderBook(symbol, price_decimals=8)
        self.book_changes = 0
        self.trades: list[Trade] = []
        self.statuses: list[tuple[MarketStatus, str]] = []
        self.orders: list[Order] = []
        self.balance_updates: list[Balance] = []

    def book_changed(self) -> None:
        self.book_changes += 1

    def trade(self, trade: Trade) -> None:
        self.trades.append(trade)

    def ticker(self, ticker: Ticker) -> None:
        """Luno's streams carry no ticker."""

    def candle(self, candle: Candle) -> None:
        """Luno's streams carry no candles."""

    def status(self, status: MarketStatus, reason: str = "") -> None:
        self.statuses.append((status, reason))

    def order_update(self, order: Order) -> None:
        self.orders.append(order)

    def balances(self, balances: Sequence[Balance]) -> None:
        self.balance_updates.extend(balances)

    @property
    def status_now(self) -> MarketStatus | None:
        return self.statuses[-1][0] if self.statuses else None

    def updates_of(self, client_order_id: str) -> list[Order]:
        return [o for o in self.orders if o.client_order_id == client_order_id]


def settings_for(sim: LunoSimulator, **overrides: Any) -> LunoSettings:
    values: dict[str, Any] = {
        "api_key": KEY,
        "api_secret": SECRET,
        "rest_url": sim.rest_url,
        "ws_url": sim.ws_url,
        "stale_timeout": 3.0,
        "replay_window": 2.0,
        "request_timeout": 5.0,
    }
    return LunoSettings(**(values | overrides))


def make_client(
    sim: LunoSimulator,
    events: Events | None = None,
    *,
    pair: str = PAIR,
    shared: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    **overrides: Any,
) -> tuple[LunoClient, Events]:
    events = events or Events(pair)
    context = ClientContext(
        market_name=pair.lower(),
        config=MarketConfig.model_validate({"client": "luno", "symbol": pair, **(extra or {})}),
        settings=settings_for(sim, **overrides),
        resolve_client=partial(Plugins.load(entry_points=False).resolve, "market_clients"),
        shared=shared if shared is not None else {},
    )
    return LunoClient(context, events), events


async def until(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait for `check()` to hold (no bare sleeps as synchronisation)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.01)
