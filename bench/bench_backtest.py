"""Backtest replay benchmark: a Binance diff-depth recording (made here, in Binance's documented
combined-stream `depthUpdate` format, after a REST depth snapshot) replayed through the Binance plugin's own
BookFeed into a paper market, with a strategy that reads the book top (best bid, best ask, top-5 bids)
on every event.

    python bench/bench_backtest.py [--events 200000] [--json results.json]

Reports events/s (recorded inputs replayed per wall second, engine start and stop included) on one core.
Target: >= 100k events/s (issue 16).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import orjson

from moonship_core import Plugins, StrategyMarket, TradingAlgo, hookimpl
from moonship_core.backtest.run import run_backtest
from moonship_core.clock import epoch_ns
from moonship_core.config import MoonshipConfig

TARGET = 100_000
SYMBOL = "BTCUSDT"
LEVELS = 500
START = datetime(2024, 5, 1, tzinfo=UTC)


class TopReader(TradingAlgo):
    """Reads the book top on every book event."""

    reads = 0

    async def on_order_book(self, market: StrategyMarket) -> None:
        book = market.book
        if book.best_bid is not None and book.best_ask is not None and book.bids[:5]:
            TopReader.reads += 1


class _Algos:
    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"top_reader": TopReader}


def _price(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def write_recording(directory: Path, events: int, seed: int = 1) -> None:
    """A snapshot and `events` diff-depth frames, 1 ms apart, 1-3 levels each near the touch."""
    rng = random.Random(seed)
    mid = 3_000_000
    bids = [[_price(mid - i), "1.00000000"] for i in range(1, LEVELS + 1)]
    asks = [[_price(mid + i), "1.00000000"] for i in range(1, LEVELS + 1)]
    t0 = epoch_ns(START)
    snapshot = orjson.dumps({"lastUpdateId": 0, "bids": bids, "asks": asks}).decode()
    lines = [orjson.dumps([t0, "rest:depth", snapshot])]
    for u in range(1, events + 1):
        b: list[list[str]] = []
        a: list[list[str]] = []
        for _ in range(rng.randint(1, 3)):
            offset = rng.randint(1, 40)
            qty = "0.00000000" if rng.random() < 0.2 else f"{rng.randint(1, 500) / 100:.8f}"
            if rng.random() < 0.5:
                b.append([_price(mid - offset), qty])
            else:
                a.append([_price(mid + offset), qty])
        ns = t0 + u * 1_000_000
        data = {"e": "depthUpdate", "E": ns // 1_000_000, "s": SYMBOL, "U": u, "u": u, "b": b, "a": a}
        frame = orjson.dumps({"stream": "btcusdt@depth@100ms", "data": data}).decode()
        lines.append(orjson.dumps([ns, "ws", frame]))
    (directory / "btc").mkdir(parents=True)
    with gzip.open(directory / "btc" / "2024-05-01T00.jsonl.gz", "wb", compresslevel=1) as file:
        file.write(b"\n".join(lines) + b"\n")
    last = t0 + events * 1_000_000
    manifest = {
        "format": 1, "first_ns": t0, "last_ns": last,
        "markets": {"btc": {
            "venue": "binance", "symbol": SYMBOL, "files": ["btc/2024-05-01T00.jsonl.gz"],
            "frames": events + 1,
            "first_ns": t0, "last_ns": last,
            "info": {"symbol": SYMBOL, "base_asset": "BTC", "quote_asset": "USDT", "tick_size": "0.01",
                     "lot_size": "0.00001", "min_quantity": "0.00001", "min_notional": "5"},
        }},
    }
    (directory / "manifest.json").write_bytes(orjson.dumps(manifest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--json", type=Path)
    args, _ = parser.parse_known_args()
    config = MoonshipConfig.model_validate({
        "engine": {"name": "bench"},
        "markets": {"btc": {"client": "binance", "symbol": SYMBOL, "balances": {"BTC": 1, "USDT": 100000}}},
        "strategies": {"reader": {"algo": "top_reader", "auto_start": True, "markets": ["btc"]}},
    })
    plugins = Plugins.load()
    plugins.register(_Algos(), "bench-backtest")
    with tempfile.TemporaryDirectory() as tmp:
        write_recording(Path(tmp), args.events)
        outcome = asyncio.run(run_backtest(config, Path(tmp), plugins=plugins))
    rate = outcome.events / outcome.wall_seconds
    print(f"backtest replay: {outcome.events} Binance inputs in {outcome.wall_seconds:.2f} s: "
          f"{rate:,.0f} events/s (target >= {TARGET:,}); book top read {TopReader.reads} times")
    if args.json:
        args.json.write_bytes(orjson.dumps({"events": outcome.events, "events_per_second": round(rate)}))


if __name__ == "__main__":
    main()
