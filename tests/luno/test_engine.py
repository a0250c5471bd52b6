"""Luno under the real core: a TradingEngine with a `luno` market and a `paper` market over `luno`, both on
the simulator, with a strategy trading on each."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import moonship_luno.plugin
import pytest
from exchanges.luno import LunoSimulator, Participants

from moonship_core import (
    MarketStatus,
    Order,
    OrderRequest,
    OrderStatus,
    Side,
    StrategyMarket,
    TradingAlgo,
    hookimpl,
)
from moonship_core.config import parse_config
from moonship_core.plugins import Plugins
from moonship_core.trading.engine import TradingEngine

from .conftest import KEY, PAIR, SECRET, until

pytestmark = pytest.mark.anyio
D = Decimal


class Buyer(TradingAlgo):
    """Buys what the best ask offers (up to 0.01) once the market is open; records its order updates."""

    seen: dict[str, Buyer] = {}

    async def on_start(self) -> None:
        self.updates: list[Order] = []
        self.placed: Order | None = None
        Buyer.seen[self.name] = self

    async def on_order_book(self, market: StrategyMarket) -> None:
        best = market.book.depth(Side.SELL, 1)
        if self.placed is None and best and market.status is MarketStatus.OPEN:
            price, available = best[0]
            self.placed = await market.place_order(
                OrderRequest.limit(Side.BUY, min(D("0.01"), available), price)
            )

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        self.updates.append(order)


class AlgoPlugin:
    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"buyer": Buyer}


def engine_for(sim: LunoSimulator) -> TradingEngine:
    luno: dict[str, Any] = {
        "api_key": KEY, "api_secret": SECRET, "rest_url": sim.rest_url, "ws_url": sim.ws_url,
        "stale_timeout": 3,
    }
    config = parse_config(
        {
            "moonship": {
                "engine": {"name": "luno-test"},
                "luno": luno,
                "markets": {
                    "real": {"client": "luno", "symbol": PAIR},
                    "paper": {
                        "client": "paper", "real_client": "luno", "symbol": PAIR,
                        "balances": {"XBT": 1, "ZAR": 1_000_000},
                    },
                },
                "strategies": {
                    "live": {"algo": "buyer", "auto_start": True, "markets": ["real"]},
                    "sim": {"algo": "buyer", "auto_start": True, "markets": ["paper"]},
                },
            }
        }
    )
    plugins = Plugins.load(entry_points=False)
    plugins.register(moonship_luno.plugin, "luno", "moonship-luno")
    plugins.register(AlgoPlugin(), "test-algos")
    plugins.check(config)
    return TradingEngine.embedded(config, plugins, timeout=2)


async def test_engine_trades_on_luno_and_on_paper_over_luno(sim: LunoSimulator) -> None:
    crowd = Participants(sim.exchange, PAIR, seed=11)
    for _ in range(150):
        crowd.step()
    Buyer.seen.clear()
    engine = engine_for(sim)
    await engine.start()
    try:
        await until(lambda: {"live", "sim"} <= Buyer.seen.keys(), what="strategies started")
        live, paper = Buyer.seen["live"], Buyer.seen["sim"]
        await until(lambda: bool(live.updates) and live.updates[-1].status is OrderStatus.FILLED,
                    timeout=10, what="real order filled")
        await until(lambda: bool(paper.updates) and paper.updates[-1].status is OrderStatus.FILLED,
                    timeout=10, what="paper order filled")
        real = [o for o in sim.exchange.orders.values() if o.user.key_id == KEY]
        assert len(real) == 1 and real[0].client_order_id == live.updates[-1].client_order_id
        done = live.updates[-1]
        assert done.filled_quantity == real[0].limit_volume
        assert done.fees == {"XBT": done.filled_quantity * D("0.001")}  # the taker fee, paid in base
        assert paper.placed is not None and paper.placed.id.startswith("paper-")
        # both markets see the same L2 view of Luno's order-level book
        markets = engine.markets
        assert markets["real"].status is MarketStatus.OPEN and markets["paper"].status is MarketStatus.OPEN
        await until(
            lambda: markets["real"].book.sequence == markets["paper"].book.sequence
            == sim.exchange.markets[PAIR].sequence,
            what="both books at the simulator's sequence",
        )
        for side, name in ((Side.BUY, "BUY"), (Side.SELL, "SELL")):
            assert list(markets["real"].book.levels(side)) == sim.exchange.markets[PAIR].levels(name)
            assert list(markets["paper"].book.levels(side)) == sim.exchange.markets[PAIR].levels(name)
        balances = await markets["real"].get_balances()
        assert balances["XBT"].total == sim.exchange.users[KEY].accounts["XBT"].balance
    finally:
        await engine.stop()
