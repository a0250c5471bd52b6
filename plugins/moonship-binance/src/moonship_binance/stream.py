"""Market data: one combined-stream websocket for every Binance market of the engine, and per market the
documented book procedure (buffer diffs, snapshot, replay, resync on any gap) plus public trades.

The connection reconnects with backoff and jitter, ahead of Binance's 24-hour cut, on `serverShutdown`, and
when no frame has arrived for `stale_after` seconds. Every disconnect and resync tells the market UNSYNCED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from moonship_core import (
    Backoff,
    BookGap,
    LiveClock,
    MarketEvents,
    MarketStatus,
    MoonshipError,
    RateLimited,
    Side,
    Trade,
    from_ms,
)
from moonship_core import Clock as CoreClock

Snapshot = Callable[[str, int], Awaitable[dict[str, Any]]]
Handler = Callable[[dict[str, Any]], None]
_MAX_BUFFER = 10_000  # diffs buffered while a snapshot loads; more means the snapshot is hopeless
_CONTROL_SPACING = 0.25  # seconds between control messages (Binance allows 5 incoming per second)


class BookFeed:
    """One market's book and trades on the shared stream."""

    def __init__(
        self,
        symbol: str,
        events: MarketEvents,
        snapshot: Snapshot,
        *,
        depth_limit: int,
        speed: str,
        synced_status: Callable[[], MarketStatus],
        logger: logging.Logger,
        clock: CoreClock | None = None,
    ) -> None:
        self.symbol = symbol
        self.clock = clock or LiveClock()
        self.events = events
        self._snapshot = snapshot
        self._depth_limit = depth_limit
        self._synced_status = synced_status
        self.logger = logger
        low = symbol.lower()
        self.depth_stream = f"{low}@depth@{speed}" if speed != "1000ms" else f"{low}@depth"
        self.trade_stream = f"{low}@trade"
        self.synced = False
        self.resyncs = 0
        self._buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def routes(self) -> dict[str, Handler]:
        return {self.depth_stream: self.on_depth, self.trade_stream: self.on_trade}

    # ------------------------------------------------------------------ hot path
    def on_depth(self, data: dict[str, Any]) -> None:
        if self.synced:
            try:
                applied = self.events.book.apply_update(data["b"], data["a"], data["U"], data["u"])
            except BookGap as gap:
                self._unsync(str(gap))
                self._buffer.append(data)
                self._start_sync()
                return
            except (KeyError, TypeError, ValueError) as exc:
                self._unsync(f"malformed depth update: {exc!r}")
                return
            if applied:
                self.events.book_changed()
            return
        if len(self._buffer) >= _MAX_BUFFER:
            self._buffer.clear()
            if self._task is not None:
                self._task.cancel()
                self._task = None
        self._buffer.append(data)
        self._start_sync()

    def on_trade(self, data: dict[str, Any]) -> None:
        try:
            trade = Trade(
                str(data["t"]),
                self.symbol,
                Decimal(data["p"]),
                Decimal(data["q"]),
                Side.SELL if data["m"] else Side.BUY,
                from_ms(data["T"]),
            )
        except (KeyError, TypeError, ArithmeticError) as exc:
            self.logger.warning("%s: malformed trade event ignored: %r", self.symbol, exc)
            return
        self.events.trade(trade)

    # ------------------------------------------------------------------ sync
    def reset(self, reason: str) -> None:
        """The connection went away: the book cannot be trusted until the next sync."""
        self._unsync(reason, log=False)

    def _unsync(self, reason: str, *, log: bool = True) -> None:
        self.synced = False
        self._buffer.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if log:
            self.resyncs += 1
            self.logger.warning("%s book resync: %s", self.symbol, reason)
        self.events.status(MarketStatus.UNSYNCED, reason)

    def start(self) -> None:
        """The connection carries this feed's streams now: load the book (diffs buffer meanwhile)."""
        self._start_sync()

    def _start_sync(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        """Binance's procedure: snapshot no older than the first buffered diff, drop what it covers, replay.

        Started as soon as the stream is subscribed (not at the first diff), so a quiet market syncs too;
        a snapshot that predates the subscription shows up as a gap at the next diff and is redone."""
        backoff = Backoff(0.1, 5.0, clock=self.clock)
        while True:
            try:
                snap = await self._snapshot(self.symbol, self._depth_limit)
            except RateLimited as exc:
                await asyncio.sleep(exc.retry_after or 1.0)
                continue
            except MoonshipError as exc:
                self.logger.warning("%s depth snapshot failed: %s", self.symbol, exc)
                await backoff.wait()
                continue
            last = int(snap["lastUpdateId"])
            buffer = self._buffer
            if buffer and last + 1 < int(buffer[0]["U"]):  # snapshot older than the stream: fetch again
                await backoff.wait()
                continue
            pending = [d for d in buffer if int(d["u"]) > last]
            book = self.events.book
            try:
                if pending and int(pending[0]["U"]) > last + 1:
                    raise BookGap(last + 1, int(pending[0]["U"]))
                book.load_snapshot(snap["bids"], snap["asks"], last)
                for data in pending:
                    book.apply_update(data["b"], data["a"], data["U"], data["u"])
            except (BookGap, KeyError, TypeError, ValueError) as exc:
                self.logger.warning("%s book sync failed (%s): waiting for fresh diffs", self.symbol, exc)
                buffer.clear()
                self._task = None
                return
            buffer.clear()
            self.synced = True
            self._task = None
            self.logger.info(
                "%s book synced at update %d (%d levels)", self.symbol, book.sequence or 0, len(book)
            )
            self.events.book_changed()
            self.events.status(self._synced_status())
            return

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class MarketStream:
    """The engine's one market-data websocket: combined streams of every feed, live (un)subscribe."""

    def __init__(
        self,
        base_url: str,
        *,
        stale_after: float,
        reconnect_after: float,
        max_delay: float,
        open_timeout: float,
        logger: logging.Logger,
        clock: CoreClock | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.stale_after = stale_after
        self.reconnect_after = reconnect_after
        self.open_timeout = open_timeout
        self.logger = logger
        self.feeds: list[BookFeed] = []
        self.connects = 0
        #: called when a connection is made again (the engine's metrics)
        self.on_reconnect: Callable[[], None] | None = None
        self.malformed = 0
        self._routes: dict[str, tuple[Handler, ...]] = {}
        self._subscribed: set[str] = set()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(0.2, max_delay, clock=clock)
        self._control_ids = 0
        self._control_lock = asyncio.Lock()
        self._last_control = 0.0
        self._last_frame = 0.0
        self._close_reason = ""
        self._closing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ membership
    async def add(self, feed: BookFeed) -> None:
        self.feeds.append(feed)
        self._rebuild()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        else:
            await self._sync_subscriptions()

    async def remove(self, feed: BookFeed) -> None:
        if feed in self.feeds:
            self.feeds.remove(feed)
        await feed.stop()
        self._rebuild()
        if not self.feeds:
            await self.stop()
        else:
            await self._sync_subscriptions()

    def _rebuild(self) -> None:
        routes: dict[str, list[Handler]] = {}
        for feed in self.feeds:
            for stream, handler in feed.routes().items():
                routes.setdefault(stream, []).append(handler)
        self._routes = {stream: tuple(handlers) for stream, handlers in routes.items()}

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sync_subscriptions(self) -> None:
        """Bring the open connection's subscriptions in line with the feeds (SUBSCRIBE/UNSUBSCRIBE)."""
        async with self._control_lock:
            ws = self._ws
            if ws is None:
                return
            wanted = set(self._routes)
            for method, streams in (
                ("SUBSCRIBE", wanted - self._subscribed),
                ("UNSUBSCRIBE", self._subscribed - wanted),
            ):
                if not streams:
                    continue
                wait = self._last_control + _CONTROL_SPACING - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._control_ids += 1
                message = {"method": method, "params": sorted(streams), "id": self._control_ids}
                try:
                    await ws.send(orjson.dumps(message).decode())
                except WebSocketException:
                    return  # the reconnect subscribes everything
                self._last_control = time.monotonic()
                if method == "SUBSCRIBE":
                    self._subscribed |= streams
                    for feed in self.feeds:
                        if feed.depth_stream in streams:
                            feed.start()
                else:
                    self._subscribed -= streams

    # ------------------------------------------------------------------ connection
    async def _run(self) -> None:
        while self.feeds:
            streams = sorted(self._routes)
            url = f"{self.base_url}/stream?streams={'/'.join(streams)}"
            reason = "connection lost"
            healthy = False
            try:
                async with connect(
                    url,
                    open_timeout=self.open_timeout,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=1,
                    max_size=2**24,
                    max_queue=None,
                ) as ws:
                    self.connects += 1
                    if self.connects > 1 and self.on_reconnect is not None:
                        self.on_reconnect()
                    self._ws, self._subscribed, self._close_reason = ws, set(streams), ""
                    self.logger.info("Binance market stream connected (%d streams)", len(streams))
                    for feed in self.feeds:
                        if feed.depth_stream in self._subscribed:
                            feed.start()
                    await self._sync_subscriptions()
                    watchdog = asyncio.get_running_loop().create_task(self._watchdog(ws))
                    try:
                        self._last_frame = time.monotonic()
                        on_frame = self._on_frame
                        while True:
                            on_frame(await ws.recv(decode=False))
                            healthy = True
                    finally:
                        watchdog.cancel()
            except asyncio.CancelledError:
                self._lost("closed")
                raise
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = self._close_reason or f"connection lost: {exc!r}"
            self._ws = None
            self._lost(reason)
            planned = bool(self._close_reason)
            self.logger.warning("Binance market stream disconnected: %s", reason)
            if healthy:
                self._backoff.reset()
            if not planned or not healthy:
                await self._backoff.wait()

    def _lost(self, reason: str) -> None:
        self._ws = None
        for feed in self.feeds:
            feed.reset(reason)

    async def _watchdog(self, ws: ClientConnection) -> None:
        opened = time.monotonic()
        period = min(self.stale_after, self.reconnect_after) / 4
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            if now - self._last_frame > self.stale_after:
                self._close_reason = f"stale feed: no frame for {now - self._last_frame:.1f} s"
            elif now - opened > self.reconnect_after:
                self._close_reason = "scheduled reconnect ahead of the 24-hour cut"
            else:
                continue
            await ws.close()
            return

    def _on_frame(self, raw: bytes) -> None:
        self._last_frame = time.monotonic()
        try:
            msg = orjson.loads(raw)
            stream = msg.get("stream")
        except (orjson.JSONDecodeError, AttributeError):
            self.malformed += 1
            self.logger.warning("Binance market stream: malformed frame ignored (%d so far)", self.malformed)
            return
        if stream is not None:
            data = msg.get("data")
            if type(data) is dict:
                for handler in self._routes.get(stream, ()):
                    handler(data)
                return
        event = msg.get("data", msg)
        if isinstance(event, dict) and event.get("e") == "serverShutdown":
            self._close_reason = "serverShutdown"
            ws = self._ws
            if ws is not None:
                self._closing = asyncio.get_running_loop().create_task(ws.close())
        elif "code" in msg:
            self.logger.warning("Binance market stream error: %s", msg)
