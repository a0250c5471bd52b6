"""Order book benchmark: Binance-style diff-depth messages applied to a ~1000-level book, and read latency.

Run: python bench/bench_book.py [--messages N] [--repeats R] [--json results.json]
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
from bisect import bisect_left, insort
from collections.abc import Callable
from pathlib import Path
from time import perf_counter, perf_counter_ns
from typing import Any

import orjson

from moonship_core.book import OrderBook
from moonship_core.model import Side

SYMBOL = "BTCUSDT"
LEVELS_PER_SIDE = 500
MID_CENTS = 3_000_000  # 30000.00
ZERO_QTY = "0.00000000"


def price_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}000000"


def qty_text(rng: random.Random) -> str:
    units = max(1, int(rng.lognormvariate(-1.5, 1.5) * 1e5)) * 1000  # lot step 0.00001
    return f"{units // 10**8}.{units % 10**8:08d}"


class FeedModel:
    """A local book that emits realistic level changes (keys: asks +cents, bids -cents; index 0 = best)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.keys = {"b": [-(MID_CENTS - i) for i in range(1, LEVELS_PER_SIDE + 1)],
                     "a": [MID_CENTS + i for i in range(1, LEVELS_PER_SIDE + 1)]}
        self.present = {s: set(k) for s, k in self.keys.items()}

    def snapshot(self) -> tuple[list[list[str]], list[list[str]]]:
        rng = self.rng
        return ([[price_text(-k), qty_text(rng)] for k in self.keys["b"]],
                [[price_text(k), qty_text(rng)] for k in self.keys["a"]])

    def change(self, side: str) -> tuple[int, str]:
        """One level change on `side` as (key, quantity text): ~20% removals, ~20% insertions, rest updates."""
        rng, keys, present = self.rng, self.keys[side], self.present[side]
        other_best = self.keys["a" if side == "b" else "b"][0]
        n = len(keys)
        r = rng.random()
        if (r < 0.2 or n > LEVELS_PER_SIDE + 50) and n > LEVELS_PER_SIDE - 50:
            key = keys.pop(min(int(rng.expovariate(1 / 8)), n - 1))
            present.discard(key)
            return key, ZERO_QTY
        if r < 0.4 or n <= LEVELS_PER_SIDE - 50:
            key = keys[0] + int(rng.expovariate(1 / 6)) - 2  # may improve the best price by up to 2 ticks
            while key in present or key + other_best <= 0:  # a free tick that does not cross the book
                key += 1
            insort(keys, key)
            present.add(key)
            return key, qty_text(rng)
        return keys[min(int(rng.expovariate(1 / 10)), n - 1)], qty_text(rng)

    def messages(self, count: int, first_update_id: int) -> list[bytes]:
        rng = self.rng
        out = []
        u = first_update_id - 1
        event_ms = 1_700_000_000_000
        for _ in range(count):
            changes: dict[str, dict[int, str]] = {"b": {}, "a": {}}
            n_changes = rng.randint(6, 14)
            for _ in range(n_changes):
                side = "b" if rng.random() < 0.5 else "a"
                key, qty = self.change(side)
                changes[side][key] = qty
            first = u + 1
            u = first + rng.randint(n_changes - 1, 2 * n_changes)
            event_ms += rng.randint(0, 100)
            out.append(orjson.dumps({
                "e": "depthUpdate", "E": event_ms, "s": SYMBOL, "U": first, "u": u,
                "b": [[price_text(-k), q] for k, q in changes["b"].items()],
                "a": [[price_text(k), q] for k, q in changes["a"].items()],
            }))
        return out


def consistent(model: FeedModel, book: OrderBook) -> bool:
    """The book holds exactly the model's price levels (a sanity check of the generated feed)."""
    return ([-k for k in model.keys["b"]] == [int(p * 100) for p, _ in book.levels(Side.BUY)]
            and model.keys["a"] == [int(p * 100) for p, _ in book.levels(Side.SELL)])


def fresh_book(snapshot: tuple[list[list[str]], list[list[str]]], sequence: int) -> OrderBook:
    book = OrderBook(SYMBOL)
    book.load_snapshot(snapshot[0], snapshot[1], sequence)
    return book


def bench_apply(snapshot: Any, sequence: int, raw: list[bytes]) -> float:
    """Seconds to parse and apply every raw message to a fresh book."""
    book = fresh_book(snapshot, sequence)
    apply, loads = book.apply_update, orjson.loads
    t0 = perf_counter()
    for data in raw:
        m = loads(data)
        apply(m["b"], m["a"], m["U"], m["u"])
    return perf_counter() - t0


def bench_unchanged(book: OrderBook, read: Callable[[OrderBook], object], n: int) -> float:
    """µs per read of an unchanged book (the read warmed once; loop overhead included, ~0.01 µs)."""
    read(book)
    t0 = perf_counter()
    for _ in range(n // 10):
        read(book), read(book), read(book), read(book), read(book)
        read(book), read(book), read(book), read(book), read(book)
    call_overhead = _call_overhead(n)
    return max(0.0, (perf_counter() - t0 - call_overhead) / n * 1e6)


def _noop(book: OrderBook) -> object:
    return book


def _call_overhead(n: int) -> float:
    """Seconds that n calls of a trivial read function cost, to subtract from the read timings."""
    book = OrderBook()
    t0 = perf_counter()
    for _ in range(n // 10):
        _noop(book), _noop(book), _noop(book), _noop(book), _noop(book)
        _noop(book), _noop(book), _noop(book), _noop(book), _noop(book)
    return perf_counter() - t0


def bench_after_update(
    snapshot: Any, sequence: int, msgs: list[dict[str, Any]], read: Callable[[OrderBook], object]
) -> float:
    """µs per read taken right after each update (includes any cache rebuild the update caused)."""
    book = fresh_book(snapshot, sequence)
    apply, clock = book.apply_update, perf_counter_ns
    total = empty = 0
    for m in msgs:
        apply(m["b"], m["a"], m["U"], m["u"])
        t0 = clock()
        read(book)
        t1 = clock()
        _noop(book)
        t2 = clock()
        total += t1 - t0
        empty += t2 - t1
    return max(0.0, (total - empty) / len(msgs) / 1e3)


READS: dict[str, Callable[[OrderBook], object]] = {
    "best_bid": lambda b: b.best_bid,
    "best_ask": lambda b: b.best_ask,
    "depth(BUY, 10)": lambda b: b.depth(Side.BUY, 10),
    "bids": lambda b: b.bids,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="diff-depth messages to apply")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reads", type=int, default=1_000_000, help="reads per unchanged-book measurement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)

    model = FeedModel(random.Random(args.seed))
    snapshot, sequence = model.snapshot(), 1_000_000
    t0 = perf_counter()
    raw = model.messages(args.messages, sequence + 1)
    print(f"generated {len(raw)} messages ({sum(map(len, raw)) / len(raw):.0f} bytes avg,"
          f" {sum(len(orjson.loads(r)['b']) + len(orjson.loads(r)['a']) for r in raw[:1000]) / 1000:.1f}"
          f" levels avg) in {perf_counter() - t0:.1f}s")
    final = fresh_book(snapshot, sequence)
    for data in raw:
        m = orjson.loads(data)
        final.apply_update(m["b"], m["a"], m["U"], m["u"])
    if not consistent(model, final):
        raise SystemExit("book and feed model disagree")

    # (a) parse + apply throughput
    runs = []
    for _ in range(args.repeats):
        gc.collect()
        runs.append(len(raw) / bench_apply(snapshot, sequence, raw))
    apply_result = {"best": max(runs), "median": statistics.median(runs), "runs": runs}

    # (b) and (c): read latency
    parsed = [orjson.loads(r) for r in raw[:50_000]]
    del raw
    gc.collect()
    book = final
    unchanged = {name: min(bench_unchanged(book, read, args.reads) for _ in range(args.repeats))
                 for name, read in READS.items()}
    after = {name: min(bench_after_update(snapshot, sequence, parsed, read) for _ in range(args.repeats))
             for name, read in READS.items()}

    def up_to_5(b: OrderBook) -> object:
        return b.quantity_up_to(Side.BUY, price5)

    book = fresh_book(snapshot, sequence)
    price5 = book.depth(Side.BUY, 5)[4][0]
    unchanged["quantity_up_to(5 deep)"] = min(
        bench_unchanged(book, up_to_5, args.reads // 4) for _ in range(args.repeats))
    after["quantity_up_to(5 deep)"] = min(_bench_up_to(snapshot, sequence, parsed) for _ in range(args.repeats))

    print(f"\nPython {platform.python_version()} on {platform.machine()}, {args.messages} messages,"
          f" best of {args.repeats}")
    print(f"(a) parse + apply_update: best {apply_result['best'] / 1e3:,.1f}k msgs/s,"
          f" median {apply_result['median'] / 1e3:,.1f}k msgs/s (target >= 150k)")
    print(f"\n{'read (µs)':<24}{'unchanged':>10}{'after update':>14}")
    for name in unchanged:
        print(f"{name:<24}{unchanged[name]:>10.3f}{after[name]:>14.3f}")
    if args.json:
        args.json.write_bytes(orjson.dumps({
            "python": platform.python_version(), "machine": platform.machine(), "messages": args.messages,
            "repeats": args.repeats, "apply_msgs_per_s": apply_result,
            "read_us": {"unchanged": unchanged, "after_update": after},
        }, option=orjson.OPT_INDENT_2))
    return 0


def _bench_up_to(snapshot: Any, sequence: int, msgs: list[dict[str, Any]]) -> float:
    """µs per `quantity_up_to` five levels deep on the bid side, right after each update."""
    book = fresh_book(snapshot, sequence)
    apply, clock, depth = book.apply_update, perf_counter_ns, book.depth
    total = empty = 0
    for m in msgs:
        apply(m["b"], m["a"], m["U"], m["u"])
        price = depth(Side.BUY, 5)[4][0]
        t0 = clock()
        book.quantity_up_to(Side.BUY, price)
        t1 = clock()
        _noop(book)
        t2 = clock()
        total += t1 - t0
        empty += t2 - t1
    return max(0.0, (total - empty) / len(msgs) / 1e3)


if __name__ == "__main__":
    sys.exit(main())
