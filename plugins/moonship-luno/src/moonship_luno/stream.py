"""Luno's market stream: the order-level book of one pair, kept in the core's OrderLevelBook (so the market's
L2 book is the aggregate of Luno's orders), public trades and market status, on a ReconnectingWebSocket (one
socket per pair).

Protocol: connect to `/api/1/stream/PAIR`, send the credentials frame, receive a snapshot of every order,
then numbered updates, each applied atomically in the order trades, create, delete, status. An update must
carry the previous sequence + 1: a gap or a malformed frame reconnects for a fresh snapshot (Luno has no other
resync); the sequence starts again from every snapshot. `""` frames are keepalives.

Silent feed: no numbered update for `silence_timeout` s (keepalives do not count) → an active market goes
UNSYNCED at once and Luno is probed: ping/pong on the socket, then its REST `orderbook_top` (Luno's REST books
carry no sequence: the top 100 levels per side are the equivalent) against the book. Different → the feed
missed updates: reconnect and resync. Equal → a quiet market: the book is right, the market reopens, and the
next probe waits twice as long (no reconnect storm). Updates that resume in sequence prove nothing was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import islice
from typing import Any

import orjson

from moonship_core import (
    FRAME,
    BookGap,
    Clock,
    Connection,
    FrameParser,
    MarketEvents,
    MarketStatus,
    MoonshipError,
    OrderLevelBook,
    ReconnectingWebSocket,
    Recorder,
    Side,
    SilenceProbe,
    Trade,
    from_ms,
)

from . import constants as c
from .auth import Credentials

_KEEPALIVE = (b'""', b"", '""', "")
#: the kind of the recorded mark of a new connection (its next frame is a snapshot)
OPEN = "open"
#: levels per side in Luno's orderbook_top
_TOP = 100
Levels = list[tuple[Decimal, Decimal]]
BookTop = Callable[[str], Awaitable[tuple[Levels, Levels]]]


class Resync(Exception):
    """The feed cannot be trusted any more: reconnect for a fresh snapshot."""


class OrderBookFeed:
    """Luno's wire applied to the book: a snapshot, then numbered updates (live and in replay)."""

    def __init__(
        self,
        pair: str,
        events: MarketEvents,
        logger: logging.Logger,
        *,
        tick: Decimal,
        on_status: Callable[[str], None],
    ) -> None:
        self.pair = pair
        self.events = events
        self.logger = logger
        self.tick = tick
        self.on_status = on_status
        #: the order-level book; its `book` is the market's L2 book
        self.orders = OrderLevelBook(events.book)
        #: Luno's trading status as the stream last said (ACTIVE, POSTONLY, DISABLED)
        self.trading_status: str | None = None
        #: snapshots received (each connection starts with one)
        self.snapshots = 0

    def load(self, frame: dict[str, Any]) -> None:
        if "error_code" in frame:
            raise Resync(f"refused: {frame.get('error_code')} {frame.get('error', '')}")
        orders = self.orders
        orders.book = self.events.book  # the market may have replaced its book since the last snapshot
        orders.load(
            [(o["id"], o["price"], o["volume"]) for o in frame["bids"] or ()],
            [(o["id"], o["price"], o["volume"]) for o in frame["asks"] or ()],
            int(frame["sequence"]),
        )
        self.snapshots += 1
        self.logger.info(
            "luno %s stream synced: %d orders at sequence %s", self.pair, len(orders), frame["sequence"]
        )
        self.events.book_changed()
        self.status(str(frame.get("status") or "ACTIVE"))

    def apply(self, frame: dict[str, Any]) -> bool:
        """One numbered update, applied atomically: trades, create, delete, status. False if stale."""
        sequence = int(frame["sequence"])
        orders = self.orders
        if not orders.expects(sequence):
            return False
        trades: list[Trade] = []
        changed = False
        create = frame.get("create_update")
        trade_updates = frame.get("trade_updates")
        if trade_updates:
            when = from_ms(frame.get("timestamp") or 0)
            for t in trade_updates:
                trades.append(self._trade(t, create, when))
            changed = True
        if create:
            orders.create(
                create["order_id"], Side.BUY if create["type"] == "BID" else Side.SELL, create["price"],
                create["volume"],
            )
            changed = True
        delete = frame.get("delete_update")
        if delete:
            changed = orders.delete(delete["order_id"]) is not None or changed
        orders.commit(sequence)
        if changed:
            self.events.book_changed()
        for trade in trades:
            self.events.trade(trade)
        status = frame.get("status_update")
        if status:
            self.status(str(status["status"]))
        return True

    def _trade(self, update: dict[str, Any], create: dict[str, Any] | None, when: Any) -> Trade:
        base = Decimal(update["base"])
        counter = Decimal(update["counter"])
        maker_id = update.get("maker_order_id") or update.get("order_id") or ""
        book = self.orders.book
        maker = self.orders.reduce(maker_id, base)
        price = (counter / base).quantize(self.tick, ROUND_HALF_EVEN)
        if maker is not None:  # the maker rested on the bids: the taker sold
            taker = Side.SELL if maker.side is Side.BUY else Side.BUY
        elif create:  # the taker's remainder rests in this same update
            taker = Side.BUY if create["type"] == "BID" else Side.SELL
        else:
            best_bid = book.best_bid
            taker = Side.SELL if best_bid is not None and price <= best_bid else Side.BUY
        return Trade(str(update["sequence"]), self.pair, price, base, taker, when)

    def status(self, status: str) -> None:
        self.trading_status = status
        self.on_status(status)
        self.events.status(self.market_status, f"luno status {status}")

    @property
    def market_status(self) -> MarketStatus:
        return c.MARKET_STATUS.get(self.trading_status or "", MarketStatus.CLOSED)

    def matches(self, bids: Levels, asks: Levels) -> bool:
        """Whether the book's top levels are Luno's `orderbook_top` (prices and aggregated volumes)."""
        book = self.orders.book
        return (
            list(islice(book.levels(Side.BUY), _TOP)) == bids[:_TOP]
            and list(islice(book.levels(Side.SELL), _TOP)) == asks[:_TOP]
        )


class MarketStream:
    """One pair's market stream; pushes book, trade and status events to `events`."""

    def __init__(
        self,
        ws_url: str,
        pair: str,
        credentials: Credentials,
        events: MarketEvents,
        logger: logging.Logger,
        *,
        tick: Decimal,
        on_status: Callable[[str], None],
        book_top: BookTop,
        silence_timeout: float,
        open_timeout: float,
        ping_interval: float,
        pong_timeout: float,
        reconnect_max_delay: float,
        on_reconnect: Callable[[str], None] | None = None,
        clock: Clock,
        recorder: Recorder | None = None,
    ) -> None:
        self.pair = pair
        self.credentials = credentials
        self.events = events
        self.logger = logger
        self.clock = clock
        #: where the stream's frames are recorded (each connection's start marked OPEN), or None
        self.recorder = recorder
        self.feed = OrderBookFeed(pair, events, logger, tick=tick, on_status=on_status)
        self._book_top = book_top
        #: a snapshot arrived on this connection
        self.synced = False
        #: numbered updates arrived since the book was last known right (a silence then means a stalled feed)
        self.active = False
        self.silence = SilenceProbe(
            silence_timeout,
            self._on_silent,
            self._probe_venue,
            busy=lambda: not self.synced,  # no snapshot yet: nothing to probe
            clock=clock,
            name=f"luno-probe-{pair}",
        )
        self.ws = ReconnectingWebSocket(
            ws_url.rstrip("/") + c.MARKET_STREAM.format(pair=pair),
            self._on_frame,
            name=f"luno {pair} market stream",
            on_open=self._on_open,
            on_drop=self._on_drop,
            on_reconnect=on_reconnect,
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            reconnect_max_delay=reconnect_max_delay,
            clock=clock,
            logger=logger,
        )
        self._broken = False  # a resync is under way: frames until the next connection are not applied
        self._stalled = False  # the silence made the market UNSYNCED; a resumed feed or the probe reopens it

    @property
    def orders(self) -> OrderLevelBook:
        return self.feed.orders

    @property
    def snapshots(self) -> int:
        return self.feed.snapshots

    def start(self) -> None:
        self.ws.start()

    async def stop(self) -> None:
        await self.silence.stop()
        await self.ws.stop()

    # ------------------------------------------------------------------ connection
    async def _on_open(self, conn: Connection) -> None:
        self.synced = self._broken = self._stalled = self.active = False
        await conn.send(self.credentials.ws_frame)
        if self.recorder is not None:
            self.recorder.record(OPEN, "", self.clock.epoch_ns())

    def _on_drop(self, reason: str) -> None:
        self.silence.cancel()
        if not self._broken:  # a resync already said so
            self.events.status(MarketStatus.UNSYNCED, reason)
        self.synced = self._broken = False

    def _resync(self, reason: str) -> None:
        self.logger.warning("luno %s stream: %s; reconnecting", self.pair, reason)
        self.synced, self._broken = False, True
        self.events.status(MarketStatus.UNSYNCED, reason)
        self.ws.reconnect(reason)

    def _on_frame(self, raw: str | bytes) -> None:
        if raw in _KEEPALIVE or self._broken:
            return
        if self.recorder is not None:
            self.recorder.record(FRAME, raw if isinstance(raw, str) else raw.decode(), self.clock.epoch_ns())
        try:
            frame = orjson.loads(raw)
            if not isinstance(frame, dict):
                raise TypeError(type(frame).__name__)
            if self.synced:
                if self.feed.apply(frame):
                    self.silence.touch()
                    self.active = True
                    if self._stalled:  # the feed resumed in sequence: nothing was lost
                        self._stalled = False
                        self.events.status(self.feed.market_status, "luno feed resumed")
            else:
                self.feed.load(frame)
                self.synced = True
                self.ws.backoff.reset()
                self.silence.arm()
        except BookGap as gap:
            self._resync(str(gap))
        except Resync as exc:  # refused (credentials, market): end the connection and back off
            self.synced, self._broken = False, True
            self.events.status(MarketStatus.UNSYNCED, str(exc))
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
            self._resync(f"malformed frame ({type(exc).__name__}: {exc})")

    # ------------------------------------------------------------------ silent feed
    def _on_silent(self, seconds: float) -> bool:
        if not self.active:
            return False
        self._stalled = True
        reason = f"silent feed: no update for {seconds:.1f} s"
        self.logger.warning("luno %s %s: probing Luno", self.pair, reason)
        self.events.status(MarketStatus.UNSYNCED, reason)
        return True

    async def _probe_venue(self) -> None:
        watch = self.silence.watch
        connects, last_update = self.ws.connects, watch.last
        if not await self.ws.probe():
            self._resync(f"silent feed: {self.pair} stream did not answer a ping")
            return
        try:
            bids, asks = await self._book_top(self.pair)
        except (MoonshipError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
            self.logger.warning("luno %s silent-feed probe failed: %s", self.pair, exc)
            watch.arm()
            return
        if self.ws.connects != connects or watch.last != last_update:
            return  # reconnected, or updates arrived meanwhile: the usual path has it
        if not self.feed.matches(bids, asks):
            self._resync(f"silent feed: {self.pair} book differs from Luno's orderbook_top")
            return
        self.active = False
        if self._stalled:
            self._stalled = False
            self.logger.info("luno %s quiet market: the book matches Luno's", self.pair)
            self.events.status(self.feed.market_status, "luno quiet market")
        self.silence.quiet()


class ReplayParser(FrameParser):
    """A recorded Luno market fed through its own OrderBookFeed: each connection's first frame loads the
    snapshot, the rest apply in sequence; a gap or a malformed frame unsyncs the market until the next
    connection's snapshot, as live."""

    def __init__(self, pair: str, events: MarketEvents, logger: logging.Logger, tick: Decimal) -> None:
        self.book_feed = OrderBookFeed(pair, events, logger, tick=tick, on_status=lambda _: None)
        #: whether the connection's snapshot came (None: unsynced until the next connection)
        self._snapshot: bool | None = False

    def feed(self, kind: str, data: str) -> None:
        if kind == OPEN:
            self._snapshot = False
            return
        if self._snapshot is None:  # waiting for the next connection
            return
        try:
            frame = orjson.loads(data)
            if self._snapshot:
                self.book_feed.apply(frame)
            else:
                self.book_feed.load(frame)
                self._snapshot = True
        except (BookGap, Resync, orjson.JSONDecodeError, KeyError, TypeError, ValueError,
                ArithmeticError) as exc:
            self._snapshot = None
            self.book_feed.events.status(MarketStatus.UNSYNCED, str(exc))
