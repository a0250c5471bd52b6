"""Socket to book, side by side in one run: the Binance simulator (its own process) writes generated BTCUSDT
diff-depth frames (~10 level changes each) straight onto the client's websocket as fast as it takes them, and
each contender applies them to its ~1000-level book:
- Moonship's BinanceClient over the picows transport (the default where picows installs);
- the same client over the pure-Python `websockets` transport (the fallback);
- each transport alone (its handler only counts frames): what is left for parsing and the book;
- ccxt.pro's `watch_order_book` (when `ccxt` is installed; pyproject's `bench` group), on the raw /ws stream
  (the same frames without the combined stream's wrapper).
Each repetition runs every contender in turn on a fresh connection (warm-up, then the measured burst);
medians of the repetitions and Moonship's ratios.

    python bench/bench_socket.py [--messages 50000] [--repeats 5] [--levels 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from multiprocessing.connection import Connection

from bench_binance import SYMBOL, Probe, simulator

Contender = Callable[[Connection, str, argparse.Namespace], Awaitable[float]]


async def _burst(ours: Connection, count: int, levels: int, raw: bool, applied: Callable[[], int]) -> float:
    """Have the simulator send `count` frames as fast as the socket takes them; msgs/s from the first frame
    sent to the last one applied (`applied()` is the monotonic ns it was applied at, 0 until then)."""
    ours.send((count, levels, 0, True) if raw else (count, levels, 0))
    sent = await asyncio.get_running_loop().run_in_executor(None, ours.recv)
    deadline = time.monotonic() + 60
    while not applied():
        if time.monotonic() > deadline:
            raise RuntimeError("the client did not apply every update (resync?)")
        await asyncio.sleep(0.001)
    return count / ((applied() - sent[0][1]) / 1e9)


async def moonship(transport: str, ours: Connection, ws_url: str, args: argparse.Namespace) -> float:
    from moonship_binance.client import BinanceClient

    from moonship_core import ClientContext, MarketConfig
    from moonship_core.plugins import Plugins
    from moonship_core.venues.websocket import TRANSPORT_ENV

    os.environ[TRANSPORT_ENV] = transport
    probe = Probe()
    settings = BinanceClient.settings_model.model_validate(  # type: ignore[union-attr]
        {
            "rest_url": ws_url.replace("ws://", "http://"),
            "ws_url": ws_url,
            "ws_api_url": ws_url + "/ws-api/v3",
            "depth_limit": 1000,
        }
    )
    config = MarketConfig.model_validate({"client": "binance", "symbol": SYMBOL})
    resolve = partial(Plugins.load(entry_points=False).resolve, "market_clients")
    client = BinanceClient(ClientContext("btc", config, settings, resolve), probe)
    await client.get_market_info()
    await client.connect()
    assert type(client.session.stream.ws.transport).__name__.lower().startswith(transport)
    try:
        await asyncio.wait_for(probe.synced.wait(), 10)
        rate = 0.0
        for count in (min(2000, args.messages), args.messages):  # warm-up, then the measured burst
            probe.applied.clear()
            probe.awaited = target = (probe.book.sequence or 0) + count
            rate = await _burst(ours, count, args.levels, False, lambda t=target: probe.applied.get(t, 0))
        if client.feed.resyncs:
            raise RuntimeError("the client resynchronised during the run")
        return rate
    finally:
        await client.close()


async def bare(transport: str, ours: Connection, ws_url: str, args: argparse.Namespace) -> float:
    """The transport alone: a ReconnectingWebSocket whose handler only counts the frames (no parsing)."""
    from moonship_core import ReconnectingWebSocket
    from moonship_core.venues.websocket import TRANSPORT_ENV

    os.environ[TRANSPORT_ENV] = transport
    seen, target, reached = 0, 0, 0

    def on_message(raw: str | bytes) -> None:
        nonlocal seen, reached
        seen += 1
        if seen == target:
            reached = time.monotonic_ns()

    ws = ReconnectingWebSocket(ws_url + "/stream?streams=btcusdt@depth", on_message, name="bench")
    ws.start()
    try:
        await asyncio.wait_for(ws.connected.wait(), 10)
        rate = 0.0
        for count in (min(2000, args.messages), args.messages):
            seen, target, reached = 0, count, 0
            rate = await _burst(ours, count, args.levels, False, lambda: reached)  # noqa: B023 - read after
        return rate
    finally:
        await ws.stop()


async def ccxt_pro(ours: Connection, ws_url: str, args: argparse.Namespace) -> float:
    import ccxt.pro  # type: ignore[import-untyped]

    exchange = ccxt.pro.binance({"options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False}})
    exchange.urls["api"]["ws"]["spot"] = ws_url + "/ws"
    exchange.urls["api"]["public"] = ws_url.replace("ws://", "http://") + "/api/v3"
    symbol = "BTC/USDT"
    try:
        book = await asyncio.wait_for(exchange.watch_order_book(symbol, 1000), 10)
        rate = 0.0
        for count in (min(2000, args.messages), args.messages):
            target, reached = book["nonce"] + count, [0]

            async def watch(target: int = target, reached: list[int] = reached) -> None:
                nonlocal book
                while book["nonce"] < target:
                    book = await exchange.watch_order_book(symbol, 1000)
                reached[0] = time.monotonic_ns()

            watcher = asyncio.get_running_loop().create_task(watch())
            rate = await _burst(ours, count, args.levels, True, lambda reached=reached: reached[0])
            await watcher
        return rate
    finally:
        await exchange.close()


def contenders() -> dict[str, Contender]:
    found: dict[str, Contender] = {
        "moonship/picows": partial(moonship, "picows"),
        "moonship/websockets": partial(moonship, "websockets"),
        "transport/picows": partial(bare, "picows"),
        "transport/websockets": partial(bare, "websockets"),
    }
    try:
        import ccxt.pro  # noqa: F401
    except ImportError:
        print("ccxt is not installed: ccxt.pro left out")
    else:
        found["ccxt.pro"] = ccxt_pro
    return found


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=simulator, args=(theirs, args.seed), daemon=True)
    child.start()
    ws_url = await asyncio.get_running_loop().run_in_executor(None, ours.recv)
    rates: dict[str, list[float]] = {}
    try:
        for _ in range(args.repeats):
            for name, contender in contenders().items():
                rates.setdefault(name, []).append(await contender(ours, ws_url, args))
    finally:
        ours.send(None)
        child.join(5)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--levels", type=int, default=10, help="level changes per depthUpdate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a short run (CI smoke test)")
    args, _ = parser.parse_known_args(argv)  # nox hands every script the same arguments
    if args.quick:
        args.messages, args.repeats = 5000, 1
    rates = asyncio.run(run(args))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    print(
        f"Socket to book: Binance diff-depth ({args.levels} level changes per frame, "
        f"{args.messages:,} frames), medians of {args.repeats} ({datetime.now(UTC):%Y-%m-%d}, "
        f"Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores)"
    )
    ours = medians["moonship/picows"]
    for name, median in medians.items():
        runs = ", ".join(f"{r / 1000:.1f}k" for r in rates[name])
        mine = name.startswith(("moonship/picows", "transport"))
        ratio = "" if mine else f"; moonship/picows {ours / median:.2f}x"
        print(f"  {name:21} {median:>9,.0f} msgs/s {1e6 / median:6.1f} us  ({runs}){ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
