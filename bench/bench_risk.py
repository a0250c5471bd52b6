"""Risk layer benchmark: what the pre-trade checks add to tick-to-order (target: at most 10 us at p99).

(a) tick-to-order with and without the risk layer: a book update enters the market, the strategy wakes,
    its algo cancels its resting bid and places a new one (a requoting market maker: one open order), and
    the order reaches the client's place_order. Once with no limits configured (the checks still run: the
    trading state and the market status), once with every rule configured engine-wide and per strategy
    (loose enough that all orders pass, so each rule does its whole work). The two engines run in
    alternating rounds so that drift in the machine's speed hits both alike.
(b) Risk.check alone, timed per call with perf_counter_ns, in the configured engine's state.

Usage: python bench/bench_risk.py [--events N] [--rounds R] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import BenchClient

from moonship_core import (
    MarketClient,
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

TARGET_US = 10.0
RISK = {
    "max_order_quantity": "1", "max_order_notional": "1000000", "max_position": "10", "max_open_orders": 5,
    "max_orders_per_second": 1_000_000, "price_band_bps": 500, "max_daily_loss": "1000", "max_rejects": 100,
}


class RequoteClient(BenchClient):
    """BenchClient whose cancels succeed (so the strategy holds one open order)."""

    name = "bench_requote"

    async def cancel_order(self, order: Order) -> Order:
        return order.closed(OrderStatus.CANCELLED, at=self.context.clock.now())


class Requote(TradingAlgo):
    """Cancels its bid and places one a tick above the best bid on every book update."""

    async def on_order_book(self, market: StrategyMarket) -> None:
        bid = market.book.best_bid
        if bid is None:
            return
        for order in market.open_orders:
            await market.cancel_order(order)
        await market.place_order(OrderRequest.limit(Side.BUY, Decimal("0.001"), bid + Decimal("0.01")))


class BenchPlugin:
    @hookimpl
    def moonship_market_clients(self) -> dict[str, type[MarketClient]]:
        return {"bench_requote": RequoteClient}

    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"requote": Requote}


async def start(risk: bool) -> tuple[TradingEngine, RequoteClient]:
    strategy: dict[str, Any] = {"algo": "requote", "auto_start": True, "markets": ["m"]}
    moonship: dict[str, Any] = {
        "engine": {"name": "risk" if risk else "plain"},
        "markets": {"m": {"client": "bench_requote", "symbol": "BTCUSDT", "candle_period": 0}},
        "strategies": {"s": strategy},
    }
    if risk:
        moonship["risk"] = RISK
        strategy["risk"] = RISK
    plugins = Plugins.load(entry_points=False)
    plugins.register(BenchPlugin(), "bench")
    engine = TradingEngine.embedded(parse_config({"moonship": moonship}), plugins)
    await engine.start()
    client = BenchClient.current
    assert isinstance(client, RequoteClient)
    await asyncio.wait_for(client.received.wait(), 5)
    return engine, client


async def measure(client: RequoteClient, events: int, offset: int) -> list[float]:
    feed, book = client.events, client.events.book
    latencies = []
    for i in range(events):
        client.received.clear()
        seq = book.sequence + 1 if book.sequence is not None else 2
        price = f"{29000 + ((offset + i) % 500)}.00"
        begin = time.perf_counter()
        book.apply_update([(price, "2.00000000")], [], seq, seq)
        feed.book_changed()
        await client.received.wait()
        latencies.append(client.arrivals[-1] - begin)
    del client.arrivals[:]
    return latencies


def check_alone(engine: TradingEngine, calls: int) -> list[float]:
    """Risk.check on its own, per call (ns -> us), on the engine's market with its open order."""
    market = engine.markets["m"]
    risk = engine.risk
    bid = market.book.best_bid or Decimal(29999)
    request = OrderRequest.limit(Side.BUY, Decimal("0.001"), bid + Decimal("0.01"))
    check, clock = risk.check, time.perf_counter_ns
    out = []
    for _ in range(calls):
        begin = clock()
        check(market, request, "s")
        out.append((clock() - begin) / 1000)
        for sent in risk._sent.values():  # keep the rate windows the size a real second leaves them
            sent.clear()
        risk._engine_sent.clear()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def run(events: int, rounds: int) -> dict[str, float]:
    plain_engine, plain = await start(risk=False)
    risky_engine, risky = await start(risk=True)
    try:
        await measure(plain, 2000, 0)  # warm up both
        await measure(risky, 2000, 0)
        base: list[float] = []
        checked: list[float] = []
        for r in range(rounds):
            base += await measure(plain, events, r * events)
            checked += await measure(risky, events, r * events)
        alone = check_alone(risky_engine, events)
        assert risky_engine.risk.denials == {}, risky_engine.risk.denials  # every order passed every rule
    finally:
        await plain_engine.stop()
        await risky_engine.stop()
    us = 1e6
    return {
        "tick_to_order_p50_us": round(pct(base, 0.5) * us, 1),
        "tick_to_order_p99_us": round(pct(base, 0.99) * us, 1),
        "tick_to_order_with_risk_p50_us": round(pct(checked, 0.5) * us, 1),
        "tick_to_order_with_risk_p99_us": round(pct(checked, 0.99) * us, 1),
        "risk_added_p50_us": round((pct(checked, 0.5) - pct(base, 0.5)) * us, 1),
        "risk_added_p99_us": round((pct(checked, 0.99) - pct(base, 0.99)) * us, 1),
        "risk_check_p50_us": round(pct(alone, 0.5), 2),
        "risk_check_p99_us": round(pct(alone, 0.99), 2),
        "events": events * rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Risk layer benchmark")
    parser.add_argument("--events", type=int, default=10000, help="events per round and engine")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", help="also write the results here")
    args, _ = parser.parse_known_args()  # `nox -s bench -- ...` hands every script the same arguments
    results = asyncio.run(run(args.events, args.rounds))
    r = results
    print(
        f"tick-to-order over {r['events']} events, no limits: p50 {r['tick_to_order_p50_us']} us, "
        f"p99 {r['tick_to_order_p99_us']} us; every rule configured: "
        f"p50 {r['tick_to_order_with_risk_p50_us']} us, p99 {r['tick_to_order_with_risk_p99_us']} us"
    )
    print(
        f"added by the risk checks: p50 {r['risk_added_p50_us']} us, p99 {r['risk_added_p99_us']} us "
        f"(target <= {TARGET_US:g} us at p99); Risk.check alone: p50 {r['risk_check_p50_us']} us, "
        f"p99 {r['risk_check_p99_us']} us"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
