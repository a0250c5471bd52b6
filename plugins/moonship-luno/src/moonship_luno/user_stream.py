"""Luno's user stream, one per engine and credentials, shared by its Luno markets: order status, order
fills and balance updates, routed to the listening clients by market id.

Luno replays the last 5 minutes of messages after a reconnect (so duplicates arrive and are ignored by the
listeners); after a longer outage, and on the first connection, the listeners reconcile through REST.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from moonship_core import Clock, Connection, ReconnectingWebSocket

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
    """The user stream of one set of credentials (a ReconnectingWebSocket); runs while it has listeners."""

    def __init__(
        self,
        ws_url: str,
        credentials: Credentials,
        logger: logging.Logger,
        *,
        replay_window: float,
        silence_timeout: float,
        open_timeout: float,
        ping_interval: float,
        pong_timeout: float,
        reconnect_max_delay: float,
        on_reconnect: Callable[[str], None] | None = None,
        clock: Clock,
    ) -> None:
        self.credentials = credentials
        self.logger = logger
        self.clock = clock
        self.replay_window = replay_window
        self.listeners: list[UserListener] = []
        self.ws = ReconnectingWebSocket(
            ws_url.rstrip("/") + c.USER_STREAM,
            self._on_frame,
            name="luno user stream",
            on_open=self._on_open,
            on_drop=self._on_drop,
            on_reconnect=on_reconnect,
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            silence_timeout=silence_timeout,
            reconnect_max_delay=reconnect_max_delay,
            clock=clock,
            logger=logger,
        )
        self._down_since: float | None = None  # monotonic time of the last drop (None: never connected)
        self._heard = False  # the current connection has delivered a frame
        self._rows: dict[str, int] = {}  # account id -> last balance row index seen

    @property
    def connected(self) -> asyncio.Event:
        """Set while connected."""
        return self.ws.connected

    @property
    def connects(self) -> int:
        return self.ws.connects

    def add(self, listener: UserListener) -> None:
        self.listeners.append(listener)
        if self.connected.is_set():
            listener.reconcile_soon("joined the user stream")
        self.ws.start()

    async def remove(self, listener: UserListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        if not self.listeners:
            await self.stop()

    async def stop(self) -> None:
        await self.ws.stop()

    async def _on_open(self, conn: Connection) -> None:
        await conn.send(self.credentials.ws_frame)
        self._heard = False
        now = self.clock.monotonic()
        down = None if self._down_since is None else now - self._down_since
        if down is None or down > self.replay_window:
            why = "start-up" if down is None else f"user stream down {down:.0f} s, beyond Luno's replay"
            for listener in list(self.listeners):
                listener.reconcile_soon(why)

    def _on_drop(self, reason: str) -> None:
        if self._heard:  # a connection that never delivered anything does not end the outage
            self._down_since = self.clock.monotonic()
        self._heard = False

    def _on_frame(self, raw: str | bytes) -> None:
        self._heard = True
        if raw in (b'""', b"", '""', ""):
            return
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.logger.warning("luno user stream: malformed frame ignored")
            return
        if not isinstance(frame, dict):
            return
        if "error_code" in frame:  # refused: end the connection, back off and retry
            raise ConnectionError(f"refused: {frame.get('error_code')} {frame.get('error', '')}")
        self._dispatch(frame)

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
