"""VALR websockets: each socket a toolkit ReconnectingWebSocket (signed upgrade, VALR's JSON PING/PONG as its
keepalive and probe, reconnect with backoff, a clock resync when an upgrade is refused for its timestamp) and
the trade socket (aggregated book, trades, market summaries, the silent-feed probe)."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import orjson

from moonship_core import (
    FRAME,
    Clock,
    Connection,
    FrameParser,
    LiveClock,
    MarketEvents,
    MarketStatus,
    MoonshipError,
    ReconnectingWebSocket,
    Recorder,
    SilenceProbe,
    Transport,
    UpgradeRefused,
    default_transport,
)

from . import constants as c
from .auth import Signer
from .constants import StaleTimestamp
from .parse import parse_ticker, parse_trade
from .rest import error_for

_PING = '{"type":"PING"}'
Frame = str | bytes


@dataclass(frozen=True)
class Timing:
    """Keepalive and reconnect timing of every socket (seconds); reconnects back off on `clock` (the
    engine's)."""

    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    open_timeout: float = 10.0
    reconnect_max_delay: float = 30.0
    clock: Clock | None = None


def _is_pong(frame: Frame) -> bool:
    if len(frame) > 64 or ("PONG" not in frame if isinstance(frame, str) else b"PONG" not in frame):
        return False
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return False
    return isinstance(message, dict) and message.get("type") == "PONG"


class _PongConnection:
    """A connection whose ping is VALR's `{"type":"PING"}`: a `{"type":"PONG"}` frame answers it and goes no
    further (a PONG is no market data)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def send(self, message: str) -> None:
        await self._conn.send(message)

    async def recv(self) -> Frame:
        return await self._conn.recv()

    async def deliver(self, on_frame: Callable[[Frame], None]) -> None:
        waiting = self._waiting

        def handle(frame: Frame) -> None:
            if _is_pong(frame):
                while waiting:
                    future = waiting.popleft()
                    if not future.done():
                        future.set_result(None)
                return
            on_frame(frame)

        await self._conn.deliver(handle)

    async def ping(self) -> Awaitable[object]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        await self._conn.send(_PING)
        return future

    async def close(self) -> None:
        while self._waiting:
            self._waiting.popleft().cancel()
        await self._conn.close()


class _ValrTransport:
    """`inner`'s connections with VALR's PING/PONG; an upgrade refused for its timestamp first calls `resync`
    (re-learn VALR's clock), so that the next attempt is signed with the corrected time."""

    def __init__(
        self, inner: Transport, resync: Callable[[], Awaitable[None]] | None, logger: logging.Logger
    ) -> None:
        self.inner = inner
        self.resync = resync
        self.logger = logger

    async def connect(
        self, url: str, *, open_timeout: float, headers: Mapping[str, str] | None = None
    ) -> Connection:
        try:
            conn = await self.inner.connect(url, open_timeout=open_timeout, headers=headers)
        except UpgradeRefused as exc:
            if self.resync is not None and _refused_for_time(exc):
                self.logger.warning("%s refused our timestamp: resynchronising the clock", url)
                try:
                    await self.resync()
                except Exception as resync_error:  # the next attempt (after the backoff) tries again
                    self.logger.warning("VALR clock resync failed: %r", resync_error)
            raise
        return _PongConnection(conn)


def _refused_for_time(exc: UpgradeRefused) -> bool:
    """Whether a refused upgrade blames our timestamp (or is a bare 401, which might)."""
    try:
        data = orjson.loads(exc.body) if exc.body.strip() else None
    except orjson.JSONDecodeError:
        data = None
    if data is None:
        return exc.status == 401
    text = exc.body[:200].decode(errors="replace")
    return isinstance(error_for(exc.status, data, text=text), StaleTimestamp)


class Socket:
    """One VALR websocket kept alive for as long as it has users: a ReconnectingWebSocket that sends
    `{"type":"PING"}` every `ping_interval` (VALR drops idle sockets) and replaces the connection when a PONG
    is `pong_timeout` late. Every (re)connection calls `on_open`, every drop `on_close`."""

    def __init__(
        self,
        url: str,
        path: str,
        signer: Signer | None,
        timing: Timing,
        logger: logging.Logger,
        resync: Callable[[], Awaitable[None]] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.path = path
        self.signer = signer
        self.logger = logger
        #: called when a connection is made again (the engine's metrics)
        self.on_reconnect: Callable[[], None] | None = None
        self.ws = ReconnectingWebSocket(
            url.rstrip("/") + path,
            self._on_frame,
            name=f"valr{path}",
            on_open=self._opened,
            on_drop=self.on_close,
            on_reconnect=self._reconnected,
            headers=self._headers if signer is not None else None,
            open_timeout=timing.open_timeout,
            ping_interval=timing.ping_interval,
            pong_timeout=timing.pong_timeout,
            reconnect_max_delay=timing.reconnect_max_delay,
            transport=_ValrTransport(transport or default_transport(), resync if signer else None, logger),
            clock=timing.clock,
            logger=logger,
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.ws.start()

    async def stop(self) -> None:
        await self.ws.stop()

    @property
    def running(self) -> bool:
        return self.ws.connection is not None

    @property
    def connects(self) -> int:
        return self.ws.connects

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send on the current connection (dropped when disconnected: `on_open` re-sends state)."""
        await self.ws.send(orjson.dumps(message).decode())

    # ------------------------------------------------------------------ hooks
    async def on_open(self) -> None:
        """Connected (subscribe here)."""

    def on_message(self, message: Mapping[str, Any]) -> None:
        """One parsed frame other than PONG."""

    def on_close(self, reason: str) -> None:
        """The connection ended (it will be replaced)."""

    # ------------------------------------------------------------------ plumbing
    def _headers(self) -> Mapping[str, str]:
        assert self.signer is not None
        return self.signer.headers("GET", self.path, sub_account=None)

    async def _opened(self, _conn: Connection) -> None:
        await self.on_open()

    def _reconnected(self, _reason: str) -> None:
        if self.on_reconnect is not None:
            self.on_reconnect()

    def _on_frame(self, frame: Frame) -> None:
        if not frame:
            return  # VALR sends empty frames now and then
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            self.logger.warning("ignored a malformed frame on %s: %.80r", self.path, frame)
            return
        if isinstance(message, dict):
            self.on_message(message)


# ---------------------------------------------------------------------- trade socket
class TradeListener(Protocol):
    """What the trade socket feeds: one per market (pair); it records the messages it is fed (as parsed and
    written again: the socket is shared by every market) when it has a recorder."""

    recorder: Recorder | None
    clock: Clock

    def on_book(self, data: Mapping[str, Any]) -> None: ...

    def on_trade(self, data: Mapping[str, Any]) -> None: ...

    def on_summary(self, data: Mapping[str, Any]) -> None: ...

    def start(self, stream: TradeStream) -> None: ...

    def on_drop(self, reason: str) -> None: ...

    async def stop(self) -> None: ...


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
            listener.start(self)
        else:
            self.start()

    async def remove(self, pair: str, listener: TradeListener) -> None:
        users = self.listeners.get(pair, [])
        if listener in users:
            users.remove(listener)
        await listener.stop()
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
        for users in self.listeners.values():
            for listener in users:
                listener.start(self)

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
                listener.on_drop(reason)


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

#: the venue's aggregated book over REST (`GET /v1/public/{pair}/orderbook`), for the silent-feed probe
Snapshot = Callable[[], Awaitable[Mapping[str, Any]]]


class MarketFeed:
    """One market's view of the trade socket: full aggregated books diffed into the core's book, trades
    with VALR's trade ids, market summaries as tickers, and UNSYNCED/OPEN as the book loses/regains sync.

    Silent feed: with a `silence_timeout`, no book update for that long on an active market (one whose book
    changed since it was last known right) → UNSYNCED at once and VALR is probed: a PING on the trade socket
    (no PONG: reconnect), then the REST aggregated book against the last full book received. They differ →
    VALR moved on: the trade socket reconnects and every market reloads from the first full book; they are
    the same → the market was quiet, the book is still right, the market reopens and the next probe waits
    twice as long (no reconnect storm). The levels decide, not the `SequenceNumber`s: VALR's docs do not say
    the REST and websocket books number from one counter."""

    def __init__(
        self,
        symbol: str,
        events: MarketEvents,
        open_status: Callable[[], MarketStatus],
        *,
        snapshot: Snapshot | None = None,
        silence_timeout: float | None = None,
        logger: logging.Logger | None = None,
        recorder: Recorder | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.recorder = recorder
        self.clock: Clock = clock or LiveClock()
        self.symbol = symbol
        self.events = events
        self.logger = logger or logging.getLogger("moonship.valr")
        self._open_status = open_status
        self._snapshot = snapshot
        #: the last full book as received: price text -> quantity text, per side (None: none yet)
        self._bids: dict[str, str] | None = None
        self._asks: dict[str, str] = {}
        #: the book is known right (a silence on an active market unsyncs it until a probe or a new book)
        self.synced = False
        #: book updates arrived since the book was last known right
        self.active = False
        self.stream: TradeStream | None = None
        self.silence = (
            SilenceProbe(
                silence_timeout,
                self._on_silent,
                self._probe_venue,
                clock=self.clock,
                name=f"valr-probe-{symbol}",
            )
            if silence_timeout is not None and snapshot is not None
            else None
        )

    # ------------------------------------------------------------------ the trade socket's messages
    def on_book(self, data: Mapping[str, Any]) -> None:
        if self.silence is not None:
            self.silence.touch()
        # VALR sends PascalCase keys; the docs mirror shows lower case: either is read
        bids = {level["price"]: level["quantity"] for level in _key(data, "Bids")}
        asks = {level["price"]: level["quantity"] for level in _key(data, "Asks")}
        seq = data.get("SequenceNumber", data.get("sequenceNumber"))
        book = self.events.book
        reload = self._bids is None or not self.synced
        try:
            if reload:
                book.load_snapshot(list(bids.items()), list(asks.items()), seq)
            else:
                assert self._bids is not None
                stale = seq is not None and book.sequence is not None and seq <= book.sequence
                if stale:
                    return
                book.apply_update(_diff(self._bids, bids), _diff(self._asks, asks))
                book.sequence = seq
        except (ValueError, TypeError, ArithmeticError) as exc:
            self.on_feed_lost(f"malformed book: {exc}")
            return
        self._bids, self._asks = bids, asks
        self.active = not reload
        self.synced = True
        self.events.book_changed()
        if reload:
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
        self.synced = self.active = False
        self.events.status(MarketStatus.UNSYNCED, reason)

    # ------------------------------------------------------------------ the socket's life
    def start(self, stream: TradeStream) -> None:
        """The trade socket carries this market now: watch for silence."""
        self.stream = stream
        if self.silence is not None:
            self.silence.arm()

    def on_drop(self, reason: str) -> None:
        """The trade socket dropped: no watching or probing until it is back; the book is lost."""
        if self.silence is not None:
            self.silence.cancel()
        self.on_feed_lost(reason)

    async def stop(self) -> None:
        if self.silence is not None:
            await self.silence.stop()

    # ------------------------------------------------------------------ silent feed
    def _on_silent(self, seconds: float) -> bool:
        if not (self.active and self.synced):
            return False
        self.synced = False
        reason = f"silent feed: no book update for {seconds:.1f} s"
        self.logger.warning("%s %s: probing VALR", self.symbol, reason)
        self.events.status(MarketStatus.UNSYNCED, reason)
        return True

    async def _probe_venue(self) -> None:
        stream, silence, snapshot = self.stream, self.silence, self._snapshot
        if stream is None or silence is None or snapshot is None:
            return
        watch = silence.watch
        ws = stream.ws
        connects, last_update = ws.connects, watch.last
        if not await ws.probe():
            ws.reconnect(f"silent feed: the trade socket did not answer a PING ({self.symbol})")
            return
        try:
            venue = await snapshot()
            same = self._bids is not None and (
                _same_side(self._bids, _key(venue, "Bids"), descending=True)
                and _same_side(self._asks, _key(venue, "Asks"), descending=False)
            )
        except (MoonshipError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
            self.logger.warning("%s silent-feed probe failed: %s", self.symbol, exc)
            watch.arm()
            return
        if ws.connects != connects or watch.last != last_update:
            return  # reconnected, or books arrived meanwhile: the usual path has it
        book_seq, venue_seq = self.events.book.sequence, venue.get("SequenceNumber")
        if same:
            self.active = False
            if not self.synced:
                self.synced = True
                self.logger.info(
                    "%s quiet market: VALR's book is ours (sequence %s, VALR's REST %s)",
                    self.symbol, book_seq, venue_seq,
                )
                self.events.status(self._open_status())
            silence.quiet()
            return
        reason = f"silent feed: {self.symbol} book (sequence {book_seq}) is not VALR's (REST {venue_seq})"
        if self.synced:
            self.synced = False
            self.events.status(MarketStatus.UNSYNCED, reason)
        ws.reconnect(reason)  # the socket stopped carrying books: every market reloads from a full book


def _key(data: Mapping[str, Any], name: str) -> Any:
    """`data[name]`, or its lower-camel-case spelling (`Bids` / `bids`)."""
    if name in data:
        return data[name]
    return data[name[0].lower() + name[1:]]


def _same_side(ours: Mapping[str, str], venue: Any, *, descending: bool) -> bool:
    """One side of the last full book received equals VALR's REST levels, compared as numbers. Only the
    levels both carry count when both reach the aggregated depth (VALR: the top 40 per side)."""
    mine = sorted(((Decimal(p), Decimal(q)) for p, q in ours.items()), reverse=descending)
    theirs = sorted(((Decimal(lv["price"]), Decimal(lv["quantity"])) for lv in venue), reverse=descending)
    depth = min(len(mine), len(theirs))
    if len(mine) != len(theirs) and depth < c.BOOK_DEPTH:
        return False
    return mine[:depth] == theirs[:depth]


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
