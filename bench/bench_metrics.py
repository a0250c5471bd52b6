"""Metrics benchmarks: what counting costs on the trading path, and what a scrape costs.

(a) per market event: the market's count and arrival stamp (`Market._on_book` with no subscriber), against the
    same call with counting switched off by a stub; per order: the tick-to-order observation.
(b) GET /metrics: rendering 10 engines of 20 strategies and 5 markets each (prometheus-client).

Usage: python bench/bench_metrics.py [--json FILE]   (other arguments, e.g. nox's, are ignored)
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from typing import Any

from moonship_core import EngineMetrics, MarketConfig, render_metrics
from moonship_core.contracts.client import ClientContext
from moonship_core.plugins import Plugins
from moonship_core.trading.counters import EngineCounters, event_in
from moonship_core.trading.market import Market

ROUNDS = 7


def best_ns(statement: Any, number: int) -> float:
    """Best of ROUNDS, in nanoseconds per call."""
    return min(timeit.repeat(statement, number=number, repeat=ROUNDS)) / number * 1e9


def market_event() -> dict[str, float]:
    plugins = Plugins.load()
    config = MarketConfig(client="sim", symbol="BTCUSDT")
    context = ClientContext("btc", config, {}, lambda name: plugins.resolve("market_clients", name))
    market = Market("btc", config, plugins.resolve("market_clients", "sim"), context)
    counted = best_ns(market._on_book, 1_000_000)
    # the same handler without the two counting lines: what the event costs before any counting
    subscribers = market._subscribers

    def uncounted() -> None:
        for sub in subscribers:
            sub.notify_book(market)

    bare = best_ns(uncounted, 1_000_000)
    counters = EngineCounters()
    event_in.set(time.perf_counter())
    observe = best_ns(counters.order_sent, 1_000_000)
    return {"book_event_ns": counted, "book_event_uncounted_ns": bare, "tick_to_order_observe_ns": observe}


def scrape() -> dict[str, float]:
    engines = []
    for e in range(10):
        counters = EngineCounters()
        for m in range(5):
            counters.market(f"m{m}").book = 123456
            for s in range(20):
                counters.order_ended(f"s{s}", f"m{m}", "FILLED", "")
                counters.filled(f"s{s}", f"m{m}")
        snapshot = {**counters.snapshot(), "prices": {f"m{m}": "30000.5" for m in range(5)}}
        infos = [
            {"name": f"s{s}", "active": True, "position": "0.5", "total_profit": "12.5",
             "config": {"markets": [f"m{s % 5}"]}}
            for s in range(20)
        ]
        engines.append(EngineMetrics(f"e{e}", True, snapshot, infos))
    render_metrics(engines)  # imports prometheus-client
    seconds = min(timeit.repeat(lambda: render_metrics(engines), number=20, repeat=ROUNDS)) / 20
    return {"render_10x20_ms": seconds * 1000, "render_bytes": len(render_metrics(engines))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    options, _ = parser.parse_known_args()
    results = {**market_event(), **scrape()}
    print(
        f"metrics: a book event {results['book_event_ns']:.0f} ns with counting "
        f"({results['book_event_uncounted_ns']:.0f} ns without), tick-to-order observation "
        f"{results['tick_to_order_observe_ns']:.0f} ns per order"
    )
    print(
        f"metrics: rendering 10 engines x 20 strategies x 5 markets {results['render_10x20_ms']:.1f} ms "
        f"({results['render_bytes']} bytes)"
    )
    if options.json:
        with open(options.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
