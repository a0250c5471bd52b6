"""TradingAlgo: the contract every algorithm plugin implements."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .book import OrderBook
from .model import (
    Balance,
    Candle,
    MarketInfo,
    MarketStatus,
    Order,
    OrderRequest,
    Ticker,
    Trade,
)
from .orderlevel import OrderLevelBook

if TYPE_CHECKING:
    from collections import deque

    from .market import Market
    from .strategy import Strategy


class NoSettings(BaseModel):
    """Settings of an algo that declares none: extra properties are refused, so typos surface."""

    model_config = ConfigDict(extra="forbid")


class StrategyMarket:
    """A market as one strategy sees it: orders placed here are tracked as that strategy's."""

    __slots__ = ("_market", "_owner")

    def __init__(self, market: Market, owner: Strategy) -> None:
        self._market = market
        self._owner = owner

    @property
    def name(self) -> str:
        return self._market.name

    @property
    def symbol(self) -> str:
        return self._market.symbol

    @property
    def book(self) -> OrderBook:
        return self._market.book

    @property
    def order_level_book(self) -> OrderLevelBook | None:
        """The individual orders behind `book`, where the venue publishes them (Luno); None elsewhere."""
        return self._market.client.order_level_book

    @property
    def info(self) -> MarketInfo | None:
        return self._market.info

    @property
    def status(self) -> MarketStatus:
        return self._market.status

    @property
    def ticker(self) -> Ticker:
        return self._market.ticker

    @property
    def last_price(self) -> Decimal | None:
        return self._market.last_price

    @property
    def trades(self) -> deque[Trade]:
        """Recent public trades, oldest first."""
        return self._market.trades

    @property
    def candles(self) -> deque[Candle]:
        return self._market.candles

    @property
    def balances(self) -> Mapping[str, Balance]:
        return self._market.balances

    @property
    def open_orders(self) -> list[Order]:
        """This strategy's live orders in this market."""
        return self._market.open_orders(self._owner.mailbox)

    async def place_order(self, request: OrderRequest) -> Order:
        return await self._market.place_order(request, self._owner.mailbox)

    async def cancel_order(self, order: Order) -> Order:
        return await self._market.cancel_order(order)

    async def get_order(self, order: Order) -> Order:
        return await self._market.get_order(order)

    async def get_balances(self) -> dict[str, Balance]:
        return await self._market.get_balances()

    def __repr__(self) -> str:
        return f"StrategyMarket({self.name})"


class TradingAlgo:
    """Base class of algorithms. Callbacks run on the strategy's own task, one at a time; a callback that
    raises stops the strategy (with the error as the reason). Book updates are conflated: `on_order_book`
    sees the latest book, never a backlog."""

    #: the algo's properties (the strategy's extra config keys), validated into `self.settings`
    settings_model: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, strategy: Strategy, settings: BaseModel) -> None:
        self.strategy = strategy
        self.settings = settings
        self.markets: dict[str, StrategyMarket] = {
            name: StrategyMarket(m, strategy) for name, m in strategy.markets.items()
        }
        #: the strategy's first market
        self.market: StrategyMarket = next(iter(self.markets.values()))
        self.logger = logging.getLogger(f"moonship.strategy.{strategy.name}")

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
        self.strategy.publish(fields)

    def stop(self, reason: str) -> None:
        """Ask the framework to stop this strategy once the current callback returns."""
        self.strategy.request_stop(reason)
