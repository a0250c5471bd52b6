"""Prober: the test algo that places the orders a test hands it and records every order update, for engine
tests on every venue."""

from __future__ import annotations

from typing import ClassVar

from moonship_core import (
    MarketStatus,
    Order,
    OrderRequest,
    StrategyMarket,
    TradingAlgo,
    hookimpl,
)


class Prober(TradingAlgo):
    """Places the orders `requests` holds, one per book update of an OPEN market, and records what comes
    back (`placed`: what place_order returned; `updates`: every order update)."""

    #: the running probers by strategy name
    seen: ClassVar[dict[str, Prober]] = {}
    #: place on any book or market-status callback, whatever the market's status
    any_status: ClassVar[bool] = False

    async def on_start(self) -> None:
        self.requests: list[OrderRequest] = []
        self.placed: list[Order] = []
        self.updates: list[Order] = []
        Prober.seen[self.name] = self

    async def _next(self, market: StrategyMarket) -> None:
        if self.requests and (self.any_status or market.status is MarketStatus.OPEN):
            self.placed.append(await market.place_order(self.requests.pop(0)))

    async def on_order_book(self, market: StrategyMarket) -> None:
        await self._next(market)

    async def on_market_status(self, market: StrategyMarket, status: MarketStatus) -> None:
        if self.any_status:
            await self._next(market)

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        self.updates.append(order)


class AnyStatusProber(Prober):
    """A Prober that also places while the market is closed or unsynced (to see the refusals)."""

    any_status = True


class ProberPlugin:
    """Registers `algo` as the algo "prober"."""

    def __init__(self, algo: type[Prober] = Prober) -> None:
        self.algo = algo

    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"prober": self.algo}
