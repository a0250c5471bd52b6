"""Order book benchmark: Binance-style diff-depth messages on a ~1000-level book, and read latency.

    python bench/bench_book.py [--messages 200000] [--repeats 3] [--baseline main] [--pure] [--json out.json]

(a) messages/s of `orjson.loads` + `OrderBook.apply_update` on one core, alone and as a strategy uses the
book (best bid, best ask and the top-10 bids read after every message); (b) best bid/ask and top-10
depth reads, on an unchanged book and right after each update (which includes any cache rebuild the
update caused); (c) `quantity_up_to` five levels deep, the same two ways. Unchanged-book reads are timed
with `timeit` (its ~0.01 µs loop overhead included); after-update reads one by one with
`perf_counter_ns`, less the cost of timing an empty call.
Every measurement is also taken, interleaved in the same run, with the book.py of git revision `--baseline`
(default `main`; left out when it is this checkout's book or git cannot show it), and the ratio printed;
with `--pure`, also this checkout's book on its pure-Python loops (when the compiled ones are in use).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import timeit
import types
from bisect import insort
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter, perf_counter_ns
from typing import Any

import orjson

from moonship_core import book as book_module
from moonship_core.book import OrderBook
from moonship_core.model import Side

ROOT = Path(__file__).resolve().parent.parent
BOOK = "src/moonship_core/book.py"
SYMBOL = "BTCUSDT"
LEVELS_PER_SIDE = 500
MID_CENTS = 3_000_000  # 30000.00 USDT, on a 0.01 tick
ZERO_QTY = "0.00000000"
TARGET_MSGS = 200_000
TARGET_READING_MSGS = 150_000
TARGET_READ_US = 0.5
TARGET_FIRST_READ_US = 1.0
BUY = Side.BUY

Snapshot = tuple[list[list[str]], list[list[str]]]


def price_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}000000"


def qty_text(rng: random.Random) -> str:
    """A lognormal quantity (median ~0.2 BTC) on a 0.00001 lot, as Binance writes it."""
    units = max(1, int(rng.lognormvariate(-1.5, 1.5) * 1e5)) * 1000
    return f"{units // 10**8}.{units % 10**8:08d}"


class Feed:
    """A local copy of the book that emits realistic level changes, concentrated near the top.

    Keys as in the feed's own bookkeeping: bids -cents, asks +cents, sorted so index 0 is the best.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.keys = {
            "b": [-(MID_CENTS - i) for i in range(1, LEVELS_PER_SIDE + 1)],
            "a": [MID_CENTS + i for i in range(1, LEVELS_PER_SIDE + 1)],
        }
        self.present = {side: set(keys) for side, keys in self.keys.items()}

    def snapshot(self) -> Snapshot:
        return (
            [[price_text(-k), qty_text(self.rng)] for k in self.keys["b"]],
            [[price_text(k), qty_text(self.rng)] for k in self.keys["a"]],
        )

    def change(self, side: str) -> tuple[int, str]:
        """One change as (key, quantity text): ~20% removals, ~20% insertions, the rest new quantities."""
        rng, keys, present = self.rng, self.keys[side], self.present[side]
        n = len(keys)
        r = rng.random()
        if (r < 0.2 or n > LEVELS_PER_SIDE + 50) and n > LEVELS_PER_SIDE - 50:
            key = keys.pop(min(int(rng.expovariate(1 / 8)), n - 1))
            present.discard(key)
            return key, ZERO_QTY
        if r < 0.4 or n <= LEVELS_PER_SIDE - 50:
            other_best = self.keys["a" if side == "b" else "b"][0]
            key = keys[0] + int(rng.expovariate(1 / 6)) - 2  # may improve the best price by up to 2 ticks
            while key in present or key + other_best <= 0:  # the next free tick that does not cross
                key += 1
            insort(keys, key)
            present.add(key)
            return key, qty_text(rng)
        return keys[min(int(rng.expovariate(1 / 10)), n - 1)], qty_text(rng)

    def messages(self, count: int, first_update_id: int) -> list[bytes]:
        """`count` depthUpdate messages, as JSON, continuing from `first_update_id`."""
        rng = self.rng
        out = []
        last = first_update_id - 1
        event_ms = 1_700_000_000_000
        for _ in range(count):
            changes: dict[str, dict[int, str]] = {"b": {}, "a": {}}
            n_changes = rng.randint(7, 15)
            for _ in range(n_changes):
                side = "b" if rng.random() < 0.5 else "a"
                key, qty = self.change(side)
                changes[side][key] = qty
            first = last + 1
            last = first + rng.randint(n_changes - 1, 2 * n_changes)
            event_ms += rng.randint(0, 100)
            message = {
                "e": "depthUpdate", "E": event_ms, "s": SYMBOL, "U": first, "u": last,
                "b": [[price_text(-k), q] for k, q in changes["b"].items()],
                "a": [[price_text(k), q] for k, q in changes["a"].items()],
            }  # fmt: skip
            out.append(orjson.dumps(message))
        return out

    def matches(self, book: OrderBook) -> bool:
        """Whether `book` holds exactly the feed's price levels."""
        bids = [-int(price * 100) for price, _ in book.levels(BUY)]
        asks = [int(price * 100) for price, _ in book.levels(Side.SELL)]
        return bids == self.keys["b"] and asks == self.keys["a"]


def book_at(revision: str) -> type[OrderBook] | None:
    """OrderBook as of git `revision` (its book.py loaded beside this checkout's), or None when git cannot
    show it or it is this checkout's."""
    command = ["git", "show", f"{revision}:{BOOK}"]
    try:
        shown = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    if shown.stdout == (ROOT / BOOK).read_text():
        return None
    return load_book(shown.stdout, revision)


def pure_book() -> type[OrderBook] | None:
    """This checkout's OrderBook on its pure-Python loops (MOONSHIP_PURE_PYTHON), or None when those are
    the ones in use anyway."""
    if not book_module.COMPILED:
        return None
    os.environ["MOONSHIP_PURE_PYTHON"] = "1"
    try:
        return load_book((ROOT / BOOK).read_text(), "pure")
    finally:
        del os.environ["MOONSHIP_PURE_PYTHON"]


def load_book(source: str, label: str) -> type[OrderBook]:
    """The OrderBook of a book.py source, loaded as a module of its own inside moonship_core."""
    name = "moonship_core._book_" + re.sub(r"\W", "_", label)
    module = sys.modules[name] = types.ModuleType(name)
    module.__package__ = "moonship_core"
    exec(compile(source, f"{label}:{BOOK}", "exec"), module.__dict__)
    book_class: type[OrderBook] = module.OrderBook
    return book_class


def new_book(snapshot: Snapshot, sequence: int, book_class: type[OrderBook] = OrderBook) -> OrderBook:
    book = book_class(SYMBOL)
    book.load_snapshot(snapshot[0], snapshot[1], sequence)
    return book


def apply_rate(snapshot: Snapshot, sequence: int, raw: list[bytes], book_class: type[OrderBook]) -> float:
    """Messages per second parsed and applied to a fresh book."""
    book = new_book(snapshot, sequence, book_class)
    apply, loads = book.apply_update, orjson.loads
    start = perf_counter()
    for data in raw:
        m = loads(data)
        apply(m["b"], m["a"], m["U"], m["u"])
    return len(raw) / (perf_counter() - start)


def reading_rate(
    snapshot: Snapshot,
    sequence: int,
    raw: list[bytes],
    book_class: type[OrderBook],
    every_level: bool = False,
) -> float:
    """Messages per second parsed and applied, each followed by reading the best bid, the best ask and
    taking the top-10 bids, as a strategy uses the book; with `every_level`, as a tuple of Decimal pairs
    (what matters where a depth makes its levels Decimals only when they are read)."""
    book = new_book(snapshot, sequence, book_class)
    apply, loads = book.apply_update, orjson.loads
    start = perf_counter()
    if every_level:
        for data in raw:
            m = loads(data)
            apply(m["b"], m["a"], m["U"], m["u"])
            book.best_bid, book.best_ask, tuple(book.bids)
    else:
        for data in raw:
            m = loads(data)
            apply(m["b"], m["a"], m["U"], m["u"])
            book.best_bid, book.best_ask, book.bids  # noqa: B018
    return len(raw) / (perf_counter() - start)


def unchanged_us(book: OrderBook, stmt: str, repeats: int, number: int, **names: object) -> float:
    """Best µs per `stmt` on an unchanged book (warmed by one run)."""
    timer = timeit.Timer(stmt, globals={"book": book, "BUY": BUY, **names})
    timer.timeit(1)
    return min(timer.repeat(repeats, number)) / number * 1e6


def _noop(*args: object) -> None:
    """The timing baseline for a read."""


def after_update_us(
    snapshot: Snapshot,
    sequence: int,
    messages: list[dict[str, Any]],
    read: Callable[..., object],
    book_class: type[OrderBook],
    prepare: Callable[[OrderBook], tuple[Any, ...]] = lambda book: (),
) -> float:
    """µs of `read(book, *prepare(book))` right after each update, less an empty call's timing (both
    as means without the slowest 2%, which are the machine's hiccups rather than the book's)."""
    book = new_book(snapshot, sequence, book_class)
    apply, clock = book.apply_update, perf_counter_ns
    reads, empties = [], []
    for m in messages:
        apply(m["b"], m["a"], m["U"], m["u"])
        args = prepare(book)
        t0 = clock()
        read(book, *args)
        t1 = clock()
        _noop(book, *args)
        t2 = clock()
        reads.append(t1 - t0)
        empties.append(t2 - t1)
    return max(0.0, (_trimmed_mean(reads) - _trimmed_mean(empties)) / 1e3)


def _trimmed_mean(values: list[int]) -> float:
    values.sort()
    return statistics.fmean(values[: len(values) * 98 // 100])


def fifth_bid(book: OrderBook) -> tuple[Any, ...]:
    """The price five levels deep on the bid side (found before the timed read)."""
    return (book.depth(BUY, 5)[4][0],)


READS: dict[str, tuple[str, Callable[..., object]]] = {
    "best_bid": ("book.best_bid", lambda book: book.best_bid),
    "best_ask": ("book.best_ask", lambda book: book.best_ask),
    "depth(BUY, 10)": ("book.depth(BUY, 10)", lambda book: book.depth(BUY, 10)),
    "bids": ("book.bids", lambda book: book.bids),
    "bids, every level read": ("tuple(book.bids)", lambda book: tuple(book.bids)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Order book benchmark")
    parser.add_argument("--messages", type=int, default=200_000, help="diff-depth messages to apply")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reads", type=int, default=1_000_000, help="reads per unchanged-book timing")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline", default="main", help="git revision whose book is measured too")
    parser.add_argument("--pure", action="store_true", help="also this book on its pure-Python loops")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args, _ = parser.parse_known_args(argv)  # `nox -s bench -- ...` hands every script the same arguments

    books: dict[str, type[OrderBook]] = {"this": OrderBook}
    if args.pure and (pure := pure_book()) is not None:
        books["pure"] = pure
    baseline = book_at(args.baseline)
    if baseline is None:
        print(f"the baseline {args.baseline!r} is this checkout's book, or git cannot show it: left out")
    else:
        books[args.baseline] = baseline
    feed = Feed(random.Random(args.seed))
    snapshot, sequence = feed.snapshot(), 1_000_000
    raw = feed.messages(args.messages, sequence + 1)
    levels = 0
    for book_class in books.values():
        book = new_book(snapshot, sequence, book_class)
        levels = 0
        for data in raw:
            m = orjson.loads(data)
            levels += len(m["b"]) + len(m["a"])
            book.apply_update(m["b"], m["a"], m["U"], m["u"])
        if not feed.matches(book):
            raise SystemExit("the book does not match the feed")

    # (a) parse + apply, alone and with reads; every book in turn within each repetition
    modes: dict[str, Callable[[type[OrderBook]], float]] = {
        "parse + apply_update": lambda b: apply_rate(snapshot, sequence, raw, b),
        "+ best bid/ask + top 10 taken": lambda b: reading_rate(snapshot, sequence, raw, b),
        "+ best bid/ask + top 10 read": lambda b: reading_rate(snapshot, sequence, raw, b, every_level=True),
    }
    rates: dict[tuple[str, str], list[float]] = {(mode, name): [] for mode in modes for name in books}
    for _ in range(args.repeats):
        for mode, run in modes.items():
            for name, book_class in books.items():
                gc.collect()
                rates[mode, name].append(run(book_class))

    # (b), (c) reads; pre-parsed messages, frozen so that the collector leaves them be
    parsed = [orjson.loads(data) for data in raw[:50_000]]
    gc.collect()
    gc.freeze()
    reads: dict[str, tuple[str, Callable[..., object], Callable[[OrderBook], tuple[Any, ...]]]] = {
        name: (stmt, read, lambda book: ()) for name, (stmt, read) in READS.items()
    }
    up_to = "book.quantity_up_to(BUY, price)"
    reads["quantity_up_to(5 deep)"] = (up_to, lambda b, p: b.quantity_up_to(BUY, p), fifth_bid)
    unchanged: dict[tuple[str, str], float] = {}
    after: dict[tuple[str, str], float] = {}
    for read_name, (stmt, read, prepare) in reads.items():
        for name, book_class in books.items():
            book = new_book(snapshot, sequence, book_class)
            for m in parsed:
                book.apply_update(m["b"], m["a"], m["U"], m["u"])
            extra = dict(zip(("price",), prepare(book), strict=False))
            unchanged[read_name, name] = unchanged_us(book, stmt, args.repeats, args.reads // 5, **extra)
        for _ in range(args.repeats):
            for name, book_class in books.items():
                took = after_update_us(snapshot, sequence, parsed, read, book_class, prepare)
                after[read_name, name] = min(after.get((read_name, name), took), took)

    others = [name for name in books if name != "this"]
    print(f"{datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()}"
          f" ({platform.python_implementation()}) on {platform.machine()}; {len(book)}-level book,"
          f" {args.messages} messages of {levels / args.messages:.1f} levels; medians of {args.repeats};"
          f" this book's loops {'compiled' if book_module.COMPILED else 'pure Python'}")
    targets = dict(zip(modes, (TARGET_MSGS, None, TARGET_READING_MSGS), strict=True))
    header = "".join(f"{name:>12}{'ratio':>7}" for name in others)
    print(f"(a) {'k msgs/s':<36}{'this':>8}{header}{'target':>9}")
    for mode in modes:
        ours = statistics.median(rates[mode, "this"])
        cells = "".join(f"{statistics.median(rates[mode, n]) / 1e3:>12.1f}"
                        f"{ours / statistics.median(rates[mode, n]):>6.2f}x" for n in others)  # fmt: skip
        target = targets[mode]
        print(f"    {mode:<36}{ours / 1e3:>8.1f}{cells}{'' if target is None else f'>= {target // 1000}':>9}")
    print(f"\n(b) {'read, µs':<28}{'unchanged':>10}{'after update':>14}"
          + "".join(f"{n + ' after':>16}" for n in others))
    for read_name in reads:
        cells = "".join(f"{after[read_name, n]:>16.3f}" for n in others)
        ours = f"{unchanged[read_name, 'this']:>10.3f}{after[read_name, 'this']:>14.3f}"
        print(f"    {read_name:<28}{ours}{cells}")
    print(f"    (targets: <= {TARGET_READ_US} µs for reads of an unchanged book, <= {TARGET_FIRST_READ_US} µs"
          f" for the first read after a change)")
    if args.json:
        results = {
            "python": platform.python_version(), "machine": platform.machine(), "book_levels": len(book),
            "messages": args.messages, "levels_per_message": levels / args.messages, "repeats": args.repeats,
            "books": list(books),
            "msgs_per_s": {mode: {n: rates[mode, n] for n in books} for mode in modes},
            "read_us": {r: {n: {"unchanged": unchanged[r, n], "after_update": after[r, n]} for n in books}
                        for r in reads},
            "targets": {"apply_msgs_per_s": TARGET_MSGS, "apply_and_read_msgs_per_s": TARGET_READING_MSGS,
                        "read_us": TARGET_READ_US, "first_read_us": TARGET_FIRST_READ_US},
        }  # fmt: skip
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
