"""The risk layer in a real engine: each pre-trade rule denies exactly past its limit and passes at it, the
trading states (REDUCING, HALTED) from the control plane, the breakers, and the state across a restart.

A real algo places the orders (the test queues requests, a book update makes the algo place them) on a
scripted market (book 99 / 101, so the mid is 100), on an engine whose clock is a SimClock."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support.servers import redis

from moonship_core import (
    ConfigError,
    ControlError,
    MarketInfo,
    MarketStatus,
    Order,
    OrderRequest,
    OrderStatus,
    Side,
    SimClock,
    Stores,
    cli,
)
from moonship_core.config import parse_config
from moonship_core.stores.memory import MemoryBus, MemoryCache, MemoryJournal
from moonship_core.stores.redis import RedisBus, RedisCache
from moonship_core.stores.sqlite import SqliteJournal
from moonship_core.testing import LocalPlugin, ScriptedAlgo, ScriptedClient, build_engine, started, until
from moonship_core.trading.engine import TradingEngine
from moonship_core.trading.risk import STATE_KEY, Limits, TradingState

pytestmark = pytest.mark.anyio
D = Decimal
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
BUY, SELL = Side.BUY, Side.SELL


class RiskClient(ScriptedClient):
    """The scripted market without a minimum order value."""

    async def get_market_info(self) -> MarketInfo:
        return MarketInfo(self.symbol, "BTC", "USDT", D("0.01"), D("0.001"), D("0.001"), D("0"))




class Rig:
    """An engine with strategies "s" (and "t") of the scripted algo on one scripted market."""

    def __init__(self, engine: TradingEngine, clock: SimClock) -> None:
        self.engine = engine
        self.clock = clock
        self.control = engine.context.control
        self.seq = itertools.count(2)

    @property
    def client(self) -> ScriptedClient:
        client = self.engine.markets["btc"].client
        assert isinstance(client, ScriptedClient)
        return client

    async def place(self, request: OrderRequest, strategy: str = "s") -> Order:
        return await ScriptedAlgo.running[strategy].place(
            request, lambda: self.client.move("99.00", "101.00", next(self.seq))
        )

    async def fill(self, order: Order, price: str, qty: str | None = None, fee: str = "0") -> Order:
        return self.client.fill(order, price, qty or str(order.quantity), fee)

    async def bought(self, qty: str, price: str = "100", strategy: str = "s") -> Order:
        """A position change: an order placed and filled completely."""
        order = await self.place(OrderRequest.limit(BUY, D(qty), D(price)), strategy)
        assert order.status is OrderStatus.PENDING, order
        return await self.fill(order, price)

    def info(self, strategy: str = "s") -> dict[str, Any]:
        return self.engine.strategies[strategy].info()


async def rig(
    risk: dict[str, Any] | None = None,
    strategy_risk: dict[str, Any] | None = None,
    *,
    two: bool = False,
    stores: Stores | None = None,
    clock: SimClock | None = None,
) -> Rig:
    s: dict[str, Any] = {"algo": "scripted_any_status", "auto_start": True, "markets": ["btc"]}
    if strategy_risk is not None:
        s["risk"] = strategy_risk
    strategies = {"s": s}
    if two:
        strategies["t"] = {"algo": "scripted_any_status", "auto_start": True, "markets": ["btc"]}
    moonship: dict[str, Any] = {
        "engine": {"name": "risky"},
        "markets": {"btc": {"client": "scripted", "symbol": "BTCUSDT", "candle_period": 0}},
        "strategies": strategies,
    }
    if risk is not None:
        moonship["risk"] = risk
    clock = clock or SimClock(T0)
    plugin = LocalPlugin(market_clients={"scripted": RiskClient})
    engine = build_engine(moonship, plugin, stores=stores, clock=clock)
    await started(engine, *strategies)
    return Rig(engine, clock)


KILLED = "trading_state: HALTED (kill switch)"


def denied(order: Order, reason: str) -> None:
    assert order.status is OrderStatus.REJECTED, order
    assert order.error == "RiskDenied"
    assert order.reason == reason


def passed(order: Order) -> None:
    assert order.status is OrderStatus.PENDING, order


# ---------------------------------------------------------------------------------------------------- rules
async def test_max_order_quantity() -> None:
    r = await rig({"max_order_quantity": "0.5"})
    try:
        passed(await r.place(OrderRequest.limit(BUY, D("0.5"), D("100"))))
        denied(
            await r.place(OrderRequest.limit(BUY, D("0.501"), D("100"))),
            "max_order_quantity: order 0.501 > 0.5",
        )
        # a market order by quote quantity is sized at the touch (ask 101 for a buy)
        passed(await r.place(OrderRequest.market(BUY, quote_quantity=D("50.5"))))
        denied(
            await r.place(OrderRequest.market(BUY, quote_quantity=D("50.6"))),
            "max_order_quantity: order 0.500990099009900990099009901 > 0.5",
        )
        assert len(r.client.placed) == 2  # the denied ones never reached the client
        assert r.info()["risk_denials"] == {"max_order_quantity": 2}
    finally:
        await r.engine.stop()


async def test_max_order_notional() -> None:
    r = await rig({"max_order_notional": "50"})
    try:
        passed(await r.place(OrderRequest.limit(BUY, D("0.5"), D("100"))))
        denied(
            await r.place(OrderRequest.limit(BUY, D("0.501"), D("100"))),
            "max_order_notional: order value 50.1 > 50",
        )
        passed(await r.place(OrderRequest.market(SELL, quantity=D("0.505"))))  # at the bid, 99: 49.995
        denied(
            await r.place(OrderRequest.market(SELL, quantity=D("0.506"))),
            "max_order_notional: order value 50.094 > 50",
        )
    finally:
        await r.engine.stop()


async def test_max_open_orders() -> None:
    r = await rig(None, {"max_open_orders": 2})
    try:
        first = await r.place(OrderRequest.limit(BUY, D("0.1"), D("98")))
        passed(first)
        passed(await r.place(OrderRequest.limit(SELL, D("0.1"), D("102"))))
        denied(await r.place(OrderRequest.limit(BUY, D("0.1"), D("97"))), "max_open_orders: 2 open + 1 > 2")
        await r.engine.markets["btc"].cancel_order(first)
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("97"))))
    finally:
        await r.engine.stop()


async def test_max_position_counts_the_position_and_the_open_orders_on_its_side() -> None:
    r = await rig({"max_position": "1"})
    try:
        await r.bought("0.1")
        await until(lambda: r.info()["position"] == D("0.1"))
        passed(await r.place(OrderRequest.limit(BUY, D("0.5"), D("98"))))  # 0.1 + 0.5 open
        passed(await r.place(OrderRequest.limit(SELL, D("0.3"), D("102"))))  # the other side: not counted
        passed(await r.place(OrderRequest.limit(BUY, D("0.4"), D("98"))))  # 0.1 + 0.5 + 0.4 = 1: at it
        denied(
            await r.place(OrderRequest.limit(BUY, D("0.001"), D("98"))),
            "max_position: position 0.1 + open 0.9 + order 0.001 > 1",
        )
        # selling: the position may go to -1 (0.3 open already)
        passed(await r.place(OrderRequest.limit(SELL, D("0.8"), D("102"))))  # 0.1 - 0.3 - 0.8 = -1
        denied(
            await r.place(OrderRequest.limit(SELL, D("0.001"), D("102"))),
            "max_position: position 0.1 - open 1.1 - order 0.001 < -1",
        )
    finally:
        await r.engine.stop()


async def test_max_position_message_without_open_orders() -> None:
    r = await rig({"max_position": "0.10"})
    try:
        await r.bought("0.10")
        await until(lambda: r.info()["position"] == D("0.1"))
        denied(
            await r.place(OrderRequest.limit(BUY, D("0.02"), D("98"))),
            "max_position: position 0.1 + order 0.02 > 0.1",
        )
    finally:
        await r.engine.stop()


async def test_price_band_against_the_mid() -> None:
    r = await rig({"price_band_bps": 100})  # mid 100: 99 to 101
    try:
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("101"))))
        passed(await r.place(OrderRequest.limit(SELL, D("0.1"), D("99"))))
        denied(
            await r.place(OrderRequest.limit(BUY, D("0.1"), D("101.01"))),
            "price_band_bps: price 101.01 is 101.0 bps from mid 100 > 100",
        )
        denied(
            await r.place(OrderRequest.limit(SELL, D("0.1"), D("98.99"))),
            "price_band_bps: price 98.99 is 101.0 bps from mid 100 > 100",
        )
        passed(await r.place(OrderRequest.market(BUY, quantity=D("0.1"))))  # no price to check
    finally:
        await r.engine.stop()


async def test_stricter_of_engine_and_strategy_limits_wins() -> None:
    r = await rig({"max_order_quantity": "1", "max_open_orders": 1}, {"max_order_quantity": "2",
                                                                      "max_open_orders": 5})
    try:
        limits = r.engine.risk.limits("s")
        assert (limits.max_order_quantity, limits.max_open_orders) == (D("1"), 1)
        denied(
            await r.place(OrderRequest.limit(BUY, D("1.5"), D("98"))), "max_order_quantity: order 1.5 > 1"
        )
    finally:
        await r.engine.stop()


async def test_orders_per_second_per_strategy_and_engine_wide() -> None:
    r = await rig({"max_orders_per_second": 3}, {"max_orders_per_second": 2}, two=True)
    try:
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))))
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))))
        denied(
            await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))),
            "max_orders_per_second: 2 orders in the last second, at most 2",
        )
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98")), "t"))  # the engine's third
        denied(
            await r.place(OrderRequest.limit(BUY, D("0.1"), D("98")), "t"),
            "max_orders_per_second: engine: 3 orders in the last second, at most 3",
        )
        r.clock.advance(1.0)  # a second later (on the engine's clock), all pass again
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))))
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98")), "t"))
        assert r.info("t")["risk_denials"] == {"max_orders_per_second": 1}
    finally:
        await r.engine.stop()


async def test_denials_are_logged_once_per_rule_and_strategy_per_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="moonship")
    r = await rig({"max_order_quantity": "1"})
    try:
        for _ in range(3):
            await r.place(OrderRequest.limit(BUY, D("2"), D("98")))
        r.clock.advance(60)
        await r.place(OrderRequest.limit(BUY, D("2"), D("98")))
        warnings = [x for x in caplog.records if x.levelno >= logging.WARNING and "denied" in x.getMessage()]
        assert [w.getMessage() for w in warnings] == ["s: order denied: max_order_quantity: order 2 > 1"] * 2
        assert r.info()["risk_denials"] == {"max_order_quantity": 4}
        journaled = await r.engine.journal.orders(strategy="s")
        assert [o.order.error for o in journaled] == ["RiskDenied"] * 4
    finally:
        await r.engine.stop()


async def test_risk_is_kept_out_of_the_algos_settings() -> None:
    config = parse_config({"moonship": {
        "markets": {"btc": {"client": "scripted", "symbol": "BTCUSDT"}},
        "strategies": {"s": {"algo": "placer", "markets": ["btc"], "risk": {"max_position": "1"}, "x": 1}},
    }})
    strategy = config.strategies["s"]
    assert strategy.extra == {"x": 1}
    assert strategy.risk is not None and strategy.risk.max_position == D("1")
    assert strategy.public_dump()["risk"] == {"max_position": "1"}
    with pytest.raises(ConfigError, match=r"moonship.risk.max_position: input should be greater"):
        parse_config({"moonship": {"risk": {"max_position": "-1"}}})
    with pytest.raises(ConfigError, match=r"moonship.strategies.s.risk.nope: unknown property"):
        parse_config({"moonship": {
            "markets": {"btc": {"client": "scripted", "symbol": "BTCUSDT"}},
            "strategies": {"s": {"algo": "placer", "markets": ["btc"], "risk": {"nope": 1}}},
        }})
    assert Limits.merged(parse_config({"moonship": {}}).risk, None) == Limits()


# ------------------------------------------------------------------------------------------------ breakers
async def test_market_unsynced_denies_until_synced() -> None:
    r = await rig()
    try:
        r.client.events.status(MarketStatus.UNSYNCED)
        denied(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))), "market_status: market unsynced")
        r.client.events.status(MarketStatus.OPEN)
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))))
        assert r.info()["risk_denials"] == {"market_status": 1}
    finally:
        await r.engine.stop()


async def test_max_daily_loss_halts_past_the_limit_and_resets_at_midnight() -> None:
    r = await rig(None, {"max_daily_loss": "5"})
    try:
        await r.bought("1", "100")
        sell = await r.place(OrderRequest.limit(SELL, D("1"), D("95")))
        await r.fill(sell, "95")  # a loss of 5: at the limit
        await until(lambda: r.info()["daily_profit"] == D("-5"))
        assert r.info()["trading_state"] == "ACTIVE"
        resting = await r.place(OrderRequest.limit(BUY, D("0.1"), D("90")))
        await r.bought("1", "100")
        sell = await r.place(OrderRequest.limit(SELL, D("1"), D("99.99")))
        await r.fill(sell, "99.99")  # 0.01 more: past it
        await until(lambda: r.info()["trading_state"] == "HALTED", what="halted")
        info = r.info()
        assert info["trading_state_reason"] == "max_daily_loss: loss 5.01 > 5"
        await until(lambda: r.info()["open_orders"] == 0, what="open orders cancelled")
        assert resting.client_order_id not in {o.client_order_id for o in r.engine.orders.open_orders()}
        denied(
            await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))),
            "trading_state: HALTED (max_daily_loss: loss 5.01 > 5)",
        )
        r.clock.advance(14 * 3600)  # the next UTC day: the day's P/L starts again, the state stays
        assert r.info()["daily_profit"] == 0
        assert r.info()["trading_state"] == "HALTED"
        await r.control.resume("risky", "new day", "s")
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))))
    finally:
        await r.engine.stop()


async def test_engine_max_daily_loss_halts_the_engine() -> None:
    r = await rig({"max_daily_loss": "3"}, {"max_daily_loss": "100"}, two=True)
    try:
        await r.bought("1", "100", "s")
        await r.fill(await r.place(OrderRequest.limit(SELL, D("1"), D("98")), "s"), "98")
        await r.bought("1", "100", "t")
        await r.fill(await r.place(OrderRequest.limit(SELL, D("1"), D("99")), "t"), "99")
        await until(lambda: r.engine.risk.daily_profit() == D("-3"))
        assert r.engine.risk.engine_state is None  # 3: at the limit
        await r.bought("1", "100", "t")
        await r.fill(await r.place(OrderRequest.limit(SELL, D("1"), D("99.99")), "t"), "99.99")
        await until(lambda: r.engine.risk.engine_state is not None, what="engine halted")
        assert r.engine.risk.engine_info() == {
            "trading_state": "HALTED", "trading_state_reason": "max_daily_loss: engine loss 3.01 > 3"
        }
        assert r.info("s")["trading_state"] == r.info("t")["trading_state"] == "HALTED"
    finally:
        await r.engine.stop()


async def test_max_rejects_within_the_window_halts() -> None:
    r = await rig(None, {"max_rejects": 3, "reject_window": 10, "max_order_quantity": "1"})
    try:
        big = OrderRequest.limit(BUY, D("2"), D("98"))
        await r.place(big)
        r.clock.advance(11)  # out of the window
        await r.place(OrderRequest.limit(BUY, D("2"), D("98")))
        await r.place(OrderRequest.limit(BUY, D("2"), D("98")))
        assert r.info()["trading_state"] == "ACTIVE"  # two within the window
        await r.place(OrderRequest.limit(BUY, D("2"), D("98")))
        await until(lambda: r.info()["trading_state"] == "HALTED", what="halted")
        assert r.info()["trading_state_reason"] == "max_rejects: 3 rejections within 10 s"
    finally:
        await r.engine.stop()


# ---------------------------------------------------------------------------------------------------- states
async def test_reducing_passes_closing_orders_and_denies_opening_ones() -> None:
    r = await rig(two=True)
    try:
        await r.bought("1")
        await until(lambda: r.info()["position"] == D("1"))
        reply = await r.control.reduce("risky", "flatten", "s")
        assert (reply["trading_state"], reply["trading_state_reason"]) == ("REDUCING", "flatten")
        denied(
            await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))),
            "trading_state: REDUCING: BUY 0.1 would not reduce position 1",
        )
        passed(await r.place(OrderRequest.limit(SELL, D("0.6"), D("102"))))
        denied(
            await r.place(OrderRequest.limit(SELL, D("0.5"), D("102"))),
            "trading_state: REDUCING: SELL 0.5 would not reduce position 1 (open 0.6)",
        )
        passed(await r.place(OrderRequest.limit(SELL, D("0.4"), D("102"))))
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98")), "t"))  # another strategy: ACTIVE
        # cancels always pass
        for order in r.engine.orders.open_orders(owner="s"):
            assert (await r.engine.markets["btc"].cancel_order(order)).status is OrderStatus.CANCELLED
        await r.control.resume("risky", "", "s")
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))))
    finally:
        await r.engine.stop()


async def test_halted_cancels_every_open_order_and_blocks_new_ones_until_resumed() -> None:
    r = await rig(two=True)
    try:
        for strategy in ("s", "t"):
            for price in ("97", "98"):
                passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D(price)), strategy))
        reply = await r.control.halt("risky", "kill switch", "s")
        assert (reply["trading_state"], reply["trading_state_reason"], reply["open_orders"]) == (
            "HALTED", "kill switch", 0
        )
        assert len(r.engine.orders.open_orders(owner="t")) == 2  # only the strategy's
        denied(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))), KILLED)
        # the whole engine: every open order, of every strategy
        assert await r.control.halt("risky", "going home") == {
            "trading_state": "HALTED", "trading_state_reason": "going home"
        }
        assert r.engine.orders.open_orders() == []
        denied(
            await r.place(OrderRequest.limit(BUY, D("0.1"), D("98")), "t"),
            "trading_state: HALTED (engine: going home)",
        )
        assert r.info("t")["trading_state_reason"] == "engine: going home"
        await r.engine.publisher.flush()
        (engine,) = await r.control.engine_states()
        assert (engine["name"], engine["trading_state"], engine["trading_state_reason"]) == (
            "risky", "HALTED", "going home"
        )
        await r.control.resume("risky")
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98")), "t"))
        denied(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))), KILLED)
        await r.control.resume("risky", strategy="s")
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))))
        assert r.info()["trading_state"] == "ACTIVE" and r.info()["trading_state_reason"] is None
    finally:
        await r.engine.stop()


async def test_bad_trading_state_commands() -> None:
    r = await rig()
    try:
        with pytest.raises(ControlError, match="Missing or bad state field") as bad:
            await r.control.trading_state("risky", "STOPPED")
        assert bad.value.status == 400
        with pytest.raises(ControlError, match="No such strategy") as missing:
            await r.control.halt("risky", "x", "nope")
        assert missing.value.status == 404
        with pytest.raises(ControlError, match="Unknown field"):
            await r.control.send("risky", "trading-state", config={"state": "HALTED", "why": "x"})
    finally:
        await r.engine.stop()


async def test_trading_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"

    def stores() -> Stores:
        return Stores(MemoryCache(), MemoryBus(), SqliteJournal(path))

    r = await rig(stores=stores(), two=True)
    await r.control.halt("risky", "breach", "s")
    await r.control.reduce("risky", "end of day")
    await r.engine.stop()

    r = await rig(stores=stores(), two=True)
    try:
        assert r.info("s")["trading_state"] == "HALTED"  # the stricter of its own and the engine's
        assert (r.info("t")["trading_state"], r.info("t")["trading_state_reason"]) == (
            "REDUCING", "engine: end of day"
        )
        assert r.engine.risk.states["s"].reason == "breach"
        denied(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98")), "t"),
               "trading_state: REDUCING: BUY 0.1 would not reduce position 0")
        await r.control.resume("risky")
        await r.control.resume("risky", strategy="s")
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))))
        saved = await r.engine.journal.get(STATE_KEY)
        assert saved == {"engine": None, "strategies": {}}
    finally:
        await r.engine.stop()
    assert TradingState("HALTED") is TradingState.HALTED


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.mark.slow
async def test_cli_halt_reduce_resume_over_redis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = redis()
    server.start()
    cache, bus = RedisCache(server.url), RedisBus(server.url)
    await cache.open()
    await bus.open()
    r = await rig(stores=Stores(cache, bus, MemoryJournal()), two=True)
    path = tmp_path / "ops.yml"
    path.write_text(f"moonship:\n  engine:\n    name: risky\n  redis:\n    url: {server.url}\n")
    try:
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))))
        halt = ["halt", "-c", str(path), "--strategy", "s", "--reason", "cli"]
        code = await asyncio.to_thread(cli.main, halt)
        assert (code, capsys.readouterr().out) == (0, "strategy s of engine risky: HALTED (cli)\n")
        assert r.engine.orders.open_orders(owner="s") == []  # in force when the command returned
        denied(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))), "trading_state: HALTED (cli)")

        code = await asyncio.to_thread(cli.main, ["reduce", "-c", str(path), "--engine", "risky"])
        assert (code, capsys.readouterr().out) == (0, "engine risky: REDUCING\n")
        assert r.info("t")["trading_state"] == "REDUCING"

        for args in (["resume", "-c", str(path)], ["resume", "-c", str(path), "--strategy", "s"]):
            assert await asyncio.to_thread(cli.main, args) == 0
        assert "engine risky: ACTIVE\n" in capsys.readouterr().out
        passed(await r.place(OrderRequest.limit(BUY, D("0.1"), D("98"))))

        code = await asyncio.to_thread(cli.main, ["halt", "-c", str(path), "--strategy", "nope"])
        assert (code, capsys.readouterr().err) == (1, "moonship halt: No such strategy\n")
        code = await asyncio.to_thread(cli.main, ["halt", "-c", str(path), "--engine", "gone"])
        assert (code, capsys.readouterr().err) == (1, "moonship halt: Engine 'gone' is not running\n")
    finally:
        await r.engine.stop()
        await bus.close()
        await cache.close()
        server.kill()


def test_cli_without_redis_says_there_is_nothing_to_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alone.yml"
    path.write_text("moonship:\n  engine:\n    name: solo\n")
    assert cli.main(["halt", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"moonship halt: moonship.redis.url is not set in {path}, so there is no message")
    assert "POST /engines/solo/trading-state" in err
