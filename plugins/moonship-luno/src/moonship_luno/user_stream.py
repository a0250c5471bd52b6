"""Luno's user stream, one per engine and credentials, shared by its Luno markets: order status, order
fills and balance updates, routed to the listening clients by market id.

Luno replays the last 5 minutes of messages after a reconnect (so duplicates arrive and are ignored by the
listeners); after a longer outage, and on the first connection, the listeners reconcile through REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from moonship_core import Backoff, Clock

from . import constants as c
from .auth import Credentials


class UserListener(Protocol):
    """A client interested in one market's orders (and every balance)."""

    pair: str

    def on_order_status(self, update: dict[str, Any]) -> None: ...

    def on_order_fill(self, update: dict[str, Any]) -> None: ...

    def on_balance(self, update: dict[str, Any]) -> None: ...

    def reconcile_soon(self, reason: str) -> None:
        """The stream may have missed messages: catch up through REST."""
        ...


class UserStream:
    """The user stream of one set of credentials; runs while it has listeners."""

    def __init__(
        self,
        ws_url: str,
        credentials: Credentials,
        logger: logging.Logger,
        *,
        replay_window: float = c.REPLAY_WINDOW,
        stale_timeout: float = c.STALE_TIMEOUT,
        open_timeout: float = c.REQUEST_TIMEOUT,
        clock: Clock | None = None,
    ) -> None:
        self.url = ws_url.rstrip("/") + c.USER_STREAM
        self.credentials = credentials
        self.logger = logger
        self.replay_window = replay_window
        self.stale_timeout = stale_timeout
        self.open_timeout = open_timeout
        self.listeners: list[UserListener] = []
        #: connections made so far
        self.connects = 0
        #: called when a connection is made again (the engine's metrics)
        self.on_reconnect: Callable[[], None] | None = None
        #: set while connected
        self.connected = asyncio.Event()
        self.backoff = Backoff(initial=0.5, maximum=30.0, clock=clock)
        self._task: asyncio.Task[None] | None = None
        self._down_since: float | None = None  # loop time of the last disconnect (None: never connected)
        self._last = 0.0
        self._heard = False  # the current connection has delivered a frame
        self._rows: dict[str, int] = {}  # account id -> last balance row index seen

    def add(self, listener: UserListener) -> None:
        self.listeners.append(listener)
        if self.connected.is_set():
            listener.reconcile_soon("joined the user stream")
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def remove(self, listener: UserListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        if not self.listeners and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.connected.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            reason = "closed"
            try:
                async with connect(
                    self.url,
                    open_timeout=self.open_timeout,
                    ping_interval=c.PING_INTERVAL,
                    ping_timeout=c.PING_INTERVAL,
                    close_timeout=2,
                    compression=None,
                ) as ws:
                    await ws.send(self.credentials.ws_frame)
                    self._on_connect()
                    await self._consume(ws)
            except asyncio.CancelledError:
                raise
            except ConnectionClosed as exc:
                reason = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ValueError) as exc:
                reason = f"{type(exc).__name__} {exc}"
            if self.connected.is_set():
                self.connected.clear()
                if self._heard:  # a connection that never delivered anything does not end the outage
                    self._down_since = loop.time()
            self.logger.warning("luno user stream: %s; reconnecting", reason)
            await self.backoff.wait()

    def _on_connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._heard = False
        self.connects += 1
        if self.connects > 1 and self.on_reconnect is not None:
            self.on_reconnect()
        self.connected.set()
        down = None if self._down_since is None else loop.time() - self._down_since
        self.logger.info(
            "luno user stream connected%s", "" if down is None else f" after {down:.1f} s down"
        )
        if down is None or down > self.replay_window:
            why = "start-up" if down is None else f"user stream down {down:.0f} s, beyond Luno's replay"
            for listener in list(self.listeners):
                listener.reconcile_soon(why)

    async def _consume(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        watchdog = asyncio.ensure_future(self._watch(ws))
        try:
            async for raw in ws:
                self._last = loop.time()
                self._heard = True
                if raw in ('""', ""):
                    continue
                try:
                    frame = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    self.logger.warning("luno user stream: malformed frame ignored")
                    continue
                if not isinstance(frame, dict):
                    continue
                if "error_code" in frame:
                    raise ValueError(f"refused: {frame.get('error_code')} {frame.get('error', '')}")
                self._dispatch(frame)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _watch(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            left = self._last + self.stale_timeout - loop.time()
            if left <= 0:
                self.logger.warning("luno user stream silent for %g s", self.stale_timeout)
                await ws.close(4000, "stale feed")
                return
            await asyncio.sleep(left)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "order_status":
            update = frame.get("order_status_update") or {}
            for listener in self._for(update):
                listener.on_order_status(update)
        elif kind == "order_fill":
            update = frame.get("order_fill_update") or {}
            for listener in self._for(update):
                listener.on_order_fill(update)
        elif kind == "balance_update":
            update = frame.get("balance_update") or {}
            account, row = str(update.get("account_id")), int(update.get("row_index") or 0)
            if row and row <= self._rows.get(account, 0):
                return  # replayed
            self._rows[account] = row
            for listener in self.listeners:
                listener.on_balance(update)

    def _for(self, update: dict[str, Any]) -> list[UserListener]:
        market = update.get("market_id")
        return [listener for listener in self.listeners if listener.pair == market]
