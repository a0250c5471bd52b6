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
    OrderRequest,
    OrderStatus,
    Side,
    StrategyMarket,
)
from moonship_core.testing import LocalPlugin, ScriptedAlgo, build_engine, started, until
from moonship_core.trading.engine import TradingEngine

from .conftest import KEY, PAIR, SECRET

pytestmark = pytest.mark.anyio
D = Decimal


class Buyer(ScriptedAlgo):
    """Buys what the best ask offers (up to 0.01) once the market is open."""

    def opening(self, market: StrategyMarket) -> list[OrderRequest]:
        best = market.book.depth(Side.SELL, 1)
        return [OrderRequest.limit(Side.BUY, min(D("0.01"), best[0][1]), best[0][0])] if best else []


def engine_for(sim: LunoSimulator) -> TradingEngine:
    luno: dict[str, Any] = {
        "api_key": KEY, "api_secret": SECRET, "rest_url": sim.rest_url, "ws_url": sim.ws_url,
        "silence_timeout": 3,
    }
    moonship = {
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
    return build_engine(moonship, moonship_luno.plugin, LocalPlugin({"buyer": Buyer}))


async def test_engine_trades_on_luno_and_on_paper_over_luno(sim: LunoSimulator) -> None:
    crowd = Participants(sim.exchange, PAIR, seed=11)
    for _ in range(150):
        crowd.step()
    engine = engine_for(sim)
    try:
        live, paper = await started(engine, "live", "sim")
        await until(lambda: bool(live.updates) and live.updates[-1].status is OrderStatus.FILLED,
                    timeout=10, what="real order filled")
        await until(lambda: bool(paper.updates) and paper.updates[-1].status is OrderStatus.FILLED,
                    timeout=10, what="paper order filled")
        real = [o for o in sim.exchange.orders.values() if o.user.key_id == KEY]
        assert len(real) == 1 and real[0].client_order_id == live.updates[-1].client_order_id
        done = live.updates[-1]
        assert done.filled_quantity == real[0].limit_volume
        assert done.fees == {"XBT": done.filled_quantity * D("0.001")}  # the taker fee, paid in base
        assert paper.placed[0].id.startswith("paper-")
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
