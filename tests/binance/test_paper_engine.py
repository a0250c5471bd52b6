"""The engine end to end over the simulator: `paper` over `binance`, and `binance` itself, built from config
and resolved through the plugin registry (entry point and the seed's dotted class path)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import moonship_binance.plugin
import pytest
from exchanges.binance import KEY, BinanceSim
from moonship_binance.client import BinanceClient

from moonship_core import (
    OrderRequest,
    OrderStatus,
    Side,
    StrategyMarket,
)
from moonship_core.plugins import Plugins
from moonship_core.testing import LocalPlugin, ScriptedAlgo, build_engine, started, until
from moonship_core.trading.engine import TradingEngine

from .conftest import fast

pytestmark = pytest.mark.anyio
D = Decimal


class BuyBelowAsk(ScriptedAlgo):
    """On the first synced book: one limit buy at the best ask (it takes), one resting bid below."""

    def opening(self, market: StrategyMarket) -> list[OrderRequest]:
        ask = market.book.best_ask
        if ask is None:
            return []
        return [
            OrderRequest.limit(Side.BUY, D("0.5"), ask),
            OrderRequest.limit(Side.BUY, D("0.25"), ask - 100),
        ]


def engine(sim: BinanceSim, market: dict[str, Any]) -> TradingEngine:
    moonship = {
        "engine": {"name": "sim"},
        "markets": {"btc": {"symbol": "BTCUSDT", **market}},
        "strategies": {"s": {"algo": "buy_below_ask", "auto_start": True, "markets": ["btc"]}},
        "binance": fast(sim),
    }
    trading = build_engine(moonship, moonship_binance.plugin, LocalPlugin({"buy_below_ask": BuyBelowAsk}))
    assert isinstance(trading.context.sections["binance"], BinanceClient.settings_model)
    return trading


async def orders_placed(trading: TradingEngine) -> ScriptedAlgo:
    (algo,) = await started(trading, "s")
    await until(lambda: len(algo.placed) == 2, what="orders")
    return algo


async def test_paper_over_binance(sim: BinanceSim) -> None:
    trading = engine(sim, {"client": "paper", "real_client": "binance", "balances": {"USDT": "100000"}})
    try:
        algo = await orders_placed(trading)
        taker, maker = algo.placed
        await until(
            lambda: any(
                o.client_order_id == taker.client_order_id
                and o.status is OrderStatus.FILLED
                and o.average_price == D("30001")
                for o in algo.updates
            ),
            what="paper taker fill",
        )
        assert maker.status is OrderStatus.PENDING
        sim.exchange.take("BTCUSDT", "SELL", "2")  # public trades down to 29998 do not reach 29901
        sim.exchange.set_level("BTCUSDT", "b", "29900", "1")
        sim.exchange.take("BTCUSDT", "SELL", "9", "29900")  # a trade prints through the paper bid
        await until(
            lambda: any(
                o.client_order_id == maker.client_order_id and o.status is OrderStatus.FILLED
                for o in algo.updates
            ),
            what="paper maker fill",
        )
        assert not [r for m, path, r in sim.requests if path.endswith("/order")]  # nothing real was sent
    finally:
        await trading.stop()


async def test_engine_trades_binance_through_the_simulator(sim: BinanceSim) -> None:
    trading = engine(sim, {"client": "moonship.client.binance.BinanceClient"})
    try:
        algo = await orders_placed(trading)
        taker, maker = algo.placed
        await until(
            lambda: any(
                o.client_order_id == taker.client_order_id and o.status is OrderStatus.FILLED and o.fills
                for o in algo.updates
            ),
            what="taker fill",
        )
        sim.exchange.take("BTCUSDT", "SELL", "10.25", "29901")  # through every bid down to ours
        await until(
            lambda: any(
                o.client_order_id == maker.client_order_id and o.status is OrderStatus.FILLED
                for o in algo.updates
            ),
            what="maker fill from the user stream",
        )
        real = {o.coid: o.status for o in sim.exchange.accounts[KEY].orders.values()}
        assert real == {taker.client_order_id: "FILLED", maker.client_order_id: "FILLED"}
    finally:
        await trading.stop()


def test_installed_entry_point_provides_binance() -> None:
    plugins = Plugins.load()
    assert plugins.resolve("market_clients", "binance") is BinanceClient
    assert plugins.resolve("market_clients", "moonship.client.binance.BinanceClient") is BinanceClient
