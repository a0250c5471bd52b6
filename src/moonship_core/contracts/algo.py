"""TradingAlgo: the contract every algorithm plugin implements, and what it sees of the framework: its
AlgoContext and each market as a StrategyMarket."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from ..book import OrderBook
from ..clock import Clock
from ..model import (
    Balance,
    Candle,
    MarketInfo,
    MarketStatus,
    Order,
    OrderRequest,
    Ticker,
    Trade,
)
from ..orderlevel import OrderLevelBook


class NoSettings(BaseModel):
    """Settings of an algo that declares none: extra properties are refused, so typos surface."""

    model_config = ConfigDict(extra="forbid")


class PositionView(Protocol):
    """A strategy's position in one market and the P/L of its fills (average cost, fees included)."""

    @property
    def quantity(self) -> Decimal:
        """Signed base quantity: positive long, negative short."""
        ...

    @property
    def average_cost(self) -> Decimal: ...

    @property
    def realized(self) -> Decimal:
        """Realised profit in the quote asset, fees deducted."""
        ...

    @property
    def fees(self) -> Mapping[str, Decimal]:
        """Fees paid, by asset."""
        ...

    def unrealized(self, mark: Decimal) -> Decimal:
        """Profit the open position would realise at `mark`."""
        ...


class StrategyMarket(Protocol):
    """A market as one strategy sees it: orders placed here are tracked as that strategy's."""

    @property
    def name(self) -> str: ...

    @property
    def symbol(self) -> str: ...

    @property
    def book(self) -> OrderBook: ...

    @property
    def order_level_book(self) -> OrderLevelBook | None:
        """The individual orders behind `book`, where the venue publishes them (Luno); None elsewhere."""
        ...

    @property
    def info(self) -> MarketInfo | None: ...

    @property
    def status(self) -> MarketStatus: ...

    @property
    def ticker(self) -> Ticker: ...

    @property
    def last_price(self) -> Decimal | None: ...

    @property
    def trades(self) -> deque[Trade]:
        """Recent public trades, oldest first."""
        ...

    @property
    def candles(self) -> deque[Candle]: ...

    @property
    def balances(self) -> Mapping[str, Balance]: ...

    @property
    def open_orders(self) -> list[Order]:
        """This strategy's live orders in this market."""
        ...

    @property
    def position(self) -> PositionView:
        """This strategy's position and P/L in this market."""
        ...

    async def place_order(self, request: OrderRequest) -> Order: ...

    async def cancel_order(self, order: Order) -> Order: ...

    async def get_order(self, order: Order) -> Order: ...

    async def get_balances(self) -> dict[str, Balance]: ...


@dataclass(frozen=True)
class AlgoContext:
    """What the framework hands an algo: its strategy's identity, markets, settings and services."""

    #: the strategy's name
    name: str
    #: the engine that runs it
    engine: str
    #: the strategy's markets by name, in configured order
    markets: Mapping[str, StrategyMarket]
    #: the validated settings (an instance of the algo's settings_model)
    settings: BaseModel
    clock: Clock
    logger: logging.Logger
    #: adds fields to the strategy's published state
    publish: Callable[[dict[str, Any]], None]
    #: stops the strategy once the current callback returns
    request_stop: Callable[[str], None]


class TradingAlgo:
    """Base class of algorithms. Callbacks run on the strategy's own task, one at a time; a callback that
    raises stops the strategy (with the error as the reason). Book updates are conflated: `on_order_book`
    sees the latest book, never a backlog."""

    #: the algo's properties (the strategy's extra config keys), validated into `self.settings`
    settings_model: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, context: AlgoContext) -> None:
        self.context = context
        #: the strategy's name
        self.name = context.name
        self.settings = context.settings
        self.markets = context.markets
        #: the strategy's first market
        self.market: StrategyMarket = next(iter(self.markets.values()))
        self.clock = context.clock
        self.logger = context.logger

    async def on_start(self) -> None:
        """The strategy started: markets are open."""

    async def on_stop(self) -> None:
        """The strategy is stopping (cancel orders here if the algo wants to)."""

    async def on_order_book(self, market: StrategyMarket) -> None:
        """The market's book changed (conflated)."""

    async def on_trade(self, market: StrategyMarket, trade: Trade) -> None:
        """A public trade."""

    async def on_ticker(self, market: StrategyMarket, ticker: Ticker) -> None: ...

    async def on_candle(self, market: StrategyMarket, candle: Candle) -> None:
        """A candle closed."""

    async def on_market_status(self, market: StrategyMarket, status: MarketStatus) -> None:
        """The feed went in or out of sync, or the exchange changed the market's status."""

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        """One of this strategy's orders changed (fills, cancel, expiry, rejection)."""

    def publish(self, **fields: Any) -> None:
        """Publish extra runtime fields in this strategy's StrategyInfo (shared cache, API, monitor)."""
        self.context.publish(fields)

    def stop(self, reason: str) -> None:
        """Ask the framework to stop this strategy once the current callback returns."""
        self.context.request_stop(reason)
