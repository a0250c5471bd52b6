"""The contract suite's fixtures: each venue on its simulator, and an engine trading on it with a scripted
strategy "s" on market "m"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from moonship_core import MarketStatus, Order, OrderRequest
from moonship_core.testing import ScriptedAlgo, build_engine, started, until
from moonship_core.trading.engine import TradingEngine
from moonship_core.trading.market import Market

from .venues import VENUES, Venue


@pytest.fixture(params=list(VENUES))
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[Venue]:
    async with VENUES[request.param]() as running:
        yield running


@dataclass
class Trading:
    engine: TradingEngine
    algo: ScriptedAlgo
    venue: Venue

    @property
    def market(self) -> Market:
        return self.engine.markets["m"]

    async def place(self, request: OrderRequest) -> Order:
        return await self.algo.place(request, self.venue.nudge)

    def updates(self, order: Order) -> list[Order]:
        return self.algo.updates_of(order)


@pytest.fixture
async def trading(venue: Venue) -> AsyncIterator[Trading]:
    async with trading_on(venue) as running:
        yield running


@asynccontextmanager
async def trading_on(venue: Venue) -> AsyncIterator[Trading]:
    """An engine trading on `venue` with its market "m" open; once it stops, no socket of it is left open."""
    strategy = {"algo": "scripted", "auto_start": True, "markets": ["m"]}
    moonship = {**venue.moonship, "engine": {"name": f"contract-{venue.name}"}, "strategies": {"s": strategy}}
    engine = build_engine(moonship, *venue.plugins)
    try:
        (algo,) = await started(engine, "s")
        await until(lambda: engine.markets["m"].status is MarketStatus.OPEN, 10, "market open")
        yield Trading(engine, algo, venue)
    finally:
        await engine.stop()
    await until(lambda: venue.connections() == 0, 5, "every socket closed by the engine's stop")
