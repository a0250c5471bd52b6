"""Restart reconciliation benchmark: 100 open orders over three venues, recovered by a fresh engine.

The Binance, Luno and VALR simulators run in their own process. A first embedded engine places 34/33/33
resting bids on them (one strategy per venue) and journals them to SQLite; it stops, and a few orders fill
while it is "down". A fresh TradingEngine with the same config and journal is then started and timed from
start() until every market has reconciled: every order that is still open tracked again for its strategy,
the ones that filled closed, and their fills booked once into their strategies' positions. Target: < 10 s.
Each market's own time (start() to its market open and reconciled) is printed too: the clients pace their
REST calls to the venues' limits (Luno: 300 calls a minute), which is most of the time.

Run: python bench/bench_reconcile.py [--orders N] [--filled K] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import platform
import sys
import tempfile
import time
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

D = Decimal
TARGET = 10.0
QUANTITY = D("0.001")
LUNO_KEY, LUNO_SECRET = "bench-luno-key", "bench-luno-secret"
VALR_KEY = "4f5bdd0b1b4ec0e4a3e0b7b1f1d6d1c8e0a9d0c2b6f7a8e9d0c1b2a3f4e5d6c7"
VALR_SECRET = "bench-valr-secret"
#: market name -> (venue, symbol, price of the best of our bids, price step between our bids)
MARKETS = {
    "btc-binance": ("binance", "BTCUSDT", D(29_000), D(1)),
    "xbt-luno": ("luno", "XBTZAR", D(900_000), D(100)),
    "btc-valr": ("valr", "BTCZAR", D(900_000), D(1)),
}


# ---------------------------------------------------------------------------------------- simulator side
def simulators(pipe: Connection) -> None:
    asyncio.run(_simulators(pipe))


async def _simulators(pipe: Connection) -> None:
    from exchanges.binance import BinanceSim
    from exchanges.luno import LunoSimulator
    from exchanges.valr import SimServer, ValrSimulator

    valr = ValrSimulator()
    valr.add_key(VALR_KEY, VALR_SECRET)
    valr.fund(VALR_KEY, "ZAR", "10000000")
    house = valr.exchange.account("house-BTCZAR", house=True)
    valr.exchange.place(house, "BTCZAR", "sell", kind="limit", quantity=D(1), price=D(1_000_000))
    async with BinanceSim(depth_interval=0.05) as binance, LunoSimulator() as luno, SimServer(valr) as server:
        # other participants only offer: the bid side is ours, so a taker hits our best bids first
        for i in range(1, 11):
            binance.exchange.set_level("BTCUSDT", "a", f"{30000 + i}.00", "1")
        luno.exchange.add_market("XBTZAR", "XBT", "ZAR", price_scale=2, volume_scale=4)
        luno.exchange.add_user(LUNO_KEY, LUNO_SECRET, {"XBT": "10", "ZAR": "100000000"})
        other = luno.exchange.add_user("other", "o", {"XBT": "1000", "ZAR": "1000000000"})
        luno.exchange.post_limit(other, "XBTZAR", "ASK", "1", "1000000.00")
        pipe.send(
            {
                "binance": binance.settings(request_timeout=5.0),
                "luno": {
                    "api_key": LUNO_KEY, "api_secret": LUNO_SECRET, "rest_url": luno.rest_url,
                    "ws_url": luno.ws_url, "request_timeout": 5.0,
                },
                "valr": {
                    "api_key": VALR_KEY, "api_secret": VALR_SECRET, "rest_url": server.rest_url,
                    "ws_url": server.ws_url, "request_timeout": 5.0,
                },
            }
        )
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command is None:
                return
            _, count = command  # ("fill", count): the best `count` of our bids on each venue fill completely
            filled: dict[str, list[str]] = {}
            for name, (venue, symbol, top, step) in MARKETS.items():
                price = top - step * (count - 1)
                volume = QUANTITY * count
                if venue == "binance":
                    binance.exchange.take(symbol, "SELL", volume, price)
                elif venue == "luno":
                    luno.exchange.post_limit(other, symbol, "ASK", f"{volume}", f"{price:.2f}")
                else:
                    valr.exchange.place(
                        house, symbol, "sell", kind="limit", quantity=volume, price=price, time_in_force="IOC"
                    )
                filled[name] = [f"{top - step * i}" for i in range(count)]
            await asyncio.sleep(0.2)  # let the simulators publish what happened
            pipe.send(filled)


# ---------------------------------------------------------------------------------------- engine side
def config_for(settings: dict[str, Any], journal: Path) -> Any:
    from moonship_core.config import parse_config

    return parse_config(
        {
            "moonship": {
                "engine": {"name": "bench-reconcile"},
                "journal": {"path": str(journal)},
                **settings,
                "markets": {name: {"client": venue, "symbol": symbol} for name, (venue, symbol, _, _) in
                            MARKETS.items()},
                "strategies": {
                    f"q-{name}": {
                        "algo": "spread_quoter", "auto_start": False, "markets": [name],
                        "trade_quantity": str(QUANTITY),
                    }
                    for name in MARKETS
                },
            }
        }
    )


def engine(config: Any, journal: Path) -> Any:
    from moonship_core.contracts.stores import Stores
    from moonship_core.plugins import Plugins
    from moonship_core.stores.memory import MemoryBus, MemoryCache
    from moonship_core.stores.sqlite import SqliteJournal
    from moonship_core.trading.engine import TradingEngine

    stores = Stores(MemoryCache(), MemoryBus(), SqliteJournal(journal))
    return TradingEngine.embedded(config, Plugins.load(), stores=stores, timeout=5)


def split(orders: int) -> dict[str, int]:
    """`orders` over the markets as evenly as possible (100: 34/33/33)."""
    names = list(MARKETS)
    return {name: orders // len(names) + (i < orders % len(names)) for i, name in enumerate(names)}


async def place_all(config: Any, journal: Path, orders: int) -> None:
    """The first engine: open every market, place its share of resting bids, stop (journal flushed)."""
    from moonship_core import OrderRequest, OrderStatus, Side

    first = engine(config, journal)
    await first.start()
    try:
        await asyncio.gather(*(m.open() for m in first.markets.values()))

        async def place(name: str, count: int) -> None:
            market = first.markets[name]
            _, _, top, step = MARKETS[name]
            for i in range(count):
                request = OrderRequest.limit(Side.BUY, QUANTITY, top - step * i, post_only=True)
                order = await market.place_order(request, owner=f"q-{name}")
                if order.status is not OrderStatus.PENDING:
                    raise RuntimeError(f"{name}: order {i} not resting: {order}")

        await asyncio.gather(*(place(name, count) for name, count in split(orders).items()))
        await wait_for(lambda: len(first.orders.open_orders()) == orders and all(
            o.id for o in first.orders.open_orders()), 30, "every order acknowledged")
    finally:
        await first.stop()


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.005)


async def recover(config: Any, journal: Path, orders: int, filled: dict[str, list[str]]) -> dict[str, Any]:
    """Start a fresh engine on the journal and time it until every market has reconciled."""
    second = engine(config, journal)
    manager = second.orders
    expected_open = orders - sum(len(prices) for prices in filled.values())

    def reconciled() -> bool:
        if len(manager.open_orders()) != expected_open:
            return False
        return all(
            manager.portfolio.position(f"q-{name}", name).quantity == QUANTITY * len(prices)
            for name, prices in filled.items()
        )

    opened: dict[str, float] = {}
    for name, market in second.markets.items():
        opened_by = market.open

        async def timed(name: str = name, opened_by: Any = opened_by) -> None:
            await opened_by()
            opened.setdefault(name, time.perf_counter() - began)

        market.open = timed  # type: ignore[method-assign]  # a bench's stopwatch, nothing else

    began = time.perf_counter()
    await second.start()
    started = time.perf_counter() - began
    try:
        await wait_for(reconciled, 60, "every market reconciled")
        elapsed = time.perf_counter() - began
        open_prices = {
            name: sorted(f"{o.price}" for o in manager.open_orders(name)) for name in MARKETS
        }
        for name, prices in filled.items():
            if set(prices) & set(open_prices[name]):
                raise RuntimeError(f"{name}: an order that filled while down is still open")
        fills = await second.journal.fills()
    finally:
        await second.stop()
    booked = sum(f.fill.quantity for f in fills)
    expected = QUANTITY * sum(len(p) for p in filled.values())
    if booked != expected:  # every fill once: nothing filled while the first engine ran
        raise RuntimeError(f"journal holds {booked} filled, the simulators {expected}")
    return {
        "start_s": started, "reconciled_s": elapsed, "markets_s": opened, "open": expected_open,
        "booked": str(booked),
    }


async def run(orders: int, count: int, settings: dict[str, Any], pipe: Connection) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        journal = Path(tmp) / "journal.sqlite"
        config = config_for(settings, journal)
        t0 = time.perf_counter()
        await place_all(config, journal, orders)
        setup = time.perf_counter() - t0
        loop = asyncio.get_running_loop()
        pipe.send(("fill", count))
        filled: dict[str, list[str]] = await loop.run_in_executor(None, pipe.recv)
        result = await recover(config, journal, orders, filled)
        return {"orders": orders, "filled_while_down": count * len(MARKETS), "setup_s": setup, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--filled", type=int, default=2, help="orders per venue that fill while down")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--quick", action="store_true", help="accepted for nox -s bench -- --quick")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parent, child = mp.Pipe()
    process = mp.get_context("spawn").Process(target=simulators, args=(child,), daemon=True)
    process.start()
    try:
        settings = parent.recv()
        result = asyncio.run(run(args.orders, args.filled, settings, parent))
    finally:
        parent.send(None)
        process.join(10)
        if process.is_alive():
            process.terminate()
    result["python"] = platform.python_version()
    verdict = "ok" if result["reconciled_s"] < TARGET else "OVER TARGET"
    print(
        f"reconcile: {result['orders']} open orders over {len(MARKETS)} venues "
        f"({'/'.join(str(n) for n in split(result['orders']).values())}), "
        f"{result['filled_while_down']} filled while down: reconciled in {result['reconciled_s']:.2f} s "
        f"(start() returned after {result['start_s']:.2f} s; target < {TARGET:.0f} s: {verdict}; "
        f"setup {result['setup_s']:.1f} s)"
    )
    print("  by market: " + ", ".join(f"{name} {t:.2f} s" for name, t in sorted(result["markets_s"].items())))
    if args.json is not None:
        args.json.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0 if result["reconciled_s"] < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
