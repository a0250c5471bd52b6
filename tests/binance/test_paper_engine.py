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

from .conftest import fast, until

pytestmark = pytest.mark.anyio
D = Decimal


class BuyBelowAsk(TradingAlgo):
    """On the first synced book: one limit buy at the best ask (it takes), one resting bid below."""

    seen: dict[str, BuyBelowAsk] = {}

    async def on_start(self) -> None:
        self.orders: list[Order] = []
        self.placed: list[Order] = []
        BuyBelowAsk.seen[self.name] = self

    async def on_order_book(self, market: StrategyMarket) -> None:
        ask = market.book.best_ask
        if self.placed or ask is None or market.status is not MarketStatus.OPEN:  # type: ignore[attr-defined]
            return
        self.placed.append(await market.place_order(OrderRequest.limit(Side.BUY, D("0.5"), ask)))
        self.placed.append(await market.place_order(OrderRequest.limit(Side.BUY, D("0.25"), ask - 100)))

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        self.orders.append(order)


class AlgoPlugin:
    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"buy_below_ask": BuyBelowAsk}


def engine(sim: BinanceSim, market: dict[str, Any]) -> TradingEngine:
    config = parse_config(
        {
            "moonship": {
                "engine": {"name": "sim"},
                "markets": {"btc": {"symbol": "BTCUSDT", **market}},
                "strategies": {"s": {"algo": "buy_below_ask", "auto_start": True, "markets": ["btc"]}},
                "binance": fast(sim),
            }
        }
    )
    plugins = Plugins.load(entry_points=False)
    plugins.register(moonship_binance.plugin, "binance", "moonship-binance")
    plugins.register(AlgoPlugin(), "test")
    engine = TradingEngine.embedded(config, plugins, timeout=2)
    assert isinstance(engine.context.sections["binance"], BinanceClient.settings_model)
    return engine


async def test_paper_over_binance(sim: BinanceSim) -> None:
    BuyBelowAsk.seen.clear()
    trading = engine(sim, {"client": "paper", "real_client": "binance", "balances": {"USDT": "100000"}})
    await trading.start()
    try:
        await until(lambda: "s" in BuyBelowAsk.seen and len(BuyBelowAsk.seen["s"].placed) == 2, what="orders")
        algo = BuyBelowAsk.seen["s"]
        taker, maker = algo.placed
        await until(
            lambda: any(
                o.client_order_id == taker.client_order_id
                and o.status is OrderStatus.FILLED
                and o.average_price == D("30001")
                for o in algo.orders
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
                for o in algo.orders
            ),
            what="paper maker fill",
        )
        assert not [r for m, path, r in sim.requests if path.endswith("/order")]  # nothing real was sent
    finally:
        await trading.stop()


async def test_engine_trades_binance_through_the_simulator(sim: BinanceSim) -> None:
    BuyBelowAsk.seen.clear()
    trading = engine(sim, {"client": "moonship.client.binance.BinanceClient"})
    await trading.start()
    try:
        await until(lambda: "s" in BuyBelowAsk.seen and len(BuyBelowAsk.seen["s"].placed) == 2, what="orders")
        algo = BuyBelowAsk.seen["s"]
        taker, maker = algo.placed
        await until(
            lambda: any(
                o.client_order_id == taker.client_order_id and o.status is OrderStatus.FILLED and o.fills
                for o in algo.orders
            ),
            what="taker fill",
        )
        sim.exchange.take("BTCUSDT", "SELL", "10.25", "29901")  # through every bid down to ours
        await until(
            lambda: any(
                o.client_order_id == maker.client_order_id and o.status is OrderStatus.FILLED
                for o in algo.orders
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
