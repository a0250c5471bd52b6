"""ScriptedAlgo: the test algo that places what a test hands it (or what `opening` picks from the first open
book) and records every order update; ScriptedAlgo.running finds it by strategy name."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from ..contracts.algo import StrategyMarket, TradingAlgo
from ..model import MarketStatus, Order, OrderRequest
from .waiting import until


class ScriptedAlgo(TradingAlgo):
    """Places the orders queued in `requests` on the next book update of an OPEN market (any status when
    `any_status`), and once the orders `opening` makes from the book. `placed`: what place_order
    returned; `updates`: every order update; `books`: the book updates seen; `statuses`: every market
    status it was told of."""

    #: the running scripted algos by strategy name
    running: ClassVar[dict[str, ScriptedAlgo]] = {}
    #: place on any book or market-status callback, whatever the market's status (to see the refusals)
    any_status: ClassVar[bool] = False

    async def on_start(self) -> None:
        self.requests: list[OrderRequest] = []
        self.placed: list[Order] = []
        self.updates: list[Order] = []
        self.books = 0
        self.statuses: list[MarketStatus] = []
        self._opened = False
        ScriptedAlgo.running[self.name] = self

    def opening(self, market: StrategyMarket) -> list[OrderRequest]:
        """The orders to place once, on the first book of an open market they can be made from (none yet: an
        empty list). A subclass's choice; none here."""
        return []

    async def _next(self, market: StrategyMarket) -> None:
        if not (self.any_status or market.status is MarketStatus.OPEN):
            return
        if not self._opened and market.status is MarketStatus.OPEN:
            opening = self.opening(market)
            self._opened = bool(opening)
            self.requests.extend(opening)
        while self.requests:
            self.placed.append(await market.place_order(self.requests.pop(0)))

    async def on_order_book(self, market: StrategyMarket) -> None:
        self.books += 1
        await self._next(market)

    async def on_market_status(self, market: StrategyMarket, status: MarketStatus) -> None:
        self.statuses.append(status)
        if self.any_status:
            await self._next(market)

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        self.updates.append(order)

    def updates_of(self, order: Order) -> list[Order]:
        return [u for u in self.updates if u.client_order_id == order.client_order_id]

    async def place(self, request: OrderRequest, nudge: Callable[[], object], timeout: float = 5.0) -> Order:
        """Queue `request`, call `nudge` (something that makes the venue send a book update) and return
        what place_order gave back."""
        count = len(self.placed)
        self.requests.append(request)
        nudge()
        await until(lambda: len(self.placed) > count, timeout, "order placed")
        return self.placed[count]


class AnyStatusAlgo(ScriptedAlgo):
    """A ScriptedAlgo that also places while the market is closed or unsynced."""

    any_status = True
