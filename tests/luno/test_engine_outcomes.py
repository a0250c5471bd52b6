"""Order outcomes are events, not exceptions: a strategy in a real engine trading on the Luno simulator keeps
running through a market disabled for a few seconds, a 500 after the order executed and 429s with
Retry-After; each unconfirmed order resolves once, and nothing is placed twice."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import moonship_luno.plugin
import pytest
from exchanges.luno import LunoSimulator
from moonship_luno import constants

from moonship_core import (
    MarketStatus,
    Order,
    OrderRequest,
    OrderStatus,
    Side,
    testing,
)
from moonship_core.testing import ScriptedAlgo, build_engine, until
from moonship_core.trading.engine import TradingEngine

from .conftest import KEY, PAIR, SECRET

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
D = Decimal
OTHER = "other"


async def started(sim: LunoSimulator) -> tuple[TradingEngine, ScriptedAlgo]:
    luno: dict[str, Any] = {
        "api_key": KEY, "api_secret": SECRET, "rest_url": sim.rest_url, "ws_url": sim.ws_url,
        "silence_timeout": 3, "replay_window": 2, "request_timeout": 2,
    }
    moonship = {
        "engine": {"name": "luno-outcomes"},
        "luno": luno,
        "markets": {"xbt": {"client": "luno", "symbol": PAIR}},
        "strategies": {"s": {"algo": "scripted_any_status", "auto_start": True, "markets": ["xbt"]}},
    }
    engine = build_engine(moonship, moonship_luno.plugin)
    (algo,) = await testing.started(engine, "s")
    await until(lambda: engine.markets["xbt"].status is MarketStatus.OPEN, what="market open")
    return engine, algo


def seed(sim: LunoSimulator) -> None:
    """Another user's liquidity: a bid at 990 000, an ask at 1 010 000, and small bids far below to pull."""
    other = sim.exchange.add_user(OTHER, "o", {"XBT": "100", "ZAR": "1000000000"})
    sim.exchange.post_limit(other, PAIR, "BID", "1", "990000.00")
    sim.exchange.post_limit(other, PAIR, "ASK", "1", "1010000.00")
    for _ in range(8):
        sim.exchange.post_limit(other, PAIR, "BID", "0.001", "500000.00")


def nudge(sim: LunoSimulator) -> None:
    """A book update, so the algo gets a callback: another user pulls one of its far bids (a disabled
    market takes cancels) or places one."""
    user = sim.exchange.users[OTHER]
    if sim.exchange.markets[PAIR].status == "DISABLED":
        far = [o for o in sim.exchange.orders.values()
               if o.user is user and o.status != "COMPLETE" and o.limit_price == D("500000")]
        sim.exchange.stop(user, far[0].order_id)
    else:
        sim.exchange.post_limit(user, PAIR, "BID", "0.001", "500000.00")


async def place(sim: LunoSimulator, algo: ScriptedAlgo, request: OrderRequest) -> Order:
    return await algo.place(request, lambda: nudge(sim))


def at_sim(sim: LunoSimulator, client_order_id: str) -> list[Any]:
    return [o for o in sim.exchange.orders.values() if o.client_order_id == client_order_id]


async def test_a_strategy_keeps_trading_through_a_disabled_market(sim: LunoSimulator) -> None:
    seed(sim)
    engine, algo = await started(sim)
    strategy = engine.strategies["s"]
    market = engine.markets["xbt"]
    try:
        # Luno disables the market: the status arrives on the market stream, the strategy is told, and the
        # order it places on that very callback comes back REJECTED, naming MarketClosed
        algo.requests.append(OrderRequest.limit(Side.BUY, D("0.01"), D("980000")))
        sim.exchange.set_status(PAIR, "DISABLED")
        await until(lambda: len(algo.placed) == 1, what="order placed on the status change")
        assert market.status is MarketStatus.CLOSED
        closed = algo.placed[0]
        assert (closed.status, closed.error) == (OrderStatus.REJECTED, "MarketClosed")
        assert closed in algo.updates

        # a few seconds disabled: every attempt is refused the same way, nothing reaches Luno
        posts = sim.stats["/api/1/postorder"]
        for _ in range(3):
            await asyncio.sleep(0.5)
            again = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D("980000")))
            assert (again.status, again.error) == (OrderStatus.REJECTED, "MarketClosed")
        assert sim.stats["/api/1/postorder"] == posts
        assert strategy.active and strategy.stop_reason is None

        # enabled again: the next order rests at Luno
        algo.requests.append(OrderRequest.limit(Side.BUY, D("0.01"), D("980000")))
        sim.exchange.set_status(PAIR, "ACTIVE")
        await until(lambda: len(algo.placed) == 5, what="order placed once active")
        resting = algo.placed[-1]
        assert market.status is MarketStatus.OPEN
        assert resting.status is OrderStatus.PENDING and resting.id
        assert len(at_sim(sim, resting.client_order_id)) == 1
        assert strategy.active and strategy.stop_reason is None
    finally:
        await engine.stop()


async def test_a_strategy_keeps_trading_through_5xx_after_execute_and_429(sim: LunoSimulator) -> None:
    seed(sim)
    engine, algo = await started(sim)
    strategy = engine.strategies["s"]
    try:
        # Luno executes the order, then answers 500; the client's retry meets 409 (the client order id is
        # taken) and finds the order: known at once, placed once
        sim.faults.fail_after_execute = 1
        first = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D("980000")))
        assert first.status is OrderStatus.PENDING and first.id
        assert len(at_sim(sim, first.client_order_id)) == 1

        # executed, 500, and Luno stays down through the client's retries: UNKNOWN, then found by its client
        # order id and resolved exactly once
        sim.faults.fail_after_execute = 1
        sim.faults.unavailable_after_execute = constants.ORDER_RETRIES
        lost = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.02"), D("970000")))
        assert lost.status is OrderStatus.UNKNOWN
        await until(lambda: algo.updates_of(lost), what="unknown order resolved")
        await asyncio.sleep(0.5)  # time for a second resolution, were there going to be one
        (resolved,) = algo.updates_of(lost)
        (real,) = at_sim(sim, lost.client_order_id)  # queried, never sent again
        assert resolved.status is OrderStatus.PENDING and resolved.id == real.order_id
        assert sim.faults.fail_before_execute == 0

        # 429 on every attempt: the order never executed, so it is REJECTED as RateLimited (not UNKNOWN)
        sim.faults.rate_limited, sim.faults.retry_after = 1000, "0.05"
        limited = await place(sim, algo, OrderRequest.limit(Side.SELL, D("0.01"), D("1030000")))
        sim.faults.rate_limited = 0
        assert (limited.status, limited.error) == (OrderStatus.REJECTED, "RateLimited")
        assert limited in algo.updates and not at_sim(sim, limited.client_order_id)

        # still trading: the resting orders are ours, a new one rests, the strategy never stopped
        after = await place(sim, algo, OrderRequest.limit(Side.BUY, D("0.01"), D("960000")))
        assert after.status is OrderStatus.PENDING
        open_now = {o.client_order_id for o in engine.markets["xbt"].open_orders("s")}
        assert open_now == {o.client_order_id for o in (first, lost, after)}
        assert strategy.active and strategy.stop_reason is None
        later = [u for u in algo.updates if u.client_order_id == lost.client_order_id]
        assert not any(u.status is OrderStatus.UNKNOWN for u in later)  # UNKNOWN resolved, never repeated
    finally:
        await engine.stop()


async def test_a_strategy_market_orders_go_out_sized_as_luno_documents(sim: LunoSimulator) -> None:
    """In a real engine: a market BUY by what it spends and a market SELL by what it sells reach Luno and
    fill; a market BUY by base quantity comes back REJECTED (NotSupported) and never reaches Luno."""
    engine, algo = await started(sim)
    seed(sim)
    try:
        refused = await place(sim, algo, OrderRequest.market(Side.BUY, quantity=D("0.01")))
        assert (refused.status, refused.error) == (OrderStatus.REJECTED, "NotSupported")
        assert refused.reason is not None and "base_quantity_market_buy" in refused.reason
        assert at_sim(sim, refused.client_order_id) == []
        buy = await place(sim, algo, OrderRequest.market(Side.BUY, quote_quantity=D("10100")))
        sell = await place(sim, algo, OrderRequest.market(Side.SELL, quantity=D("0.01")))
        for order in (buy, sell):
            await until(
                lambda o=order: any(u.status is OrderStatus.FILLED for u in algo.updates_of(o)),
                what=f"{order.client_order_id} filled",
            )
        (sent_buy,) = at_sim(sim, buy.client_order_id)
        assert sent_buy.side == "BUY" and sent_buy.counter == D("10100") and sent_buy.base == D("0.01")
        assert algo.updates_of(sell)[-1].filled_quantity == D("0.01")
    finally:
        await engine.stop()
