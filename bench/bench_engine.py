"""Engine benchmarks: tick-to-order latency and the resident memory of the bundled paper example.

(b) tick-to-order: a book update enters the market (as a client writes it), the engine wakes the strategy,
    the algo decides and places an order, and the order reaches the client's place_order (after rounding
    and minimum checks). Measured per event with perf_counter; p50/p99 over many events.
(c) resident memory (VmRSS) of `moonship run -c examples/paper.yml` after it has traded for a while.

Usage: python bench/bench_engine.py [--events N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from moonship_core import (
    Balance,
    MarketClient,
    MarketInfo,
    MarketStatus,
    Order,
    OrderRequest,
    OrderStatus,
    Side,
    StrategyMarket,
    Ticker,
    Trade,
    TradingAlgo,
    hookimpl,
)
from moonship_core.config import parse_config
from moonship_core.plugins import Plugins
from moonship_core.trading.engine import TradingEngine

ROOT = Path(__file__).resolve().parents[1]


class BenchClient(MarketClient):
    name = "bench"
    current: BenchClient

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.received = asyncio.Event()
        self.arrivals: list[float] = []
        BenchClient.current = self

    async def connect(self) -> None:
        levels = [(f"{30000 - i}.00", "1.00000000") for i in range(1, 501)]
        asks = [(f"{30000 + i}.00", "1.00000000") for i in range(1, 501)]
        self.events.book.load_snapshot(levels, asks, 1)
        self.events.status(MarketStatus.OPEN)

    async def close(self) -> None:
        pass

    async def get_market_info(self) -> MarketInfo:
        return MarketInfo(self.symbol, "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"))

    async def get_ticker(self) -> Ticker:
        return Ticker(self.symbol, None, None, None, self.context.clock.now())

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        return []

    async def place_order(self, request: OrderRequest) -> Order:
        self.arrivals.append(time.perf_counter())
        self.received.set()
        return Order(
            "1",
            request.client_order_id,
            self.symbol,
            request.side,
            request.type,
            OrderStatus.PENDING,
            quantity=request.quantity,
            price=request.price,
            created=self.context.clock.now(),
            updated=self.context.clock.now(),
        )

    async def cancel_order(self, order: Order) -> Order:
        return order

    async def get_order(self, order: Order) -> Order:
        return order

    async def get_open_orders(self) -> list[Order]:
        return []

    async def get_balances(self) -> dict[str, Balance]:
        return {}


class JoinBid(TradingAlgo):
    """Places a bid one tick above the best bid on every book update."""

    async def on_order_book(self, market: StrategyMarket) -> None:
        bid = market.book.best_bid
        if bid is not None:
            await market.place_order(OrderRequest.limit(Side.BUY, Decimal("0.001"), bid + Decimal("0.01")))


class BenchPlugin:
    @hookimpl
    def moonship_market_clients(self) -> dict[str, type[MarketClient]]:
        return {"bench": BenchClient}

    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"join_bid": JoinBid}


async def tick_to_order(events: int) -> list[float]:
    config = parse_config(
        {
            "moonship": {
                "markets": {"m": {"client": "bench", "symbol": "BTCUSDT", "candle_period": 0}},
                "strategies": {"s": {"algo": "join_bid", "auto_start": True, "markets": ["m"]}},
            }
        }
    )
    plugins = Plugins.load(entry_points=False)
    plugins.register(BenchPlugin(), "bench")
    engine = TradingEngine.embedded(config, plugins)
    await engine.start()
    client = BenchClient.current
    await asyncio.wait_for(client.received.wait(), 5)  # the first order, on the initial book
    feed, book = client.events, client.events.book
    latencies = []
    for i in range(events):
        client.received.clear()
        price = f"{29000 + (i % 500)}.00"
        start = time.perf_counter()
        book.apply_update([(price, "2.00000000")], [], 2 + i, 2 + i)
        feed.book_changed()
        await client.received.wait()
        latencies.append(client.arrivals[-1] - start)
    await engine.stop()
    return latencies


def resident_memory(seconds: float) -> float:
    """VmRSS in MiB of the paper example after running for `seconds`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "moonship", "run", "-c", "examples/paper.yml"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(seconds)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        return rss_kb / 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--memory-seconds", type=float, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    lat = sorted(asyncio.run(tick_to_order(args.events)))
    p50 = lat[len(lat) // 2] * 1e6
    p99 = lat[int(len(lat) * 0.99)] * 1e6
    mean = statistics.fmean(lat) * 1e6
    rss = resident_memory(args.memory_seconds)
    results = {
        "tick_to_order_p50_us": round(p50, 1),
        "tick_to_order_p99_us": round(p99, 1),
        "tick_to_order_mean_us": round(mean, 1),
        "paper_example_rss_mib": round(rss, 1),
    }
    print(
        f"tick-to-order latency over {len(lat)} events: p50 {p50:.1f} us, p99 {p99:.1f} us "
        f"(target p99 <= 50 us)"
    )
    print(
        f"resident memory of examples/paper.yml after {args.memory_seconds:.0f} s: {rss:.1f} MiB (target 36)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
