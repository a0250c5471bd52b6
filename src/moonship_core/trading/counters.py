"""EngineCounters: what one engine counts for its metrics, kept as plain ints and dicts (cheap on the trading
path) and published as one JSON-able snapshot; `moonship_core.metrics` renders snapshots for Prometheus."""

from __future__ import annotations

import bisect
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from ..contracts.client import VenueCounters

#: upper bounds (seconds) of the tick-to-order histogram's buckets; one more bucket, +Inf, follows
TICK_TO_ORDER_BUCKETS = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0,
)

#: the perf_counter() time of the market event whose callback runs in this task (a strategy's), or None
#: outside one: an order handed to the client meanwhile is that event's tick-to-order
event_in: ContextVar[float | None] = ContextVar("moonship_event_in", default=None)


class MarketCounters:
    """One market's events by kind, and its book resyncs."""

    __slots__ = ("book", "order", "resyncs", "ticker", "trade")

    def __init__(self) -> None:
        self.book = 0
        self.trade = 0
        self.ticker = 0
        self.order = 0
        self.resyncs = 0


class EngineCounters:
    def __init__(self) -> None:
        self.markets: dict[str, MarketCounters] = {}
        #: reconnects and rate-limit waits by venue, counted by the clients (`ClientContext.counters`)
        self.venues = VenueCounters()
        #: orders that ended, by (strategy, market, status, error)
        self.orders: dict[tuple[str, str, str, str], int] = {}
        #: fills booked, by (strategy, market)
        self.fills: dict[tuple[str, str], int] = {}
        self.cache_outages = 0
        #: tick-to-order observations per bucket (not cumulative; the last is +Inf), their sum and count
        self.tick_to_order = [0] * (len(TICK_TO_ORDER_BUCKETS) + 1)
        self.tick_to_order_sum = 0.0

    def market(self, name: str) -> MarketCounters:
        counters = self.markets.get(name)
        if counters is None:
            counters = self.markets[name] = MarketCounters()
        return counters

    def order_sent(self) -> None:
        """An order is being handed to the client: observe its tick-to-order if a market event caused it."""
        started = event_in.get()
        if started is not None:
            seconds = perf_counter() - started
            self.tick_to_order[bisect.bisect_left(TICK_TO_ORDER_BUCKETS, seconds)] += 1
            self.tick_to_order_sum += seconds

    def order_ended(self, strategy: str, market: str, status: str, error: str) -> None:
        key = (strategy, market, status, error)
        self.orders[key] = self.orders.get(key, 0) + 1

    def filled(self, strategy: str, market: str) -> None:
        key = (strategy, market)
        self.fills[key] = self.fills.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """Everything counted, as JSON-able data (the form `metrics.render` reads)."""
        return {
            "events": {
                name: {"book": c.book, "trade": c.trade, "ticker": c.ticker, "order": c.order}
                for name, c in self.markets.items()
            },
            "book_resyncs": {name: c.resyncs for name, c in self.markets.items()},
            "reconnects": dict(self.venues.reconnects),
            "rate_limit_waits": dict(self.venues.rate_limit_waits),
            "orders": [[*key, n] for key, n in self.orders.items()],
            "fills": [[*key, n] for key, n in self.fills.items()],
            "cache_outages": self.cache_outages,
            "tick_to_order": {
                "bounds": list(TICK_TO_ORDER_BUCKETS),
                "buckets": list(self.tick_to_order),
                "sum": self.tick_to_order_sum,
            },
        }
