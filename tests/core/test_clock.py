"""Clock: SimClock and LiveClock, the clock-driven helpers (Backoff, RateLimiter, the sim feed), and a whole
engine (paper over sim) run under a SimClock: every time it stamps is simulated time."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from moonship_core import (
    Backoff,
    LiveClock,
    Order,
    OrderNotFound,
    OrderRequest,
    OrderStatus,
    OrderStatusUnknown,
    OrderType,
    Side,
    SimClock,
    StrategyMarket,
    Ticker,
    Trade,
    TradingAlgo,
    TradingEngine,
    hookimpl,
)
from moonship_core.book import OrderBook
from moonship_core.config import MarketConfig, parse_config
from moonship_core.contracts.client import ClientContext
from moonship_core.plugins import Plugins
from moonship_core.sim.synthetic import SimClient
from moonship_core.testing import ScriptedClient
from moonship_core.trading.market import Market
from moonship_core.trading.orders import UNKNOWN_GRACE
from moonship_core.venues.ratelimit import RateLimiter

D = Decimal
RESOLVE = partial(Plugins().resolve, "market_clients")
START = datetime(2020, 3, 12, 9, 30, tzinfo=UTC)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


async def turns(n: int = 5) -> None:
    """Let the loop run every ready task a few times over (no real time passes)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def advance(clock: SimClock, seconds: float, step: float) -> None:
    """Move simulated time forward `seconds` in steps of at most `step`, letting the woken tasks run."""
    end = clock.now() + timedelta(seconds=seconds)
    await turns()  # tasks created just now sleep from now, not from the first step
    while clock.now() < end:
        clock.advance_to(min(clock.now() + timedelta(seconds=step), end))
        await turns()


async def run_until(clock: SimClock, end: datetime) -> None:
    """Jump from one sleeper's deadline to the next until `end` (how a backtest drives the clock)."""
    await turns()
    while (due := clock.next_wakeup) is not None and due <= end:
        clock.advance_to(due)
        await turns()
    clock.advance_to(end)
    await turns()


# ---------------------------------------------------------------------- SimClock


def test_sim_clock_now_is_aware_utc_and_starts_where_told() -> None:
    start = datetime(2020, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    clock = SimClock(start)
    assert clock.now() == datetime(2020, 1, 1, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    assert clock.monotonic() == 0.0
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2020, 1, 1))


def test_sim_clock_never_goes_backwards() -> None:
    clock = SimClock(START)
    clock.advance(10)
    assert clock.now() == START + timedelta(seconds=10) and clock.monotonic() == 10
    clock.advance_to(START)  # the past: no move
    clock.advance(-5)
    assert clock.now() == START + timedelta(seconds=10) and clock.monotonic() == 10


def test_sleepers_wake_in_deadline_order_when_their_time_comes() -> None:
    async def main() -> None:
        clock = SimClock(START)
        woke: list[tuple[str, datetime]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append((name, clock.now()))

        tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3), ("a", 1), ("b", 2), ("d", 10))]
        await turns()
        assert woke == [] and clock.next_wakeup == START + timedelta(seconds=1)
        clock.advance(0.5)
        await turns()
        assert woke == []  # nothing due yet
        clock.advance(2.5)  # to 3 s: a, b and c are due, and wake in deadline order
        await turns()
        assert [n for n, _ in woke] == ["a", "b", "c"]
        assert clock.next_wakeup == START + timedelta(seconds=10)
        clock.advance_to(START + timedelta(seconds=60))
        await turns()
        assert [n for n, _ in woke] == ["a", "b", "c", "d"]
        assert clock.next_wakeup is None
        await asyncio.gather(*tasks)

    run(main)


def test_advancing_to_the_next_wakeup_wakes_that_sleeper() -> None:
    async def main() -> None:
        clock = SimClock(START)
        task = asyncio.create_task(clock.sleep(0.1 + 0.2))  # 0.30000000000000004: no whole microsecond
        await turns()
        due = clock.next_wakeup
        assert due is not None and due > START
        clock.advance_to(due)
        await turns()
        assert task.done() and clock.next_wakeup is None
        assert clock.monotonic() == (due - START).total_seconds()
        tiny = asyncio.create_task(clock.sleep(1e-9))  # rounded up, never woken early
        await turns()
        assert not tiny.done() and clock.next_wakeup == due + timedelta(microseconds=1)
        clock.advance(1e-6)
        await turns()
        assert tiny.done()

    run(main)


def test_sleeping_zero_yields_without_moving_time_and_cancelled_sleepers_are_forgotten() -> None:
    async def main() -> None:
        clock = SimClock(START)
        await clock.sleep(0)
        await clock.sleep(-1)
        assert clock.now() == START
        task = asyncio.create_task(clock.sleep(5))
        await turns()
        task.cancel()
        await turns()
        assert clock.next_wakeup is None
        clock.advance(10)  # a cancelled sleeper is not woken again

    run(main)


def test_wait_for_times_out_in_simulated_time() -> None:
    async def main() -> None:
        clock = SimClock(START)
        never = asyncio.Event()
        cancelled = False

        async def waiter() -> None:
            nonlocal cancelled
            try:
                await never.wait()
            except asyncio.CancelledError:
                cancelled = True
                raise

        task = asyncio.create_task(clock.wait_for(waiter(), 30))
        await turns()
        clock.advance(29.9)
        await turns()
        assert not task.done()  # real time passes, simulated time does not reach the timeout
        clock.advance(0.1)
        await turns()
        with pytest.raises(TimeoutError):
            await task
        assert cancelled  # the awaitable is cancelled

    run(main)


def test_wait_for_returns_the_result_in_time() -> None:
    async def main() -> None:
        clock = SimClock(START)

        async def answer() -> int:
            await clock.sleep(2)
            return 42

        task = asyncio.create_task(clock.wait_for(answer(), 5))
        await advance(clock, 3, 1)
        assert await task == 42
        assert clock.next_wakeup is None  # the timeout's sleeper is gone

        async def fails() -> None:
            raise ValueError("no")

        with pytest.raises(ValueError, match="no"):
            await clock.wait_for(fails(), 5)

    run(main)


def test_records_take_their_times_from_the_caller() -> None:
    """No hidden wall-clock read in the model: a time is given, or the record cannot be made."""
    with pytest.raises(TypeError):
        Ticker("BTCUSDT", None, None, None)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Order("1", "c", "BTCUSDT", Side.BUY, OrderType.LIMIT, OrderStatus.PENDING)  # type: ignore[call-arg]
    order = Order(
        "1", "c", "BTCUSDT", Side.BUY, OrderType.LIMIT, OrderStatus.PENDING, created=START, updated=START
    )
    later = START + timedelta(seconds=3)
    assert order.closed(OrderStatus.CANCELLED, "gone", at=later).updated == later


# ---------------------------------------------------------------------- LiveClock


def test_live_clock_reads_the_system() -> None:
    async def main() -> None:
        clock = LiveClock()
        now = clock.now()
        assert now.tzinfo is UTC and abs((now - datetime.now(UTC)).total_seconds()) < 1
        first = clock.monotonic()
        await clock.sleep(0.01)
        assert clock.monotonic() - first >= 0.009
        await clock.sleep(-1)  # nothing to wait for
        assert await clock.wait_for(asyncio.sleep(0, "done"), 1) == "done"
        with pytest.raises(TimeoutError):
            await clock.wait_for(asyncio.Event().wait(), 0.01)

    run(main)


# ---------------------------------------------------------------------- helpers on a clock


def test_backoff_and_rate_limiter_wait_on_their_clock() -> None:
    async def main() -> None:
        clock = SimClock(START)
        backoff = Backoff(4, 8, clock=clock)
        task = asyncio.create_task(backoff.wait())  # 2 to 4 s of simulated time
        await advance(clock, 1.9, 1)
        assert not task.done()
        await advance(clock, 2.2, 1)
        assert task.done()

        limiter = RateLimiter(2, 10, clock=clock)
        await limiter.acquire()
        await limiter.acquire()
        third = asyncio.create_task(limiter.acquire())
        await advance(clock, 9, 1)
        assert not third.done() and limiter.used == 2
        await advance(clock, 1, 0.5)
        assert third.done()
        limiter.pause(30)
        fourth = asyncio.create_task(limiter.acquire())
        await advance(clock, 29, 5)
        assert not fourth.done()
        await advance(clock, 1, 1)
        assert fourth.done()

    started = time.monotonic()
    run(main)
    assert time.monotonic() - started < 5  # minutes of simulated time, no real waiting


class Feed:
    """The MarketEvents of a bare client: a book, and what came."""

    def __init__(self) -> None:
        self.book = OrderBook("BTCUSDT")
        self.books = 0
        self.trades: list[Trade] = []
        self.tickers: list[Ticker] = []

    def book_changed(self) -> None:
        self.books += 1

    def trade(self, trade: Trade) -> None:
        self.trades.append(trade)

    def ticker(self, ticker: Ticker) -> None:
        self.tickers.append(ticker)

    def candle(self, candle: Any) -> None:
        pass

    def status(self, status: Any, reason: str = "") -> None:
        pass

    def order_update(self, order: Order) -> None:
        pass

    def balances(self, balances: Any) -> None:
        pass


def test_sim_feed_paces_itself_and_stamps_simulated_time() -> None:
    async def main() -> None:
        clock = SimClock(START)
        config = MarketConfig(client="sim", symbol="BTCUSDT", events_per_second=10, seed=3)
        events = Feed()
        sim = SimClient(ClientContext("m", config, {}, RESOLVE, clock=clock), events)
        steps: list[datetime] = []
        step = sim.step

        def counted() -> None:
            steps.append(clock.now())
            step()

        sim.step = counted  # type: ignore[method-assign]
        await sim.connect()
        await turns()
        assert steps == [START] and events.books == 1  # no simulated time has passed: only the snapshot
        await run_until(clock, START + timedelta(seconds=5))
        await sim.close()
        assert len(steps) == 51  # 10 events a second, on simulated time
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(steps)]
        assert all(abs(gap - 0.1) < 1e-5 for gap in gaps)
        assert events.trades and events.tickers
        for item in [*events.trades, *events.tickers]:
            assert START < item.timestamp <= START + timedelta(seconds=5)
        assert clock.next_wakeup is None  # closed: the feed sleeps no more

    run(main)


# ---------------------------------------------------------------------- the unconfirmed order


class NeverArrived(ScriptedClient):
    """Times out on placement; the exchange never heard of the order."""

    async def place_order(self, request: OrderRequest) -> Order:
        raise OrderStatusUnknown("timed out", client_order_id=request.client_order_id)

    async def get_order(self, order: Order) -> Order:
        raise OrderNotFound("unknown order")


class Inbox:
    def __init__(self) -> None:
        self.orders: list[Order] = []

    def notify_book(self, market: Market) -> None:
        pass

    def notify(self, kind: str, market: Market, payload: Any) -> None:
        if kind == "order":
            self.orders.append(payload)


def test_an_unknown_order_gives_up_after_the_grace_in_simulated_time() -> None:
    async def main() -> None:
        clock = SimClock(START)
        cfg = MarketConfig.model_validate({"client": "x", "symbol": "BTCUSDT"})
        market = Market("btc", cfg, NeverArrived, ClientContext("btc", cfg, {}, RESOLVE, clock=clock))
        inbox = Inbox()
        market.orders.attach("inbox", inbox)
        await market.open()
        sent = await market.place_order(OrderRequest.limit(Side.BUY, D("1"), D("100")), owner="inbox")
        assert sent.status is OrderStatus.UNKNOWN
        await advance(clock, UNKNOWN_GRACE - 1, 0.5)
        assert inbox.orders == [] and market.open_orders() == [sent]  # still being asked about
        await advance(clock, 60, 0.5)  # past the grace (the queries back off to 30 s apart)
        (order,) = inbox.orders
        assert order.status is OrderStatus.REJECTED and order.reason == "never reached the exchange"
        assert order.created == START
        given_up = order.updated - START
        assert timedelta(seconds=UNKNOWN_GRACE) <= given_up <= timedelta(seconds=UNKNOWN_GRACE + 30)
        await market.close()

    started = time.monotonic()
    run(main)
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------------- a whole engine on a SimClock


class Placer(TradingAlgo):
    """On its first book: buys through the ask (a taker fill) and rests a bid far below; after a few
    books cancels the bid. Checks that each order is stamped with the clock's time when it was sent."""

    seen: Placer | None = None

    async def on_start(self) -> None:
        Placer.seen = self
        self.started_at = self.clock.now()
        self.orders: list[Order] = []
        self.books = 0
        self.stamps: list[tuple[datetime, Order]] = []
        self.resting: Order | None = None
        self.cancelled: Order | None = None

    async def on_order_book(self, market: StrategyMarket) -> None:
        self.books += 1
        ask, bid = market.book.best_ask, market.book.best_bid
        if self.books == 1 and ask is not None and bid is not None:
            sent = self.clock.now()
            taken = await market.place_order(OrderRequest.limit(Side.BUY, D("0.01"), ask))
            self.stamps.append((sent, taken))
            sent = self.clock.now()
            self.resting = await market.place_order(OrderRequest.limit(Side.BUY, D("0.01"), bid / 2))
            self.stamps.append((sent, self.resting))
        elif self.books == 20 and self.resting is not None:
            sent = self.clock.now()
            self.cancelled = await market.cancel_order(self.resting)
            self.stamps.append((sent, self.cancelled))

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        self.orders.append(order)


class ClockPlugin:
    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"placer": Placer}


def test_an_engine_on_a_sim_clock_stamps_only_simulated_time() -> None:
    config = parse_config(
        {
            "moonship": {
                "engine": {"name": "backtest"},
                "markets": {
                    "btc": {
                        "client": "paper",
                        "real_client": "sim",
                        "symbol": "BTCUSDT",
                        "balances": {"BTC": 1, "USDT": 100_000},
                        "events_per_second": 20,
                        "seed": 11,
                    }
                },
                "strategies": {"s": {"algo": "placer", "auto_start": True, "markets": ["btc"]}},
            }
        }
    )
    plugins = Plugins.load(entry_points=False)
    plugins.register(ClockPlugin(), "clock-test")

    async def main() -> None:
        clock = SimClock(START)
        engine = TradingEngine.embedded(config, plugins, clock=clock)
        assert engine.started == START
        await engine.start()
        try:
            strategy = engine.strategies["s"]
            assert strategy.start_time == START
            await advance(clock, 5, 0.05)  # 100 events of the sim's feed
            algo = Placer.seen
            assert algo is not None and algo.started_at == START
            assert algo.cancelled is not None and algo.cancelled.status is OrderStatus.CANCELLED
            assert len(algo.stamps) == 3 and algo.cancelled.updated > START  # cancelled a while later
            # each order stamped when it was sent, from the clock
            for sent, order in algo.stamps:
                assert order.updated == sent and START <= order.created <= sent
            taken = [o for o in algo.orders if o.fills]
            assert taken and taken[-1].status is OrderStatus.FILLED
            times = [t for o in algo.orders for t in (o.created, o.updated, *(f.timestamp for f in o.fills))]
            assert all(START <= t <= clock.now() for t in times)
            assert any(t > START for t in times)  # later updates are stamped later, in simulated time
            trades = list(engine.markets["btc"].trades)
            assert trades and all(START < t.timestamp <= clock.now() for t in trades)
            assert START < engine.markets["btc"].ticker.timestamp <= clock.now()
            assert strategy.update_time.year == 2020
            assert strategy.info()["position"] == D("0.01")  # the taker buy
        finally:
            await engine.stop()
        assert strategy.info()["update_time"].year == 2020

    started = time.monotonic()
    run(main)
    assert time.monotonic() - started < 10
