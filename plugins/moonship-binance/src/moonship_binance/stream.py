"""Market data: one combined-stream websocket (a ReconnectingWebSocket) for every Binance market of the
engine, and per market the documented book procedure (buffer diffs, snapshot, replay, resync on any gap),
public trades, and the silent-feed probe.

Silent feed: no depth update for `silence_timeout` s → the market goes UNSYNCED at once and the venue is
probed: ping/pong on the socket, and REST depth's `lastUpdateId` against the book's last update id. Moved on →
the connection is stale: reconnect (every book resyncs from a fresh snapshot). Unchanged → a quiet market: the
book is still right, the market reopens, and the next probe waits twice as long (no reconnect storm).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from moonship_core import (
    FRAME,
    Backoff,
    BookGap,
    Clock,
    FrameParser,
    MarketEvents,
    MarketStatus,
    MoonshipError,
    RateLimited,
    ReconnectingWebSocket,
    Recorder,
    SilenceProbe,
)

from .parse import stream_trade

Snapshot = Callable[[str, int], Awaitable[dict[str, Any]]]
Handler = Callable[[dict[str, Any]], None]
_MAX_BUFFER = 10_000  # diffs buffered while a snapshot loads; more means the snapshot is hopeless
_CONTROL_SPACING = 0.25  # seconds between control messages (Binance allows 5 incoming per second)
_PROBE_LEVELS = 5  # the probe only needs lastUpdateId: the cheapest depth snapshot
#: the kind of a recorded depth snapshot (the REST body as parsed)
SNAPSHOT = "rest:depth"
#: a replayed feed's silence timeout: a recording's quiet spells never trigger the live probe
_REPLAY_SILENCE = 1e9


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
        silence_timeout: float,
        synced_status: Callable[[], MarketStatus],
        logger: logging.Logger,
        clock: Clock,
        recorder: Recorder | None = None,
    ) -> None:
        self.symbol = symbol
        self.clock = clock
        #: where this market's raw input is recorded (its stream frames and depth snapshots), or None
        self.recorder = recorder
        self.events = events
        self._snapshot = snapshot
        self._depth_limit = depth_limit
        self._synced_status = synced_status
        self.logger = logger
        low = symbol.lower()
        self.depth_stream = f"{low}@depth@{speed}" if speed != "1000ms" else f"{low}@depth"
        self.trade_stream = f"{low}@trade"
        self.synced = False
        #: depth updates arrived since the book was last known right (a silence then means a stalled feed)
        self.active = False
        #: book resyncs after a gap (metrics)
        self.resyncs = 0
        self.stream: MarketStream | None = None
        self._buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.silence = SilenceProbe(
            silence_timeout,
            self._on_silent,
            self._probe_venue,
            busy=lambda: self._task is not None,  # a sync is under way
            clock=clock,
            name=f"binance-probe-{symbol}",
        )

    def routes(self) -> dict[str, Handler]:
        return {self.depth_stream: self.on_depth, self.trade_stream: self.on_trade}

    # ------------------------------------------------------------------ hot path
    def on_depth(self, data: dict[str, Any]) -> None:
        self.silence.touch()
        self.active = True
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
            trade = stream_trade(self.symbol, data)
        except (KeyError, TypeError, ArithmeticError) as exc:
            self.logger.warning("%s: malformed trade event ignored: %r", self.symbol, exc)
            return
        self.events.trade(trade)

    # ------------------------------------------------------------------ sync
    def reset(self, reason: str) -> None:
        """The connection went away: the book cannot be trusted until the next sync."""
        self.silence.cancel()
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
        self.silence.arm()
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
                await self.clock.sleep(exc.retry_after or 1.0)
                continue
            except MoonshipError as exc:
                self.logger.warning("%s depth snapshot failed: %s", self.symbol, exc)
                await backoff.wait()
                continue
            if self.recorder is not None:
                self.recorder.record(SNAPSHOT, orjson.dumps(snap).decode(), self.clock.epoch_ns())
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
            self.active = False
            self._task = None
            self.logger.info(
                "%s book synced at update %d (%d levels)", self.symbol, book.sequence or 0, len(book)
            )
            self.events.book_changed()
            self.events.status(self._synced_status())
            return

    # ------------------------------------------------------------------ silent feed
    def _on_silent(self, seconds: float) -> bool:
        if not (self.active and self.synced):
            return False
        self.synced = False
        reason = f"silent feed: no depth update for {seconds:.1f} s"
        self.logger.warning("%s %s: probing Binance", self.symbol, reason)
        self.events.status(MarketStatus.UNSYNCED, reason)
        return True

    async def _probe_venue(self) -> None:
        stream = self.stream
        if stream is None:
            return
        watch = self.silence.watch
        connects, last_update = stream.ws.connects, watch.last
        if not await stream.ws.probe():
            stream.ws.reconnect(f"silent feed: {self.symbol} stream did not answer a ping")
            return
        try:
            snap = await self._snapshot(self.symbol, _PROBE_LEVELS)
            venue_last = int(snap["lastUpdateId"])
        except (MoonshipError, KeyError, TypeError, ValueError) as exc:
            self.logger.warning("%s silent-feed probe failed: %s", self.symbol, exc)
            watch.arm()
            return
        if stream.ws.connects != connects or watch.last != last_update:
            return  # reconnected, or updates arrived meanwhile: the usual path has it
        book_last = self.events.book.sequence
        if book_last is not None and venue_last <= book_last and self._task is None:
            self.active = False
            if not self.synced:
                self.synced = True
                self.logger.info("%s quiet market: book still at update %d", self.symbol, book_last)
                self.events.status(self._synced_status())
            self.silence.quiet()
            return
        reason = f"silent feed: {self.symbol} book at update {book_last}, Binance at {venue_last}"
        if self.synced:
            self.synced = False
            self.events.status(MarketStatus.UNSYNCED, reason)
        stream.ws.reconnect(reason)  # the connection stopped carrying updates: every book resyncs

    async def stop(self) -> None:
        await self.silence.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class MarketStream:
    """The engine's one market-data websocket: combined streams of every feed, live (un)subscribe."""

    def __init__(
        self,
        base_url: str,
        *,
        reconnect_after: float,
        reconnect_max_delay: float,
        open_timeout: float,
        ping_interval: float,
        pong_timeout: float,
        on_reconnect: Callable[[str], None],
        logger: logging.Logger,
        clock: Clock,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.logger = logger
        self.clock = clock
        self.feeds: list[BookFeed] = []
        self.malformed = 0
        self._routes: dict[str, tuple[Handler, ...]] = {}
        self._recorders: dict[str, tuple[Recorder, ...]] = {}
        self._subscribed: set[str] = set()
        self._url_streams: set[str] = set()
        self._control_ids = 0
        self._control_lock = asyncio.Lock()
        self._last_control = 0.0
        self.ws = ReconnectingWebSocket(
            self._url,
            self._on_frame,
            name="Binance market stream",
            on_open=self._on_open,
            on_drop=self._lost,
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            on_reconnect=on_reconnect,
            reconnect_max_delay=reconnect_max_delay,
            max_lifetime=reconnect_after,
            clock=clock,
            logger=logger,
        )

    def _url(self) -> str:
        self._url_streams = set(self._routes)
        return f"{self.base_url}/stream?streams={'/'.join(sorted(self._url_streams))}"

    # ------------------------------------------------------------------ membership
    async def add(self, feed: BookFeed) -> None:
        feed.stream = self
        self.feeds.append(feed)
        self._rebuild()
        if self.ws.connection is None:
            self.ws.start()
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
        recorders: dict[str, list[Recorder]] = {}
        for feed in self.feeds:
            if feed.recorder is not None:
                for stream in feed.routes():
                    recorders.setdefault(stream, []).append(feed.recorder)
        self._recorders = {stream: tuple(r) for stream, r in recorders.items()}

    async def stop(self) -> None:
        await self.ws.stop()
        for feed in self.feeds:
            await feed.stop()

    async def _on_open(self, _conn: object) -> None:
        self._subscribed = set(self._url_streams)
        for feed in self.feeds:
            if feed.depth_stream in self._subscribed:
                feed.start()
        await self._sync_subscriptions()

    async def _sync_subscriptions(self) -> None:
        """Bring the open connection's subscriptions in line with the feeds (SUBSCRIBE/UNSUBSCRIBE)."""
        async with self._control_lock:
            if self.ws.connection is None:
                return
            wanted = set(self._routes)
            for method, streams in (
                ("SUBSCRIBE", wanted - self._subscribed),
                ("UNSUBSCRIBE", self._subscribed - wanted),
            ):
                if not streams:
                    continue
                wait = self._last_control + _CONTROL_SPACING - self.clock.monotonic()
                if wait > 0:
                    await self.clock.sleep(wait)
                self._control_ids += 1
                message = {"method": method, "params": sorted(streams), "id": self._control_ids}
                if not await self.ws.send(orjson.dumps(message).decode()):
                    return  # the reconnect subscribes everything
                self._last_control = self.clock.monotonic()
                if method == "SUBSCRIBE":
                    self._subscribed |= streams
                    for feed in self.feeds:
                        if feed.depth_stream in streams:
                            feed.start()
                else:
                    self._subscribed -= streams

    def _lost(self, reason: str) -> None:
        self._subscribed = set()
        for feed in self.feeds:
            feed.reset(reason)

    def _on_frame(self, raw: str | bytes) -> None:
        try:
            msg = orjson.loads(raw)
            stream = msg.get("stream")
        except (orjson.JSONDecodeError, AttributeError):
            self.malformed += 1
            self.logger.warning("Binance market stream: malformed frame ignored (%d so far)", self.malformed)
            return
        if stream is not None:
            recorders = self._recorders.get(stream)
            if recorders:
                text, now = raw if isinstance(raw, str) else raw.decode(), self.clock.epoch_ns()
                for recorder in recorders:
                    recorder.record(FRAME, text, now)
            data = msg.get("data")
            handlers = self._routes.get(stream)
            if handlers is not None and type(data) is dict:
                for handler in handlers:
                    handler(data)
                return
        event = msg.get("data", msg)  # a combined stream wraps serverShutdown as stream "!serverShutdown"
        if isinstance(event, dict) and event.get("e") == "serverShutdown":
            self.ws.reconnect("serverShutdown")
        elif "code" in msg:
            self.logger.warning("Binance market stream error: %s", msg)


class ReplayParser(FrameParser):
    """A recorded Binance market fed through its own BookFeed: stream frames to its handlers, each recorded
    depth snapshot to the book sync waiting for it (as the REST answer came live)."""

    def __init__(self, symbol: str, events: MarketEvents, logger: logging.Logger, clock: Clock) -> None:
        self._snapshots: list[dict[str, Any]] = []
        self._waiting: asyncio.Future[dict[str, Any]] | None = None
        self.book_feed = BookFeed(
            symbol, events, self._snapshot, depth_limit=1000, speed="100ms", silence_timeout=_REPLAY_SILENCE,
            synced_status=lambda: MarketStatus.OPEN, logger=logger, clock=clock,
        )
        low = symbol.lower()
        self._depth, self._trade = f"{low}@depth", f"{low}@trade"
        self.book_feed.start()  # the live feed starts its sync when the stream opens

    async def _snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        if self._snapshots:
            return self._snapshots.pop(0)
        waiting: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting = waiting
        return await waiting

    def feed(self, kind: str, data: str) -> None:
        if kind == FRAME:
            msg = orjson.loads(data)
            stream: str = msg.get("stream", "")
            if stream.startswith(self._depth):
                self.book_feed.on_depth(msg["data"])
            elif stream == self._trade:
                self.book_feed.on_trade(msg["data"])
        elif kind == SNAPSHOT:
            snapshot = orjson.loads(data)
            waiting, self._waiting = self._waiting, None
            if waiting is not None and not waiting.done():
                waiting.set_result(snapshot)
            else:
                self._snapshots.append(snapshot)
