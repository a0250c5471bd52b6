"""Engine at scale: M paper markets over the simulator x S spread_quoter strategies in one embedded engine.

    python bench/bench_scale.py [--seconds 10] [--rate 1000] [--volatility 0.01] [--sizes 5x12,10x25,20x50]
                                [--baseline REV [--repeats 2]]

Each size runs in a fresh process (so that its RSS is its own): every market is a paper market over its own
`sim` (seeded apart) asking for `--rate` events/s, the strategies are spread over the markets round robin.
After a warm-up it prints, per size: the book events handled per second (as the engine counts them; the
sim's trades and tickers come on top) against the sim steps/s asked for, the process's CPU use, the event
loop's lag (how late a 10 ms sleep wakes: p50 and p99) and VmRSS. Target (issue 18): 20 markets x 50
strategies at 20k events/s on one core with a loop lag p99 <= 10 ms and RSS <= 150 MiB.
With `--baseline REV` every size also runs on git revision REV's code (exported with `git archive`),
alternating with this checkout's `--repeats` times; both sides then run the pure-Python book loops
(MOONSHIP_PURE_PYTHON=1: an export has no compiled extension).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from moonship_core.config import parse_config
from moonship_core.trading.engine import TradingEngine

WARMUP_S = 2.0
LAG_INTERVAL_S = 0.01
#: the mid's random walk per event: 2.4 ticks (0.01 USDT at 30000) on average, 5.6 level changes per depth
#: frame; 0.05 bps moved it 12 ticks and rewrote 21.7 levels per frame, more than a whole 100 ms batch of
#: Binance's BTCUSDT diff stream (10.5 per message) in each single event
VOLATILITY = "0.01"
TARGET = {"markets": 20, "strategies": 50, "events_per_s": 20_000, "lag_p99_ms": 10.0, "rss_mib": 150.0}


def config(markets: int, strategies: int, rate: int, volatility: str = VOLATILITY) -> dict[str, Any]:
    names = [f"m{i}" for i in range(markets)]
    return {
        "moonship": {
            "engine": {"name": "scale"},
            "markets": {
                name: {
                    "client": "paper", "real_client": "sim", "symbol": "BTCUSDT", "seed": i + 1,
                    "events_per_second": rate, "volatility_bps": volatility, "candle_period": 0,
                    "balances": {"BTC": 10, "USDT": 1_000_000}, "account": name,
                }
                for i, name in enumerate(names)
            },
            "strategies": {
                f"s{i}": {
                    "algo": "spread_quoter", "auto_start": True, "markets": [names[i % markets]],
                    "trade_quantity": "0.001", "spread_bps": 2 + i % 5,
                }
                for i in range(strategies)
            },
        }
    }  # fmt: skip


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024


async def measure(
    markets: int, strategies: int, rate: int, volatility: str, seconds: float
) -> dict[str, Any]:
    engine = TradingEngine.embedded(parse_config(config(markets, strategies, rate, volatility)))
    await engine.start()
    lags: list[float] = []
    measuring = False

    async def lag_probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_INTERVAL_S
            await asyncio.sleep(LAG_INTERVAL_S)
            if measuring:
                lags.append(loop.time() - due)

    def events() -> int:
        return sum(c.book for c in engine.counters.markets.values())

    probe = asyncio.create_task(lag_probe())
    try:
        await asyncio.sleep(WARMUP_S)
        measuring = True
        count0, wall0, cpu0 = events(), time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        count1, wall1, cpu1 = events(), time.perf_counter(), time.process_time()
        measuring = False
    finally:
        probe.cancel()
        await engine.stop()
    lags.sort()
    wall = wall1 - wall0
    return {
        "markets": markets, "strategies": strategies, "asked_events_per_s": markets * rate,
        "events_per_s": round((count1 - count0) / wall), "cpu_percent": round(100 * (cpu1 - cpu0) / wall),
        "cpu_us_per_event": round(1e6 * (cpu1 - cpu0) / max(1, count1 - count0), 1),
        "lag_p50_ms": round(1e3 * lags[len(lags) // 2], 2) if lags else None,
        "lag_p99_ms": round(1e3 * lags[int(len(lags) * 0.99)], 2) if lags else None,
        "rss_mib": round(rss_mib(), 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description="Engine scale benchmark")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per size")
    parser.add_argument("--rate", type=int, default=1000, help="events per second asked of each market")
    parser.add_argument("--volatility", default=VOLATILITY, help="the sim's volatility_bps")
    parser.add_argument("--sizes", default="5x12,10x25,20x50", help="MARKETSxSTRATEGIES,...")
    parser.add_argument("--baseline", help="git revision measured too, alternating with this checkout")
    parser.add_argument("--repeats", type=int, default=2, help="alternations with --baseline")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results here")
    args, _ = parser.parse_known_args()  # `nox -s bench -- ...` hands every script the same arguments
    if args.child:
        markets, strategies = map(int, args.child.split("x"))
        print(json.dumps(asyncio.run(measure(markets, strategies, args.rate, args.volatility, args.seconds))))
        return
    runs = [("", None)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            runs = [("", {**os.environ, "MOONSHIP_PURE_PYTHON": "1"}),
                    (args.baseline, export(args.baseline, Path(tmp)))] * args.repeats  # fmt: skip
        results = []
        print(f"{'markets x strategies':<22}{'asked/s':>11}{'book ev/s':>10}{'CPU':>6}{'µs CPU/ev':>11}"
              f"{'lag p50':>9}{'lag p99':>9}{'RSS MiB':>9}")  # fmt: skip
        for size in args.sizes.split(","):
            for label, env in runs:
                r = child(size, args, env)
                r["code"] = label or "this checkout"
                results.append(r)
                print(row(r, label))
    print(f"(target: {TARGET['markets']} x {TARGET['strategies']} at {TARGET['events_per_s']} ev/s"
          f" on one core, lag p99 <= {TARGET['lag_p99_ms']:g} ms, RSS <= {TARGET['rss_mib']:g} MiB)")
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": results, "target": TARGET}, indent=2))


def row(r: dict[str, Any], label: str) -> str:
    size = f"{r['markets']} x {r['strategies']}" + (f" ({label})" if label else "")
    return (f"{size:<22}{r['asked_events_per_s']:>11}{r['events_per_s']:>10}{r['cpu_percent']:>5}%"
            f"{r['cpu_us_per_event']:>11}{r['lag_p50_ms']:>7} ms{r['lag_p99_ms']:>6} ms{r['rss_mib']:>9}")


def child(size: str, args: argparse.Namespace, env: dict[str, str] | None) -> dict[str, Any]:
    """One size measured in a fresh process (with `env`: another revision's code)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", size, "--rate", str(args.rate),
         "--volatility", args.volatility, "--seconds", str(args.seconds)],
        check=True, capture_output=True, text=True, env=env,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def export(revision: str, into: Path) -> dict[str, str]:
    """The environment that runs git revision `revision`'s core and plugins (exported under `into`)."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", revision, "src", "plugins"],
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    paths = [into / "src", *sorted((into / "plugins").glob("*/src"))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths)), "MOONSHIP_PURE_PYTHON": "1"}


if __name__ == "__main__":
    main()
