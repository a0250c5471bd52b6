"""Prometheus metrics: engines' published counters and strategies rendered in the text exposition format
(prometheus-client, imported at the first render: an engine nobody scrapes never loads it), and the small
listener an engine serves its own metrics on (`moonship.metrics.port`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .listener import bind_listener

if TYPE_CHECKING:
    from prometheus_client.core import Metric

logger = logging.getLogger("moonship.metrics")

#: the text exposition format `render` writes
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: seconds a client of the engine's listener gets to send its request
REQUEST_TIMEOUT = 10.0
_MAX_REQUEST = 8192


@dataclass
class EngineMetrics:
    """One engine as its metrics show it: alive or not, its published counters and its StrategyInfo."""

    name: str
    up: bool
    #: `EngineCounters.snapshot()` plus `prices` (market -> mid), as published; {} when none was
    counters: Mapping[str, Any] = field(default_factory=dict)
    strategies: Sequence[Mapping[str, Any]] = ()


def render(engines: Iterable[EngineMetrics]) -> bytes:
    """The Prometheus text exposition of `engines`."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.registry import Collector

    families = list(_families(list(engines)))

    class Families(Collector):
        def describe(self) -> list[Metric]:
            return []

        def collect(self) -> Iterator[Metric]:
            return iter(families)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())
    return generate_latest(registry)


def _families(engines: list[EngineMetrics]) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    gauge, counter = GaugeMetricFamily, CounterMetricFamily
    up = gauge("moonship_engine_up", "1 while the engine's heartbeat is alive", labels=["engine"])
    events = counter(
        "moonship_events", "Market events received (book, trade, ticker, order)",
        labels=["engine", "market", "kind"],
    )
    tick = HistogramMetricFamily(
        "moonship_tick_to_order_seconds", "From a market event in to the order it caused at the client",
        labels=["engine"],
    )
    orders = counter(
        "moonship_orders", "Orders that ended, by final status (REJECTED also by error)",
        labels=["engine", "strategy", "market", "status", "error"],
    )
    fills = counter("moonship_fills", "Fills booked", labels=["engine", "strategy", "market"])
    active = gauge("moonship_strategy_active", "1 while the strategy runs", labels=["engine", "strategy"])
    position = gauge(
        "moonship_strategy_position", "The strategy's base position",
        labels=["engine", "strategy", "market"],
    )
    profit = gauge(
        "moonship_strategy_profit", "The strategy's total profit (quote, fees included)",
        labels=["engine", "strategy"],
    )
    price = gauge("moonship_market_price", "A market's mid (or last) price", labels=["engine", "market"])
    resyncs = counter(
        "moonship_book_resyncs", "Times a market's book went out of sync", labels=["engine", "market"]
    )
    reconnects = counter(
        "moonship_reconnects", "Venue connections re-established", labels=["engine", "venue"]
    )
    waits = counter(
        "moonship_rate_limit_waits", "Requests that waited for a venue's rate limit",
        labels=["engine", "venue"],
    )
    outages = counter(
        "moonship_cache_outages", "Times the shared cache became unreachable", labels=["engine"]
    )
    for engine in engines:
        name, counters = engine.name, engine.counters
        up.add_metric([name], 1 if engine.up else 0)
        for market, kinds in counters.get("events", {}).items():
            for kind, count in kinds.items():
                events.add_metric([name, market, kind], count)
        histogram = counters.get("tick_to_order")
        if histogram is not None:
            buckets = _cumulative(histogram["bounds"], histogram["buckets"])
            tick.add_metric([name], buckets, float(histogram["sum"]))
        for strategy, market, status, error, count in counters.get("orders", ()):
            orders.add_metric([name, strategy, market, status, error], count)
        for strategy, market, count in counters.get("fills", ()):
            fills.add_metric([name, strategy, market], count)
        for market, value in counters.get("prices", {}).items():
            price.add_metric([name, market], float(value))
        for market, count in counters.get("book_resyncs", {}).items():
            resyncs.add_metric([name, market], count)
        for venue, count in counters.get("reconnects", {}).items():
            reconnects.add_metric([name, venue], count)
        for venue, count in counters.get("rate_limit_waits", {}).items():
            waits.add_metric([name, venue], count)
        if "cache_outages" in counters:
            outages.add_metric([name], counters["cache_outages"])
        for info in engine.strategies:
            strategy = str(info.get("name"))
            active.add_metric([name, strategy], 1 if info.get("active") else 0)
            profit.add_metric([name, strategy], float(info.get("total_profit") or 0))
            for market, quantity in _positions(info).items():
                position.add_metric([name, strategy, market], float(quantity or 0))
    yield from (up, events, tick, orders, fills, active, position, profit, price)
    yield from (resyncs, reconnects, waits, outages)


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Cumulative (bound, count) pairs from per-bucket counts (one more count than bounds: +Inf)."""
    from prometheus_client.utils import floatToGoString

    out: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=True):
        total += count
        out.append((floatToGoString(bound), total))  # type: ignore[no-untyped-call]
    return out


def _positions(info: Mapping[str, Any]) -> dict[str, Any]:
    """The strategy's position by market (StrategyInfo has `positions` for several markets)."""
    positions = info.get("positions")
    if isinstance(positions, Mapping):
        return dict(positions)
    markets = (info.get("config") or {}).get("markets") or [""]
    return {str(markets[0]): info.get("position")}


class MetricsServer:
    """GET /metrics on `host`:`port` for one engine: a minimal HTTP/1.1 responder on the event loop, one
    request per connection. `bind` reserves the port (a preflight check), `start` serves it."""

    def __init__(self, sock: socket.socket, source: Callable[[], bytes]) -> None:
        self._sock: socket.socket | None = sock
        self.source = source
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self._server: asyncio.Server | None = None

    @classmethod
    def bind(cls, host: str, port: int, source: Callable[[], bytes]) -> MetricsServer:
        """Listen on host:port now; MoonshipError (one line) when it cannot."""
        sock = bind_listener(host, port, what="the engine's metrics", backlog=64)
        sock.setblocking(False)
        return cls(sock, source)

    async def start(self) -> None:
        sock, self._sock = self._sock, None
        assert sock is not None, "started twice"
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=_MAX_REQUEST)
        logger.info("metrics on http://%s:%d/metrics", *self.address)

    async def close(self) -> None:
        if self._sock is not None:  # bound, never started
            self._sock.close()
            self._sock = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            method, target, *_ = head[: head.index(b"\r\n")].decode("latin-1").split(" ")
            path = target.partition("?")[0]
            if path != "/metrics":
                status, body, kind = "404 Not Found", b"not found\n", "text/plain; charset=utf-8"
            elif method not in ("GET", "HEAD"):
                status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain; charset=utf-8"
            else:
                status, body, kind = "200 OK", self.source(), CONTENT_TYPE
            headers = (
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(headers.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError):
            pass  # a client that sent no complete request, or left: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
