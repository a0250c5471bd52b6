"""Order outcomes are events, not exceptions: a strategy in a real engine trading on the Binance simulator
keeps running through an answer that never comes in time (resolved once, nothing sent twice), an exchange
down at start-up, its request-weight 429s and a 418 ban (the outcomes every venue shares are the contract
suite's, tests/contract)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import moonship_binance.plugin
import pytest
from exchanges.binance import KEY, BinanceSim

from moonship_core import (
    Order,
    OrderRequest,
    OrderStatus,
    Side,
    testing,
)
from moonship_core.testing import ScriptedAlgo, build_engine, free_port, until
from moonship_core.trading.engine import TradingEngine

from .conftest import fast, seed_book

pytestmark = pytest.mark.anyio
D = Decimal
ORDER_PATH = "/api/v3/order"


def engine_on(settings: dict[str, Any], name: str) -> TradingEngine:
    moonship = {
        "engine": {"name": name},
        "markets": {"btc": {"client": "binance", "symbol": "BTCUSDT"}},
        "strategies": {"s": {"algo": "scripted", "auto_start": True, "markets": ["btc"]}},
        "binance": settings,
    }
    return build_engine(moonship, moonship_binance.plugin)


async def started(sim: BinanceSim) -> tuple[TradingEngine, ScriptedAlgo]:
    engine = engine_on(fast(sim), "outcomes")
    (algo,) = await testing.started(engine, "s")
    return engine, algo


def nudge(sim: BinanceSim) -> None:
    """A book update, so the algo gets a callback."""
    sim.exchange.set_level("BTCUSDT", "b", "29000.00", str(len(sim.requests) % 7 + 1))


async def place(sim: BinanceSim, algo: ScriptedAlgo, request: OrderRequest) -> Order:
    return await algo.place(request, lambda: nudge(sim))


async def test_an_answer_held_past_the_timeout_is_found_by_its_client_order_id(sim: BinanceSim) -> None:
    engine, algo = await started(sim)
    strategy = engine.strategies["s"]
    try:
        # the answer is held past the client's timeout: UNKNOWN, then found by its client order id, once
        sim.faults.delay(ORDER_PATH, 3.0)
        slow = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.1"), D("29400")))
        assert slow.status is OrderStatus.UNKNOWN
        await until(lambda: algo.updates_of(slow), what="slow resolved")
        assert algo.updates_of(slow)[0].status is OrderStatus.PENDING
        real = [o for o in sim.exchange.accounts[KEY].orders.values() if o.coid == slow.client_order_id]
        assert len(real) == 1  # queried, never sent again

        # the cancel of the resolved order works, and the strategy is still running
        market = engine.markets["btc"]
        (live,) = [o for o in market.open_orders() if o.client_order_id == slow.client_order_id]
        cancelled = await market.cancel_order(live)
        assert cancelled.status is OrderStatus.CANCELLED
        assert strategy.active and strategy.stop_reason is None
        await until(lambda: algo.updates_of(slow)[-1].status is OrderStatus.CANCELLED, what="the cancel")
        assert not any(u.status is OrderStatus.UNKNOWN for u in algo.updates_of(slow))  # never repeated
    finally:
        await engine.stop()


async def test_an_exchange_down_at_start_up_is_waited_for() -> None:
    """The exchange does not answer when the engine starts: the strategy waits (and says for what), the
    market is retried with backoff, and the strategy starts by itself once the exchange is up."""
    port = free_port()
    sim = BinanceSim()
    url = f"127.0.0.1:{port}"
    urls = {"rest_url": f"http://{url}", "ws_url": f"ws://{url}", "ws_api_url": f"ws://{url}/ws-api/v3"}
    settings = {**fast(sim), **urls}
    engine = engine_on(settings, "late")
    await engine.start()  # returns although the market cannot open
    strategy = engine.strategies["s"]
    try:
        assert not strategy.active
        assert strategy.waiting_for is not None and strategy.waiting_for.startswith("market btc: ")
        await engine.publisher.flush()
        assert (await engine.context.control.strategy("late", "s"))["waiting_for"] == strategy.waiting_for
        await sim.start(port)
        seed_book(sim)
        await until(lambda: strategy.active, timeout=15, what="started once the exchange is up")
        assert strategy.waiting_for is None
        await engine.publisher.flush()
        assert (await engine.context.control.strategy("late", "s"))["waiting_for"] is None
    finally:
        await engine.stop()
        await sim.stop()


async def test_a_strategy_keeps_trading_through_the_request_weight_and_a_ban() -> None:
    """429 (over the request weight) and 418 (banned) refuse an order without executing it: REJECTED as
    RateLimited, and the strategy trades on once they are over. It never stops."""
    async with BinanceSim(weight_seconds=2) as sim:  # a short weight window: the 429's Retry-After is short
        seed_book(sim)
        engine, algo = await started(sim)
        try:
            strategy = engine.strategies["s"]
            limit = sim.weight.limit
            sim.weight.limit = sim.weight.used  # the next request is over the limit: 429 with Retry-After
            slowed = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D("29000")))
            sim.weight.limit = limit
            assert (slowed.status, slowed.error) == (OrderStatus.REJECTED, "RateLimited"), slowed
            await asyncio.sleep(2.5)  # the Retry-After the client honours
            ours = sim.exchange.accounts[KEY].orders.values()
            assert not [o for o in ours if o.coid == slowed.client_order_id]

            sim.banned_until = time.monotonic() + 1.5  # 418: banned for a while
            banned = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D("29000")))
            assert (banned.status, banned.error) == (OrderStatus.REJECTED, "RateLimited"), banned

            await asyncio.sleep(max(0.0, sim.banned_until - time.monotonic()))
            resting = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D("29000")))
            assert resting.status is OrderStatus.PENDING, resting
            # through every bid down to ours (the nudges left some at its price, ahead of it in time)
            sim.exchange.take("BTCUSDT", "SELL", D(100), D("29000"))
            await until(
                lambda: any(u.status is OrderStatus.FILLED for u in algo.updates_of(resting)),
                timeout=10, what="fill after the ban",
            )
            assert strategy.active and strategy.stop_reason is None
        finally:
            await engine.stop()
