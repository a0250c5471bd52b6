"""Luno's market stream: the order-level book of one pair, kept in the core's OrderLevelBook (so the market's
L2 book is the aggregate of Luno's orders), public trades and market status.

Protocol: connect to `/api/1/stream/PAIR`, send the credentials frame, receive a snapshot of every order,
then numbered updates, each applied atomically in the order trades, create, delete, status. An update must
carry the previous sequence + 1: a gap (or a malformed frame, or a silent feed) closes the socket and the
reconnect brings a fresh snapshot; the sequence starts again from every snapshot, whatever ended the last
connection. `""` frames are keepalives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from moonship_core import (
    FRAME,
    Backoff,
    BookGap,
    Clock,
    FrameParser,
    MarketEvents,
    MarketStatus,
    OrderLevelBook,
    Recorder,
    Side,
    Trade,
    from_ms,
)

from . import constants as c
from .auth import Credentials

_KEEPALIVE = ('""', "")
#: the kind of the recorded mark of a new connection (its next frame is a snapshot)
OPEN = "open"


class Resync(Exception):
    """The feed cannot be trusted any more: reconnect for a fresh snapshot."""


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
        stale_timeout: float = c.STALE_TIMEOUT,
        open_timeout: float = c.REQUEST_TIMEOUT,
        clock: Clock | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        #: where the stream's frames are recorded (each connection's start marked OPEN), or None
        self.recorder = recorder
        self.clock = clock
        self.url = ws_url.rstrip("/") + c.MARKET_STREAM.format(pair=pair)
        self.pair = pair
        self.credentials = credentials
        self.events = events
        self.logger = logger
        self.tick = tick
        self.on_status = on_status
        self.stale_timeout = stale_timeout
        self.open_timeout = open_timeout
        #: the order-level book; its `book` is the market's L2 book
        self.orders = OrderLevelBook(events.book)
        #: Luno's trading status as the stream last said (ACTIVE, POSTONLY, DISABLED)
        self.trading_status: str | None = None
        #: snapshots received (each connection starts with one)
        self.snapshots = 0
        self.connects = 0
        #: called when a connection is made again (the engine's metrics)
        self.on_reconnect: Callable[[], None] | None = None
        self.backoff = Backoff(initial=0.5, maximum=30.0, clock=clock)
        self._task: asyncio.Task[None] | None = None
        self._last = 0.0
        self._stale = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            reason = "closed"
            try:
                async with connect(
                    self.url,
                    open_timeout=self.open_timeout,
                    ping_interval=c.PING_INTERVAL,
                    ping_timeout=c.PING_INTERVAL,
                    close_timeout=2,
                    max_size=c.MAX_FRAME,
                    compression=None,
                ) as ws:
                    self.connects += 1
                    if self.connects > 1 and self.on_reconnect is not None:
                        self.on_reconnect()
                    await ws.send(self.credentials.ws_frame)
                    await self._consume(ws)
            except asyncio.CancelledError:
                raise
            except BookGap as exc:
                reason = str(exc)
            except Resync as exc:
                reason = str(exc)
            except ConnectionClosed as exc:
                reason = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                reason = f"cannot connect: {type(exc).__name__} {exc}"
            self.events.status(MarketStatus.UNSYNCED, reason)
            self.logger.warning("luno %s stream: %s; reconnecting", self.pair, reason)
            await self.backoff.wait()

    async def _consume(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        self._stale = False
        watchdog = asyncio.ensure_future(self._watch(ws))
        try:
            await self._read(ws, loop)
        except ConnectionClosed:
            if not self._stale:
                raise
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if self._stale:
            raise Resync(f"stale feed: nothing for {self.stale_timeout:g} s")

    async def _read(self, ws: ClientConnection, loop: asyncio.AbstractEventLoop) -> None:
        """The snapshot, then updates, until the connection ends."""
        snapshot = False
        recorder, clock = self.recorder, self.clock
        if recorder is not None and clock is not None:
            recorder.record(OPEN, "", clock.epoch_ns())
        async for raw in ws:
            self._last = loop.time()
            if raw in _KEEPALIVE:
                continue
            if recorder is not None and clock is not None:
                recorder.record(FRAME, raw if isinstance(raw, str) else raw.decode(), clock.epoch_ns())
            try:
                frame = orjson.loads(raw)
                if not isinstance(frame, dict):
                    raise TypeError(type(frame).__name__)
                if snapshot:
                    self._apply(frame)
                else:
                    self._load(frame)
                    snapshot = True
            except BookGap:
                raise
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
                raise Resync(f"malformed frame ({type(exc).__name__}: {exc})") from exc

    async def _watch(self, ws: ClientConnection) -> None:
        """Closes the connection once it has been silent for `stale_timeout`."""
        loop = asyncio.get_running_loop()
        while True:
            left = self._last + self.stale_timeout - loop.time()
            if left <= 0:
                self._stale = True
                await ws.close(4000, "stale feed")
                return
            await asyncio.sleep(left)

    def _load(self, frame: dict[str, Any]) -> None:
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
        self.backoff.reset()
        self.logger.info(
            "luno %s stream synced: %d orders at sequence %s", self.pair, len(orders), frame["sequence"]
        )
        self.events.book_changed()
        self._status(str(frame.get("status") or "ACTIVE"))

    def _apply(self, frame: dict[str, Any]) -> None:
        """One numbered update, applied atomically: trades, create, delete, status."""
        sequence = int(frame["sequence"])
        orders = self.orders
        if not orders.expects(sequence):
            return
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
            self._status(str(status["status"]))

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

    def _status(self, status: str) -> None:
        self.trading_status = status
        self.on_status(status)
        self.events.status(c.MARKET_STATUS.get(status, MarketStatus.CLOSED), f"luno status {status}")


class ReplayParser(FrameParser):
    """A recorded Luno market fed through its own MarketStream: each connection's first frame loads the
    snapshot, the rest apply in sequence; a gap or a malformed frame unsyncs the market until the next
    connection's snapshot, as live."""

    def __init__(self, pair: str, events: MarketEvents, logger: logging.Logger, tick: Decimal) -> None:
        self.stream = MarketStream(
            "", pair, Credentials("", ""), events, logger, tick=tick, on_status=lambda _: None
        )
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
                self.stream._apply(frame)
            else:
                self.stream._load(frame)
                self._snapshot = True
        except (BookGap, Resync, orjson.JSONDecodeError, KeyError, TypeError, ValueError,
                ArithmeticError) as exc:
            self._snapshot = None
            self.stream.events.status(MarketStatus.UNSYNCED, str(exc))
