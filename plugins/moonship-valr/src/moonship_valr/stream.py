"""VALR websockets: the shared socket loop (signed upgrade, PING/PONG keepalive, stale-feed detection,
reconnect with backoff) and the trade socket (aggregated book, trades, market summaries)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from moonship_core import (
    FRAME,
    Backoff,
    Clock,
    FrameParser,
    LiveClock,
    MarketEvents,
    MarketStatus,
    Recorder,
)

from . import constants as c
from .auth import Signer
from .rest import StaleTimestamp, error_for, parse_ticker, parse_trade

_PING = orjson.dumps({"type": "PING"})


class Timing:
    """Keepalive and reconnect timing of every socket (seconds); reconnects back off on `clock` (the
    engine's)."""

    def __init__(
        self,
        ping_interval: float = c.PING_INTERVAL,
        pong_timeout: float = c.PONG_TIMEOUT,
        stale_timeout: float = c.STALE_TIMEOUT,
        open_timeout: float = c.REQUEST_TIMEOUT,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.stale_timeout = stale_timeout
        self.open_timeout = open_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.clock = clock or LiveClock()


class Socket:
    """One VALR websocket kept alive for as long as it has users.

    One task runs the connection and, per connection, one keepalive task: it sends `{"type":"PING"}` every
    `ping_interval` and replaces the socket when a PONG is `pong_timeout` late or when no feed message
    arrived for `stale_timeout`. Reconnects back off with jitter; every (re)connection calls `on_open`.
    An upgrade refused for its timestamp (HTTP 401 "Request has expired") first calls `resync` (re-learn
    VALR's clock) so that the next attempt is signed with the corrected time.
    """

    #: whether PONGs count as feed traffic (the account socket's feed may be silent for long)
    pong_is_traffic = False

    def __init__(
        self,
        url: str,
        path: str,
        signer: Signer | None,
        timing: Timing,
        logger: logging.Logger,
        resync: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.url = url.rstrip("/") + path
        self.path = path
        self.signer = signer
        self.resync = resync
        self.timing = timing
        self.logger = logger
        self.ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.connects = 0
        #: called when a connection is made again (the engine's metrics)
        self.on_reconnect: Callable[[], None] | None = None
        self._last_feed = 0.0
        self._ping_sent: float | None = None  # when the unanswered PING left

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"valr{self.path}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send on the current connection (dropped when disconnected: `on_open` re-sends state)."""
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(WebSocketException):
                await ws.send(orjson.dumps(message).decode())

    # ------------------------------------------------------------------ hooks
    async def on_open(self) -> None:
        """Connected (subscribe here)."""

    def on_message(self, message: Mapping[str, Any]) -> None:
        """One parsed frame other than PONG."""

    def on_close(self, reason: str) -> None:
        """The connection ended (it will be replaced)."""

    # ------------------------------------------------------------------ loop
    async def _run(self) -> None:
        timing = self.timing
        backoff = Backoff(timing.backoff_initial, timing.backoff_max, clock=timing.clock)
        while True:
            reason = "closed"
            try:
                headers = self.signer.headers("GET", self.path, sub_account=None) if self.signer else {}
                async with connect(
                    self.url,
                    additional_headers=headers,
                    open_timeout=timing.open_timeout,
                    ping_interval=None,
                    close_timeout=1,
                    max_size=2**23,
                ) as ws:
                    self.ws = ws
                    self.connects += 1
                    if self.connects > 1 and self.on_reconnect is not None:
                        self.on_reconnect()
                    self.logger.info("connected to %s", self.url)
                    reason = await self._session(ws, backoff)
            except asyncio.CancelledError:
                self.ws = None
                self.on_close("closed")
                raise
            except InvalidStatus as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if self._refused_for_time(exc):
                    await self._resync()
            except (OSError, WebSocketException, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug must not end the feed for good
                self.logger.exception("unexpected error on %s", self.url)
                reason = f"{type(exc).__name__}: {exc}"
            self.ws = None
            self.logger.warning("%s disconnected (%s); reconnecting", self.url, reason)
            self.on_close(reason)
            await backoff.wait()

    def _refused_for_time(self, exc: InvalidStatus) -> bool:
        """Whether a refused upgrade blames our timestamp (or is a bare 401, which might)."""
        if self.signer is None or self.resync is None:
            return False
        status = exc.response.status_code
        body = bytes(exc.response.body or b"")
        try:
            data = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError:
            data = None
        if data is None:
            return status == 401
        return isinstance(error_for(status, data, text=body[:200].decode(errors="replace")), StaleTimestamp)

    async def _resync(self) -> None:
        assert self.resync is not None
        self.logger.warning("%s refused our timestamp: resynchronising the clock", self.url)
        try:
            await self.resync()
        except Exception as exc:  # the next attempt (after the backoff) tries again
            self.logger.warning("VALR clock resync failed: %r", exc)

    async def _session(self, ws: ClientConnection, backoff: Backoff) -> str:
        loop = asyncio.get_running_loop()
        self._last_feed = loop.time()
        self._ping_sent = None
        stop: asyncio.Future[str] = loop.create_future()
        keepalive = loop.create_task(self._keepalive(ws, stop), name=f"valr{self.path}-keepalive")
        try:
            await self.on_open()
            async for frame in ws:
                if not frame:
                    continue  # VALR sends empty frames now and then
                try:
                    message = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    self.logger.warning("ignored a malformed frame on %s: %.80r", self.path, frame)
                    continue
                if not isinstance(message, dict):
                    continue
                if message.get("type") == "PONG":
                    self._ping_sent = None
                    if not self.pong_is_traffic:
                        continue
                self._last_feed = loop.time()
                backoff.reset()
                self.on_message(message)
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
        return stop.result() if stop.done() else f"code {ws.close_code}"

    async def _keepalive(self, ws: ClientConnection, stop: asyncio.Future[str]) -> None:
        timing = self.timing
        loop = asyncio.get_running_loop()
        step = max(0.01, min(timing.ping_interval, timing.pong_timeout, timing.stale_timeout) / 5)
        next_ping = loop.time() + timing.ping_interval
        while True:
            await asyncio.sleep(step)
            now = loop.time()
            problem = ""
            if self._ping_sent is not None and now - self._ping_sent > timing.pong_timeout:
                problem = f"no PONG for {timing.pong_timeout:g} s"
            elif now - self._last_feed > timing.stale_timeout:
                problem = f"feed silent for {timing.stale_timeout:g} s"
            if problem:
                stop.set_result(problem)
                await ws.close(4000, problem)
                return
            if now >= next_ping:
                next_ping = now + timing.ping_interval
                if self._ping_sent is None:
                    self._ping_sent = now
                with contextlib.suppress(WebSocketException):
                    await ws.send(_PING.decode())


# ---------------------------------------------------------------------- trade socket
class TradeListener(Protocol):
    """What the trade socket feeds: one per market (pair); it records the messages it is fed (as parsed and
    written again: the socket is shared by every market) when it has a recorder."""

    recorder: Recorder | None
    clock: Clock

    def on_book(self, data: Mapping[str, Any]) -> None: ...

    def on_trade(self, data: Mapping[str, Any]) -> None: ...

    def on_summary(self, data: Mapping[str, Any]) -> None: ...

    def on_feed_lost(self, reason: str) -> None: ...


TRADE_EVENTS = ("AGGREGATED_ORDERBOOK_UPDATE", "NEW_TRADE", "MARKET_SUMMARY_UPDATE")


class TradeStream(Socket):
    """The one trade socket of an engine: subscribes the union of every VALR market's pairs."""

    def __init__(
        self,
        url: str,
        signer: Signer | None,
        timing: Timing,
        logger: logging.Logger,
        resync: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(url, c.TRADE_WS_PATH, signer, timing, logger, resync)
        self.listeners: dict[str, list[TradeListener]] = {}

    async def add(self, pair: str, listener: TradeListener) -> None:
        self.listeners.setdefault(pair, []).append(listener)
        if self.running:
            await self.send(self._subscription())
        else:
            self.start()

    async def remove(self, pair: str, listener: TradeListener) -> None:
        users = self.listeners.get(pair, [])
        if listener in users:
            users.remove(listener)
        if not users:
            self.listeners.pop(pair, None)
        if not self.listeners:
            await self.stop()
        else:
            await self.send(self._subscription())

    def _subscription(self) -> dict[str, Any]:
        pairs = sorted(self.listeners)
        return {"type": "SUBSCRIBE", "subscriptions": [{"event": e, "pairs": pairs} for e in TRADE_EVENTS]}

    async def on_open(self) -> None:
        await self.send(self._subscription())

    def on_message(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        pair = message.get("currencyPairSymbol")
        data = message.get("data")
        if not isinstance(pair, str) or not isinstance(data, Mapping):
            return
        listeners = self.listeners.get(pair, ())
        if not listeners:
            return
        text: str | None = None
        for listener in listeners:
            if listener.recorder is not None:
                text = text or orjson.dumps(message).decode()
                listener.recorder.record(FRAME, text, listener.clock.epoch_ns())
            dispatch(listener, kind, data, self.logger)

    def on_close(self, reason: str) -> None:
        for users in self.listeners.values():
            for listener in users:
                listener.on_feed_lost(reason)


def dispatch(listener: TradeListener, kind: Any, data: Mapping[str, Any], logger: logging.Logger) -> None:
    """One trade-socket message of the listener's pair to the listener."""
    try:
        if kind == "AGGREGATED_ORDERBOOK_UPDATE":
            listener.on_book(data)
        elif kind == "NEW_TRADE":
            listener.on_trade(data)
        elif kind == "MARKET_SUMMARY_UPDATE":
            listener.on_summary(data)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        logger.warning("ignored a malformed %s for %s: %r", kind, data, exc)


#: the kind of a recorded loss of the trade socket (data: the reason)
LOST = "lost"


class MarketFeed:
    """One market's view of the trade socket: full aggregated books diffed into the core's book, trades
    with VALR's trade ids, market summaries as tickers, and UNSYNCED/OPEN as the book loses/regains sync."""

    def __init__(
        self,
        symbol: str,
        events: MarketEvents,
        open_status: Callable[[], MarketStatus],
        *,
        recorder: Recorder | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.recorder = recorder
        self.clock: Clock = clock or LiveClock()
        self.symbol = symbol
        self.events = events
        self._open_status = open_status
        #: the last full book as received: price text -> quantity text, per side (None: not in sync)
        self._bids: dict[str, str] | None = None
        self._asks: dict[str, str] = {}

    def on_book(self, data: Mapping[str, Any]) -> None:
        # VALR sends PascalCase keys; the docs mirror shows lower case: either is read
        bids = {level["price"]: level["quantity"] for level in _key(data, "Bids")}
        asks = {level["price"]: level["quantity"] for level in _key(data, "Asks")}
        seq = data.get("SequenceNumber", data.get("sequenceNumber"))
        book = self.events.book
        try:
            if self._bids is None:
                book.load_snapshot(list(bids.items()), list(asks.items()), seq)
            else:
                stale = seq is not None and book.sequence is not None and seq <= book.sequence
                if stale:
                    return
                book.apply_update(_diff(self._bids, bids), _diff(self._asks, asks))
                book.sequence = seq
        except (ValueError, TypeError, ArithmeticError) as exc:
            self.on_feed_lost(f"malformed book: {exc}")
            return
        first = self._bids is None
        self._bids, self._asks = bids, asks
        self.events.book_changed()
        if first:
            self.events.status(self._open_status())

    def on_trade(self, data: Mapping[str, Any]) -> None:
        self.events.trade(parse_trade(data, self.symbol))

    def on_summary(self, data: Mapping[str, Any]) -> None:
        self.events.ticker(parse_ticker(data, self.symbol))

    def on_feed_lost(self, reason: str) -> None:
        """The book cannot be trusted until the next full book arrives."""
        if self.recorder is not None:
            self.recorder.record(LOST, reason, self.clock.epoch_ns())
        self._bids, self._asks = None, {}
        self.events.status(MarketStatus.UNSYNCED, reason)


def _key(data: Mapping[str, Any], name: str) -> Any:
    """`data[name]`, or its lower-camel-case spelling (`Bids` / `bids`)."""
    if name in data:
        return data[name]
    return data[name[0].lower() + name[1:]]


def _diff(old: dict[str, str], new: dict[str, str]) -> list[tuple[str, str]]:
    """Level changes from `old` to `new`: removals first (so a price re-spelt is re-added), then sets."""
    changes = [(price, "0") for price in old if price not in new]
    changes.extend((price, qty) for price, qty in new.items() if old.get(price) != qty)
    return changes


class ReplayParser(FrameParser):
    """A recorded VALR market fed through its own MarketFeed: trade-socket messages, and the socket's
    losses."""

    def __init__(self, feed: MarketFeed, logger: logging.Logger) -> None:
        self.market_feed = feed
        self.logger = logger

    def feed(self, kind: str, data: str) -> None:
        if kind == FRAME:
            message = orjson.loads(data)
            dispatch(self.market_feed, message.get("type"), message.get("data") or {}, self.logger)
        elif kind == LOST:
            self.market_feed.on_feed_lost(data)
