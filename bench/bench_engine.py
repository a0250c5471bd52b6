"""Engine benchmarks: tick-to-order latency with the journal and the risk checks in the path, and the resident
memory of the bundled paper example.

(b) tick-to-order: a book update enters the market (as a client writes it), the engine wakes the strategy,
    the algo decides and places an order, the order passes the market's rounding and minimums, the risk
    checks and the journal, and reaches the client's place_order. The engine runs as `moonship run` builds
    it: the SQLite journal on (every request, acknowledgement and fill recorded, written in the background),
    the default risk layer (trading state and market status) plus typical limits engine-wide and per
    strategy. The strategy quotes one side at a time and the bench fills each order after it is timed, so
    every event also journals an acknowledgement and a fill and books P/L; the strategy holds at most one
    open order. Measured per event with perf_counter; p50/p99/p99.9 over many events.
(c) resident memory (VmRSS) of `moonship run -c examples/paper.yml` (its SQLite journal on, the default
    without Redis) after it has traded for a while.

Usage: python bench/bench_engine.py [--events N] [--memory-seconds S] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from moonship_core import (
    Balance,
    Fill,
    MarketClient,
    MarketInfo,
    MarketStatus,
    MemoryBus,
    MemoryCache,
    Order,
    OrderRequest,
    OrderStatus,
    Side,
    Stores,
    StrategyMarket,
    Ticker,
    Trade,
    TradingAlgo,
    hookimpl,
)
from moonship_core.config import parse_config
from moonship_core.plugins import Plugins
from moonship_core.stores.sqlite import SqliteJournal
from moonship_core.trading.engine import TradingEngine

ROOT = Path(__file__).resolve().parents[1]
TARGET_P99_US = 50.0
TARGET_RSS_MIB = 36.0
TICK = Decimal("0.01")
SIZE = Decimal("0.001")
#: engine-wide limits: the day's loss breaker and an engine order rate far above what the bench sends per
#: second (so the rate window is kept and checked on every order, and never denies)
ENGINE_RISK = {"max_daily_loss": "500", "max_orders_per_second": 1_000_000}
#: the strategy's own limits, as the README's example sets them
STRATEGY_RISK = {
    "max_order_quantity": "0.05", "max_position": "0.2", "max_open_orders": 4, "price_band_bps": 200,
    "max_rejects": 10, "reject_window": 60,
}


class BenchClient(MarketClient):
    name = "bench"
    current: BenchClient

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.received = asyncio.Event()
        self.arrivals: list[float] = []
        #: the event loop thread's CPU time at each arrival (time.thread_time)
        self.cpu_arrivals: list[float] = []
        self.placed: list[Order] = []
        BenchClient.current = self

    async def connect(self) -> None:
        levels = [(f"{30000 - i}.00", "1.00000000") for i in range(1, 501)]
        asks = [(f"{30000 + i}.00", "1.00000000") for i in range(1, 501)]
        self.events.book.load_snapshot(levels, asks, 1)
        self.events.status(MarketStatus.OPEN)

    async def close(self) -> None:
        pass

    async def get_market_info(self) -> MarketInfo:
        return MarketInfo(self.symbol, "BTC", "USDT", TICK, Decimal("0.00001"))

    async def get_ticker(self) -> Ticker:
        return Ticker(self.symbol, None, None, None, self.context.clock.now())

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        return []

    async def place_order(self, request: OrderRequest) -> Order:
        self.arrivals.append(time.perf_counter())
        self.cpu_arrivals.append(time.thread_time())
        self.received.set()
        now = self.context.clock.now()
        order_id = str(len(self.arrivals))
        order = Order.from_request(request, self.symbol, OrderStatus.PENDING, now, order_id=order_id)
        self.placed.append(order)
        return order

    async def cancel_order(self, order: Order) -> Order:
        return order

    async def get_order(self, order: Order) -> Order:
        return order

    async def get_open_orders(self) -> list[Order]:
        return []

    async def get_balances(self) -> dict[str, Balance]:
        return {}

    def fill_last(self) -> None:
        """The exchange reports the last order placed as filled completely at its price."""
        order = self.placed.pop()
        assert order.price is not None and order.quantity is not None
        now = self.context.clock.now()
        fee = order.quantity * order.price * Decimal("0.0002")
        fill = Fill(f"t{order.id}", order.price, order.quantity, fee, "USDT", True, timestamp=now)
        self.events.order_update(order.with_fill(fill))


class JoinBid(TradingAlgo):
    """Places a bid one tick above the best bid on every book update."""

    async def on_order_book(self, market: StrategyMarket) -> None:
        bid = market.book.best_bid
        if bid is not None:
            await market.place_order(OrderRequest.limit(Side.BUY, SIZE, bid + TICK))


class Quote(TradingAlgo):
    """On every book update, one order a tick inside the touch: a bid while flat or short, else an ask."""

    async def on_order_book(self, market: StrategyMarket) -> None:
        book = market.book
        if market.position.quantity > 0:
            ask = book.best_ask
            if ask is not None:
                await market.place_order(OrderRequest.limit(Side.SELL, SIZE, ask - TICK))
        else:
            bid = book.best_bid
            if bid is not None:
                await market.place_order(OrderRequest.limit(Side.BUY, SIZE, bid + TICK))


class BenchPlugin:
    @hookimpl
    def moonship_market_clients(self) -> dict[str, type[MarketClient]]:
        return {"bench": BenchClient}

    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"join_bid": JoinBid, "quote": Quote}


async def tick_to_order(events: int, warmup: int = 2000) -> tuple[list[float], list[float]]:
    """Tick-to-order latencies (seconds) of `events` book updates after `warmup` untimed ones: wall-clock,
    and the event loop thread's CPU time (without the time the OS gave other processes)."""
    with tempfile.TemporaryDirectory() as folder:
        config = parse_config({"moonship": {
            "engine": {"name": "bench", "summary_interval": 0},
            "markets": {"m": {"client": "bench", "symbol": "BTCUSDT", "candle_period": 0}},
            "strategies": {
                "s": {"algo": "quote", "auto_start": True, "markets": ["m"], "risk": STRATEGY_RISK},
            },
            "risk": ENGINE_RISK,
        }})
        plugins = Plugins.load(entry_points=False)
        plugins.register(BenchPlugin(), "bench")
        journal = SqliteJournal(Path(folder) / "bench.sqlite")
        engine = TradingEngine.embedded(config, plugins, stores=Stores(MemoryCache(), MemoryBus(), journal))
        await engine.start()
        client = BenchClient.current
        await asyncio.wait_for(client.received.wait(), 5)  # the first order, on the initial book
        client.fill_last()
        feed, book = client.events, client.events.book
        latencies, cpu = [], []
        for i in range(warmup + events):
            client.received.clear()
            price = f"{29000 + (i % 500)}.00"
            start_cpu = time.thread_time()
            start = time.perf_counter()
            book.apply_update([(price, "2.00000000")], [], 2 + i, 2 + i)
            feed.book_changed()
            await client.received.wait()
            latencies.append(client.arrivals[-1] - start)
            cpu.append(client.cpu_arrivals[-1] - start_cpu)
            client.fill_last()
        denials = dict(engine.risk.denials)
        position = engine.orders.portfolio.position("s", "m").quantity
        await engine.stop()
        journaled = await _count_fills(Path(folder) / "bench.sqlite")
    assert not denials, denials  # every order passed every rule
    assert abs(position) <= SIZE, position
    assert journaled == warmup + events + 1, journaled  # every fill reached the journal's file
    return latencies[warmup:], cpu[warmup:]


async def _count_fills(path: Path) -> int:
    journal = SqliteJournal(path)
    await journal.open()
    try:
        return len(await journal.fills())
    finally:
        await journal.close()


def resident_memory(seconds: float) -> float:
    """VmRSS in MiB of the paper example after running for `seconds` (its journal in a scratch folder)."""
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moonship", "run", "-c", str(ROOT / "examples" / "paper.yml")],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(seconds)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        assert (Path(folder) / "moonship-data" / "paper.sqlite").exists(), "the paper example kept no journal"
    return rss_kb / 1024


def pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--memory-seconds", type=float, default=20)
    parser.add_argument("--json")
    args, _ = parser.parse_known_args()  # `nox -s bench -- ...` hands every script the same arguments
    wall, cpu = asyncio.run(tick_to_order(args.events))
    lat, cpu = sorted(wall), sorted(cpu)
    us = 1e6
    p50, p99, p999 = pct(lat, 0.5) * us, pct(lat, 0.99) * us, pct(lat, 0.999) * us
    cpu50, cpu99, cpu999 = pct(cpu, 0.5) * us, pct(cpu, 0.99) * us, pct(cpu, 0.999) * us
    mean = statistics.fmean(lat) * us
    rss = resident_memory(args.memory_seconds) if args.memory_seconds > 0 else float("nan")
    results = {
        "tick_to_order_p50_us": round(p50, 1),
        "tick_to_order_p99_us": round(p99, 1),
        "tick_to_order_p999_us": round(p999, 1),
        "tick_to_order_mean_us": round(mean, 1),
        "tick_to_order_cpu_p50_us": round(cpu50, 1),
        "tick_to_order_cpu_p99_us": round(cpu99, 1),
        "tick_to_order_cpu_p999_us": round(cpu999, 1),
        "paper_example_rss_mib": round(rss, 1),
    }
    print(
        f"tick-to-order with the journal and risk checks over {len(lat)} events: p50 {p50:.1f} us, "
        f"p99 {p99:.1f} us, p99.9 {p999:.1f} us (target p99 <= {TARGET_P99_US:g} us); on the event loop's "
        f"CPU (without time the OS gave other processes): p50 {cpu50:.1f} us, p99 {cpu99:.1f} us, "
        f"p99.9 {cpu999:.1f} us"
    )
    print(
        f"resident memory of examples/paper.yml (journal on) after {args.memory_seconds:.0f} s: "
        f"{rss:.1f} MiB (target {TARGET_RSS_MIB:g})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
