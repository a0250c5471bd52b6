"""Binance market-data benchmark: simulator diff-depth stream -> BinanceClient -> order book.

The simulator runs in its own process (one core), the client in this one. Phase 1 sends a burst of
diffs as fast as the socket takes them and measures the rate the client sustains; phase 2 paces the
stream at fractions of that rate and measures frame-to-book latency (simulator send to book updated,
both on the system-wide monotonic clock), p50 and p99.

Run: python bench/bench_binance.py [--messages N] [--levels K] [--json results.json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SYMBOL = "BTCUSDT"
LEVELS_PER_SIDE = 500
MID_CENTS = 3_000_000  # 30000.00


def price_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}000000"


def qty_text(rng: random.Random) -> str:
    units = max(1, int(rng.lognormvariate(-1.5, 1.5) * 1e5)) * 1000
    return f"{units // 10**8}.{units % 10**8:08d}"


# ---------------------------------------------------------------------------------------- simulator side
def simulator(pipe: Connection, seed: int) -> None:
    asyncio.run(_simulator(pipe, seed))


async def _simulator(pipe: Connection, seed: int) -> None:
    from exchanges.binance import BinanceSim

    rng = random.Random(seed)
    async with BinanceSim(depth_interval=3600) as sim:
        state = sim.exchange.symbols[SYMBOL]
        bids = {MID_CENTS - i for i in range(1, LEVELS_PER_SIDE + 1)}
        asks = {MID_CENTS + i for i in range(1, LEVELS_PER_SIDE + 1)}
        for cents in bids:
            sim.exchange.set_level(SYMBOL, "b", price_text(cents), qty_text(rng))
        for cents in asks:
            sim.exchange.set_level(SYMBOL, "a", price_text(cents), qty_text(rng))
        state.take_diff()
        pipe.send(sim.ws_url)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command is None:
                return
            count, levels, rate, *raw = command  # raw: unwrapped frames on a /ws/ connection (ccxt.pro's)
            frames, ids = _frames(state, rng, bids, asks, count, levels, combined=not raw)
            pipe.send(await _send(_stream_transport(sim, "/ws/" if raw else "/stream"), frames, ids, rate))


def _frames(
    state: Any, rng: random.Random, bids: set[int], asks: set[int], count: int, levels: int, *, combined: bool
) -> tuple[list[str], list[int]]:
    """`count` depthUpdate frames of `levels` level changes each near the top (20% deletions), in the combined
    stream's wrapper or raw."""
    frames, ids = [], []
    stream = f"{SYMBOL.lower()}@depth@100ms"
    for _ in range(count):
        changes: dict[str, list[list[str]]] = {"b": [], "a": []}
        for _ in range(levels):
            side = "b" if rng.random() < 0.5 else "a"
            book = bids if side == "b" else asks
            offset = int(rng.expovariate(1 / 20)) + 1
            cents = MID_CENTS - offset if side == "b" else MID_CENTS + offset
            if cents in book and rng.random() < 0.2 and len(book) > 50:
                book.discard(cents)
                changes[side].append([price_text(cents), "0.00000000"])
            else:
                book.add(cents)
                changes[side].append([price_text(cents), qty_text(rng)])
        state.update_id += 1
        data = {
            "e": "depthUpdate",
            "E": int(time.time() * 1000),
            "s": SYMBOL,
            "U": state.update_id,
            "u": state.update_id,
            "b": changes["b"],
            "a": changes["a"],
        }
        frames.append(orjson.dumps({"stream": stream, "data": data} if combined else data).decode())
        ids.append(state.update_id)
    return frames, ids


def _ws_frame(text: str) -> bytes:
    """One unmasked server-to-client text frame (RFC 6455)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


def _stream_transport(sim: Any, path: str) -> asyncio.WriteTransport:
    """The socket of the client's market-stream connection on `path` (or below it, ending in /), which
    uvicorn's protocol object holds."""
    for protocol in sim._server._server.server_state.connections:
        scope = getattr(protocol, "scope", None)
        if not scope or scope.get("type") != "websocket":
            continue
        if scope.get("path") == path or (path.endswith("/") and scope.get("path", "").startswith(path)):
            return protocol.transport  # type: ignore[no-any-return]
    raise RuntimeError("no market-stream connection")


async def _send(
    transport: asyncio.WriteTransport, frames: list[str], ids: list[int], rate: float
) -> list[tuple[int, int]]:
    """Write every frame on the stream connection's socket (at `rate` per second, or as fast as the socket
    takes them if 0). Frames are pre-encoded and written straight to the transport, so the simulator's own
    ASGI stack is not what gets measured."""
    raw = [_ws_frame(f) for f in frames]
    sent: list[tuple[int, int]] = []
    clock = time.monotonic_ns
    start = clock()
    if not rate:
        for i in range(0, len(raw), 64):
            while transport.get_write_buffer_size() > 1 << 20:  # noqa: ASYNC110 - no event for a drained buffer
                await asyncio.sleep(0.0005)
            stamp = clock()
            transport.write(b"".join(raw[i : i + 64]))
            sent.extend((u, stamp) for u in ids[i : i + 64])
        return sent
    interval = 1e9 / rate
    for i, frame in enumerate(raw):
        due = start + int(i * interval)
        now = clock()
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
        sent.append((ids[i], clock()))
        transport.write(frame)
    return sent


# ---------------------------------------------------------------------------------------- client side
class Probe:
    """MarketEvents that stamp every book change; everything else is ignored."""

    def __init__(self) -> None:
        from moonship_core import OrderBook

        self.book = OrderBook(SYMBOL, price_decimals=8)
        self.applied: dict[int, int] = {}
        self.synced = asyncio.Event()
        self.awaited = -1  # the update id that sets `reached`
        self.reached = asyncio.Event()

    def book_changed(self) -> None:
        seq = self.book.sequence
        if seq is not None:
            self.applied[seq] = time.monotonic_ns()
            if seq == self.awaited:
                self.reached.set()

    def status(self, status: Any, reason: str = "") -> None:
        if status.value == "OPEN":
            self.synced.set()

    def trade(self, *a: Any) -> None: ...

    def ticker(self, *a: Any) -> None: ...

    def candle(self, *a: Any) -> None: ...

    def order_update(self, *a: Any) -> None: ...

    def balances(self, *a: Any) -> None: ...


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from moonship_binance.client import BinanceClient

    from moonship_core import ClientContext
    from moonship_core.config import MarketConfig
    from moonship_core.plugins import Plugins

    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=simulator, args=(theirs, args.seed), daemon=True)
    child.start()
    loop = asyncio.get_running_loop()
    ws_url = await loop.run_in_executor(None, ours.recv)
    rest_url = ws_url.replace("ws://", "http://")
    probe = Probe()
    settings = BinanceClient.settings_model.model_validate(  # type: ignore[union-attr]
        {"rest_url": rest_url, "ws_url": ws_url, "ws_api_url": ws_url + "/ws-api/v3", "depth_limit": 1000}
    )
    config = MarketConfig.model_validate({"client": "binance", "symbol": SYMBOL})
    resolve = partial(Plugins.load(entry_points=False).resolve, "market_clients")
    client = BinanceClient(ClientContext("btc", config, settings, resolve), probe)
    await client.get_market_info()
    await client.connect()
    await asyncio.wait_for(probe.synced.wait(), 10)

    async def phase(count: int, rate: float) -> tuple[float, list[float], float]:
        probe.applied.clear()
        probe.reached.clear()
        probe.awaited = (probe.book.sequence or 0) + count
        ours.send((count, args.levels, rate))
        sent = await loop.run_in_executor(None, ours.recv)
        last = sent[-1][0]
        try:
            await asyncio.wait_for(probe.reached.wait(), 30)
        except TimeoutError:
            raise RuntimeError("the client did not apply every update (resync?)") from None
        latencies = [(probe.applied[u] - t) / 1e3 for u, t in sent]  # microseconds
        span = (probe.applied[last] - sent[0][1]) / 1e9
        send_span = (sent[-1][1] - sent[0][1]) / 1e9
        return count / span, latencies, count / send_span if send_span else float("inf")

    try:
        await phase(min(2000, args.messages), 0)  # warm-up
        rates = []
        for _ in range(args.repeats):
            rate, _, send_rate = await phase(args.messages, 0)
            rates.append((rate, send_rate))
        best, send_best = max(rates)
        results: dict[str, Any] = {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "levels_per_message": args.levels,
            "max_rate_msgs_per_s": round(best),
            "max_rate_levels_per_s": round(best * args.levels),
            "simulator_send_rate_msgs_per_s": round(send_best),
            "paced": [],
        }
        for fraction in (0.5, 0.8):
            target = best * fraction
            count = max(1000, min(args.messages, int(target * args.paced_seconds)))
            achieved, latencies, _ = await phase(count, target)
            results["paced"].append(
                {
                    "target_msgs_per_s": round(target),
                    "achieved_msgs_per_s": round(achieved),
                    "p50_us": round(percentile(latencies, 0.50), 1),
                    "p99_us": round(percentile(latencies, 0.99), 1),
                    "mean_us": round(statistics.fmean(latencies), 1),
                }
            )
        results["resyncs"] = client.feed.resyncs
        results["book_levels"] = len(probe.book)
        return results
    finally:
        await client.close()
        ours.send(None)
        child.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--levels", type=int, default=10, help="level changes per depthUpdate")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="a short run (CI smoke test)")
    parser.add_argument("--uvloop", action="store_true", help="run the client on uvloop")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.repeats, args.paced_seconds = 5000, 1, 0.5
    if args.uvloop:
        import uvloop

        results = uvloop.run(run(args))
    else:
        results = asyncio.run(run(args))
    results["loop"] = "uvloop" if args.uvloop else "asyncio"
    print(
        f"Binance diff-depth -> client -> book ({args.levels} levels per message, "
        f"Python {results['python']}, {results['loop']})"
    )
    print(
        f"  sustained: {results['max_rate_msgs_per_s']:,} msgs/s "
        f"({results['max_rate_levels_per_s']:,} levels/s); "
        f"simulator sent at {results['simulator_send_rate_msgs_per_s']:,} msgs/s"
    )
    for paced in results["paced"]:
        print(
            f"  paced at {paced['target_msgs_per_s']:,} msgs/s: frame-to-book p50 {paced['p50_us']} us,"
            f" p99 {paced['p99_us']} us"
        )
    print(f"  resyncs: {results['resyncs']}, book levels: {results['book_levels']}")
    if args.json:
        args.json.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
