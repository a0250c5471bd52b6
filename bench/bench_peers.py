"""Moonship's order book beside its peers, on one generated Binance BTCUSDT diff-depth stream, in one run.

    python bench/bench_peers.py [--messages 50000] [--repeats 5] [--seed 1] [--baseline main]

Each contender parses every JSON frame with orjson and applies it to a ~1000-level book, (a) alone and (b)
followed by reading the best bid, the best ask and the top-10 bids, as a strategy uses the book:
- Moonship: `OrderBook.apply_update` (Decimal levels on the way out; the top 10 read level by level, since
  a depth makes its levels Decimals only when they are read);
- ccxt.pro (when `ccxt` is installed): its Binance client's own `handle_order_book_message` into
  `exchange.order_book` (float levels);
- a `sortedcontainers.SortedDict` keyed by integer ticks (when installed): the usual hand-rolled book;
- Moonship's book as of git revision `--baseline` (default `main`, unless it is this checkout's book).
Medians of the repetitions, with Moonship's ratio to each. Install the peers with `pip install ccxt
sortedcontainers` (pyproject's `bench` dependency group; `nox -s bench` does).
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from time import perf_counter
from typing import Any

import orjson
from bench_book import Feed, Snapshot, book_at, new_book

from moonship_core.book import OrderBook

Run = Callable[[Snapshot, list[bytes], bool], float]


def moonship(
    snapshot: Snapshot, raw: list[bytes], read: bool, book_class: type[OrderBook] = OrderBook
) -> float:
    """Reads every one of the top ten levels (as Decimals), as the peers do."""
    book = new_book(snapshot, 0, book_class)
    apply, loads = book.apply_update, orjson.loads
    start = perf_counter()
    if read:
        for data in raw:
            m = loads(data)
            apply(m["b"], m["a"], m["U"], m["u"])
            book.best_bid, book.best_ask, tuple(book.bids)
    else:
        for data in raw:
            m = loads(data)
            apply(m["b"], m["a"], m["U"], m["u"])
    return len(raw) / (perf_counter() - start)


def ccxt_pro(snapshot: Snapshot, raw: list[bytes], read: bool) -> float:
    import ccxt.pro  # type: ignore[import-untyped]

    exchange = ccxt.pro.binance()
    bids, asks = ([[float(p), float(q)] for p, q in side] for side in snapshot)
    book = exchange.order_book({"bids": bids, "asks": asks, "nonce": 0})
    handle, loads = exchange.handle_order_book_message, orjson.loads
    book_bids, book_asks = book["bids"], book["asks"]
    start = perf_counter()
    if read:
        for data in raw:
            handle(None, loads(data), book)
            book_bids[0], book_asks[0], book_bids[:10]
    else:
        for data in raw:
            handle(None, loads(data), book)
    return len(raw) / (perf_counter() - start)


def sorted_dict(snapshot: Snapshot, raw: list[bytes], read: bool) -> float:
    from sortedcontainers import SortedDict  # type: ignore[import-not-found, unused-ignore]

    def ticks(price: str) -> int:
        whole, _, frac = price.partition(".")
        return int(whole) * 100 + int(frac[:2] or 0)

    sides: tuple[Any, Any] = tuple(SortedDict({ticks(p): float(q) for p, q in side}) for side in snapshot)
    bids, asks = sides
    loads = orjson.loads

    def apply(levels: list[list[str]], side: Any) -> None:
        for price, qty in levels:
            quantity = float(qty)
            if quantity:
                side[ticks(price)] = quantity
            else:
                side.pop(ticks(price), None)

    start = perf_counter()
    for data in raw:
        m = loads(data)
        apply(m["b"], bids)
        apply(m["a"], asks)
        if read:
            bids.peekitem(-1), asks.peekitem(0), [(k, bids[k]) for k in islice(reversed(bids), 10)]
    return len(raw) / (perf_counter() - start)


def contenders(baseline: str) -> dict[str, Run]:
    """Moonship, Moonship's book as of git revision `baseline` (unless it is this one), and the peers that are
    installed."""
    found: dict[str, Run] = {"Moonship": moonship}
    book_class = book_at(baseline)
    if book_class is None:
        print(f"the baseline {baseline!r} is this checkout's book, or git cannot show it: left out")
    else:
        found[f"Moonship ({baseline})"] = partial(moonship, book_class=book_class)
    try:
        import ccxt.pro  # noqa: F401
    except ImportError:
        print("ccxt is not installed: ccxt.pro left out")
    else:
        found["ccxt.pro"] = ccxt_pro
    try:
        import sortedcontainers  # noqa: F401
    except ImportError:
        print("sortedcontainers is not installed: the SortedDict baseline left out")
    else:
        found["SortedDict (int ticks)"] = sorted_dict
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Order book: Moonship beside ccxt.pro and a SortedDict")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline", default="main", help="git revision whose book runs beside this one")
    args, _ = parser.parse_known_args(argv)  # `nox -s bench -- ...` hands every script the same arguments

    feed = Feed(random.Random(args.seed))
    snapshot = feed.snapshot()
    raw = feed.messages(args.messages, 1)
    runs = contenders(args.baseline)
    rates: dict[str, dict[bool, list[float]]] = {name: {False: [], True: []} for name in runs}
    for _ in range(args.repeats):  # interleaved, so that the machine's load falls on all alike
        for read in (False, True):
            for name, run in runs.items():
                gc.collect()
                rates[name][read].append(run(snapshot, raw, read))
    median = {name: {read: statistics.median(r) for read, r in by.items()} for name, by in rates.items()}
    ours = median["Moonship"]
    print(f"{datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()} on {platform.machine()}:"
          f" {args.messages} Binance diff-depth frames, medians of {args.repeats}")
    print(f"{'':<24}{'parse + apply':>16}{'ratio':>8}{'+ bid/ask + top 10':>21}{'ratio':>8}")
    for name, by in median.items():
        print(f"{name:<24}{by[False] / 1e3:>14.1f}k/s{ours[False] / by[False]:>7.2f}x"
              f"{by[True] / 1e3:>19.1f}k/s{ours[True] / by[True]:>7.2f}x")
    print("(ratio: Moonship's rate over the row's)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
