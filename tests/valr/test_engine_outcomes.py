"""Order outcomes are events, not exceptions: a strategy in a real engine trading on the VALR simulator keeps
running through a post-only order that would have crossed (the outcomes every venue shares are the contract
suite's, tests/contract)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import moonship_valr.plugin
import pytest
from exchanges.valr import Participants, SimServer, ValrSimulator

from moonship_core import (
    MarketStatus,
    Order,
    OrderRequest,
    OrderStatus,
    Side,
)
from moonship_core.testing import ScriptedAlgo, build_engine, started, until
from moonship_core.trading.engine import TradingEngine

from .harness import API_KEY, SECRET, D, venue

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
MID = D(1_000_000)


def valr_settings(server: SimServer) -> dict[str, Any]:
    return {
        "api_key": API_KEY, "api_secret": SECRET, "rest_url": server.rest_url, "ws_url": server.ws_url,
        "fill_wait": 0.3, "cancel_wait": 1.0, "reconnect_max_delay": 0.5, "request_timeout": 2.0,
    }


@asynccontextmanager
async def engine_on_valr() -> AsyncIterator[tuple[ValrSimulator, TradingEngine, ScriptedAlgo, Participants]]:
    async with venue() as (sim, server):
        house = Participants(sim.exchange, "BTCZAR", mid=MID)
        house.seed_book(10)
        moonship = {
            "engine": {"name": "valr-outcomes"},
            "valr": valr_settings(server),
            "markets": {"btc": {"client": "valr", "symbol": "BTCZAR"}},
            "strategies": {"s": {"algo": "scripted", "auto_start": True, "markets": ["btc"]}},
        }
        engine = build_engine(moonship, moonship_valr.plugin)
        try:
            (algo,) = await started(engine, "s")
            await until(lambda: engine.markets["btc"].status is MarketStatus.OPEN, what="market open")
            yield sim, engine, algo, house
        finally:
            await engine.stop()


def nudge(sim: ValrSimulator, house: Participants) -> None:
    """A book update (a house quote far from the mid), so the algo gets a callback."""
    sim.exchange.place(house.account, "BTCZAR", "buy", kind="limit", quantity=D("0.001"), price=MID / 2)


async def place(
    sim: ValrSimulator, house: Participants, algo: ScriptedAlgo, request: OrderRequest
) -> Order:
    return await algo.place(request, lambda: nudge(sim, house))


def at_sim(sim: ValrSimulator, client_order_id: str) -> list[Any]:
    return [o for o in sim.exchange.orders.values() if o.customer_order_id == client_order_id]


async def test_a_post_only_order_that_would_cross_is_rejected_and_trading_goes_on() -> None:
    async with engine_on_valr() as (sim, engine, algo, house):
        strategy = engine.strategies["s"]
        market = engine.markets["btc"]

        # a post-only bid at the best ask would have crossed: REJECTED as PostOnlyRejected
        best_ask = market.book.best_ask
        assert best_ask is not None
        crossing = OrderRequest.limit(Side.BUY, D("0.01"), best_ask, post_only=True)
        crossed = await place(sim, house, algo, crossing)
        assert (crossed.status, crossed.error) == (OrderStatus.REJECTED, "PostOnlyRejected")
        assert crossed in algo.updates and not [o for o in at_sim(sim, crossed.client_order_id) if o.is_open]

        # still trading: a new post-only quote rests, the strategy never stopped
        quote = await place(
            sim, house, algo, OrderRequest.limit(Side.SELL, D("0.01"), D(1_010_000), post_only=True)
        )
        assert quote.status is OrderStatus.PENDING and len(at_sim(sim, quote.client_order_id)) == 1
        assert {o.client_order_id for o in market.open_orders("s")} == {quote.client_order_id}
        assert strategy.active and strategy.stop_reason is None
