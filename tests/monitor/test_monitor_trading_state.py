"""The `halt` and `reduce` alert actions beside a real engine (paper over the simulator), over the memory and
the Redis backends: an alert puts the strategy it fired for, or with `engine: true` its engine, in the
trading state, and HALTED cancels the open orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from monitor_support import make_monitor, monitor_plugins
from moonship_monitor.service import MonitorService
from moonship_monitor.trading_state import HaltAction, TradingStateSettings

from moonship_core import (
    ConfigError,
    ControlPlane,
    MarketStatus,
    MessageBus,
    OrderRequest,
    SharedCache,
    Side,
    Stores,
    StrategyMarket,
    TradingAlgo,
    hookimpl,
)
from moonship_core.config import parse_config
from moonship_core.contracts.service import ServiceContext
from moonship_core.testing import until
from moonship_core.trading.engine import TradingEngine

POLL = 0.05


class Rester(TradingAlgo):
    """Places one resting buy far below the book, once the market is open."""

    async def on_start(self) -> None:
        self.placed = False

    async def on_order_book(self, market: StrategyMarket) -> None:
        if not self.placed and market.status is MarketStatus.OPEN:
            self.placed = True
            await market.place_order(OrderRequest.limit(Side.BUY, Decimal("0.01"), Decimal("20000")))


class AlgoPlugin:
    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"rester": Rester}


def config(monitor: dict[str, Any]) -> dict[str, Any]:
    rester = {"algo": "rester", "auto_start": True, "markets": ["btc"]}
    return {"moonship": {
        "engine": {"name": "main"},
        "markets": {"btc": {
            "client": "paper", "real_client": "sim", "symbol": "BTCUSDT",
            "balances": {"BTC": 1, "USDT": 100000}, "events_per_second": 200, "seed": 1,
        }},
        "strategies": {"a": rester, "b": rester},
        "monitor": monitor,
    }}


async def running(monitor: dict[str, Any], backend: tuple[SharedCache, MessageBus]) -> tuple[
    TradingEngine, MonitorService
]:
    moonship = parse_config(config(monitor))
    plugins = monitor_plugins(AlgoPlugin())
    sections = plugins.check(moonship)
    cache, bus = backend
    control = ControlPlane(cache, bus)

    def context(settings: Any) -> ServiceContext:
        return ServiceContext(config=moonship, settings=settings, sections=sections, registry=plugins,
                              stores=Stores(cache, bus), control=control)

    engine = TradingEngine(context({}))
    service = MonitorService(context(sections["monitor"]))
    await engine.start()
    await service.start()
    return engine, service


@pytest.mark.anyio
async def test_halt_action_halts_the_strategy_the_alert_fired_for(
    backend: tuple[SharedCache, MessageBus],
) -> None:
    monitor = {"poll_interval": POLL, "alerts": {"resting": {
        "condition": "name == 'a' and open_orders > 0", "actions": "halt",
    }}}
    engine, service = await running(monitor, backend)
    a, b = engine.strategies["a"], engine.strategies["b"]
    try:
        await until(lambda: a.info()["trading_state"] == "HALTED", timeout=10)
        assert a.info()["trading_state_reason"] == "monitor alert resting: name == 'a' and open_orders > 0"
        await until(lambda: engine.orders.open_orders(owner="a") == [])
        assert b.info()["trading_state"] == "ACTIVE"
        await until(lambda: len(engine.orders.open_orders(owner="b")) == 1)  # b trades on
        assert engine.risk.engine_state is None
    finally:
        await service.stop()
        await engine.stop()


@pytest.mark.anyio
async def test_reduce_action_with_engine_true_applies_to_the_engine(
    backend: tuple[SharedCache, MessageBus],
) -> None:
    monitor = {"poll_interval": POLL, "reduce": {"engine": True, "reason": "too many resting orders"},
               "alerts": {"resting": {"condition": "name == 'b' and open_orders > 0", "actions": ["reduce"]}}}
    engine, service = await running(monitor, backend)
    try:
        await until(lambda: engine.risk.engine_state is not None, timeout=10)
        assert engine.risk.engine_info() == {
            "trading_state": "REDUCING", "trading_state_reason": "too many resting orders"
        }
        for name in ("a", "b"):
            info = engine.strategies[name].info()
            assert (info["trading_state"], info["trading_state_reason"]) == (
                "REDUCING", "engine: too many resting orders"
            )
        assert len(engine.orders.open_orders()) == 2  # REDUCING cancels nothing
        (registration,) = await engine.context.control.engine_states()
        assert registration["trading_state"] == "REDUCING"
    finally:
        await service.stop()
        await engine.stop()


@pytest.mark.anyio
async def test_trading_state_action_settings() -> None:
    assert TradingStateSettings() == TradingStateSettings(engine=False, reason=None)
    assert HaltAction.settings_model is TradingStateSettings and HaltAction.state == "HALTED"
    service = make_monitor({"alerts": {"x": {"condition": "true", "actions": "halt"}}, "halt": {"engin": 1}})
    with pytest.raises(ConfigError, match=r"moonship.monitor.halt.engin: unknown property"):
        await service.start()
