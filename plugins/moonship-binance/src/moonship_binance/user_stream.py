"""Order and balance events: the WebSocket API user data stream (`userDataStream.subscribe.signature`), one
ReconnectingWebSocket per API key shared by that key's markets. After every (re)subscribe each market
reconciles its orders and fills through REST, so nothing that happened while disconnected is missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from moonship_core import Backoff, Clock, Connection, MoonshipError, ReconnectingWebSocket, ServerClock

from . import constants as c
from .auth import Credentials, ws_signature


class UserListener(Protocol):
    """What a market client provides to receive its account's events."""

    @property
    def symbol(self) -> str: ...

    def on_execution_report(self, event: dict[str, Any]) -> None: ...

    def on_account_position(self, event: dict[str, Any]) -> None: ...

    async def reconcile(self) -> None: ...


class UserStream:
    """The user data subscription of one API key."""

    def __init__(
        self,
        url: str,
        creds: Credentials,
        server_time: ServerClock,
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
        self.creds = creds
        self.server_time = server_time
        self.open_timeout = open_timeout
        self.logger = logger
        self.clock = clock
        self.listeners: list[UserListener] = []
        self.subscribed = asyncio.Event()
        self.subscribes = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._request_ids = 0
        self.ws = ReconnectingWebSocket(
            url,
            self._on_message,
            name=f"Binance user stream ({creds.api_key[:6]}...)",
            on_open=self._subscribe,
            on_drop=self._dropped,
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            on_reconnect=on_reconnect,
            reconnect_max_delay=reconnect_max_delay,
            max_lifetime=reconnect_after,
            clock=clock,
            logger=logger,
        )

    def add(self, listener: UserListener) -> None:
        self.listeners.append(listener)
        self.ws.start()

    async def remove(self, listener: UserListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        if not self.listeners:
            await self.stop()

    async def stop(self) -> None:
        await self.ws.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.subscribed.clear()

    def _dropped(self, reason: str) -> None:
        self.subscribed.clear()

    async def _subscribe(self, conn: Connection) -> None:
        """Sign and send the subscription; a -1021 re-syncs the clock and tries once more."""
        for attempt in (0, 1):
            await self.server_time.ensure()
            params: dict[str, str | int] = {
                "apiKey": self.creds.api_key,
                "timestamp": self.server_time.now_ms(),
            }
            params["signature"] = ws_signature(self.creds.secret, params)
            self._request_ids += 1
            rid = f"sub-{self._request_ids}"
            await conn.send(
                orjson.dumps(
                    {"id": rid, "method": "userDataStream.subscribe.signature", "params": params}
                ).decode()
            )
            answer = await self.clock.wait_for(self._answer(conn, rid), self.open_timeout)
            if answer.get("status") == 200:
                break
            error = answer.get("error") or {}
            status = int(answer.get("status") or 400)
            exc = c.ERRORS.error(status, error.get("code"), str(error.get("msg", "")))
            if exc.code == c.TIMESTAMP_REJECTED and not attempt:
                self.server_time.invalidate()
                continue
            raise exc
        self.subscribes += 1
        self.subscribed.set()
        self.logger.info("Binance user stream subscribed (%s...)", self.creds.api_key[:6])
        for listener in list(self.listeners):
            self._spawn(self._reconcile(listener))

    @staticmethod
    async def _answer(conn: Connection, rid: str) -> dict[str, Any]:
        while True:
            answer = orjson.loads(await conn.recv())
            if isinstance(answer, dict) and answer.get("id") == rid:
                return answer

    def _on_message(self, raw: str | bytes) -> None:
        try:
            msg = orjson.loads(raw)
            event = msg.get("event")
            kind = event.get("e") if isinstance(event, dict) else None
        except (orjson.JSONDecodeError, AttributeError):
            self.logger.warning("Binance user stream: malformed frame ignored")
            return
        if kind == "executionReport":
            for listener in self.listeners:
                if listener.symbol == event.get("s"):
                    self._deliver(listener.on_execution_report, event)
        elif kind == "outboundAccountPosition":
            for listener in self.listeners:
                self._deliver(listener.on_account_position, event)
        elif kind in ("serverShutdown", "eventStreamTerminated"):
            self.ws.reconnect(kind)

    def _deliver(self, handler: Callable[[dict[str, Any]], None], event: dict[str, Any]) -> None:
        try:
            handler(event)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            self.logger.warning("Binance user stream: malformed %s ignored: %r", event.get("e"), exc)

    async def _reconcile(self, listener: UserListener) -> None:
        backoff = Backoff(0.5, 10.0, clock=self.clock)
        started = self.clock.monotonic()
        while self.subscribed.is_set():
            try:
                await listener.reconcile()
                return
            except MoonshipError as exc:
                self.logger.warning("%s reconcile failed (%s); retrying", listener.symbol, exc)
                if self.clock.monotonic() - started > 300:
                    return
                await backoff.wait()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
