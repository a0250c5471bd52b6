"""Order and balance events: the WebSocket API user data stream (`userDataStream.subscribe.signature`), one
connection per API key shared by that key's markets. After every (re)subscribe each market reconciles its
orders and fills through REST, so nothing that happened while disconnected is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from moonship_core import Backoff, ExchangeError, MoonshipError
from moonship_core import Clock as CoreClock

from .auth import Clock, Credentials, ws_signature
from .rest import map_error


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
        clock: Clock,
        sync_time: Callable[[], Awaitable[None]],
        *,
        reconnect_after: float,
        max_delay: float,
        open_timeout: float,
        logger: logging.Logger,
        pacing: CoreClock | None = None,
    ) -> None:
        self.url = url
        self.pacing = pacing
        self.creds = creds
        self.clock = clock
        self._sync_time = sync_time
        self.reconnect_after = reconnect_after
        self.open_timeout = open_timeout
        self.logger = logger
        self.listeners: list[UserListener] = []
        self.subscribed = asyncio.Event()
        self.subscribes = 0
        #: called when a connection is made again (the engine's metrics)
        self.on_reconnect: Callable[[], None] | None = None
        self._backoff = Backoff(0.2, max_delay, clock=pacing)
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._close_reason = ""
        self._request_ids = 0

    def add(self, listener: UserListener) -> None:
        self.listeners.append(listener)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def remove(self, listener: UserListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        if not self.listeners:
            await self.stop()

    async def stop(self) -> None:
        for task in [self._task, *self._tasks]:
            if task is not None:
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                *[t for t in [self._task, *self._tasks] if t is not None], return_exceptions=True
            )
        self._task = None
        self.subscribed.clear()

    # ------------------------------------------------------------------ connection
    async def _run(self) -> None:
        while self.listeners:
            reason = "connection lost"
            healthy = False
            try:
                async with connect(
                    self.url,
                    open_timeout=self.open_timeout,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=1,
                    max_queue=None,
                ) as ws:
                    self._close_reason = ""
                    await self._subscribe(ws)
                    healthy = True
                    self.subscribes += 1
                    if self.subscribes > 1 and self.on_reconnect is not None:
                        self.on_reconnect()
                    self.subscribed.set()
                    self.logger.info("Binance user stream subscribed (%s...)", self.creds.api_key[:6])
                    for listener in list(self.listeners):
                        self._spawn(self._reconcile(listener))
                    watchdog = asyncio.get_running_loop().create_task(self._watchdog(ws))
                    try:
                        while True:
                            self._on_message(await ws.recv(decode=False), ws)
                    finally:
                        watchdog.cancel()
            except asyncio.CancelledError:
                raise
            except ExchangeError as exc:
                reason = f"subscription refused: {exc}"
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = self._close_reason or f"connection lost: {exc!r}"
            self.subscribed.clear()
            self.logger.warning("Binance user stream down: %s", reason)
            if healthy:
                self._backoff.reset()
            if not (healthy and self._close_reason):
                await self._backoff.wait()

    async def _subscribe(self, ws: ClientConnection) -> None:
        """Sign and send the subscription; a -1021 re-syncs the clock and tries once more."""
        for attempt in (0, 1):
            params: dict[str, str | int] = {"apiKey": self.creds.api_key, "timestamp": self.clock.now_ms()}
            params["signature"] = ws_signature(self.creds.secret, params)
            self._request_ids += 1
            rid = f"sub-{self._request_ids}"
            await ws.send(
                orjson.dumps(
                    {"id": rid, "method": "userDataStream.subscribe.signature", "params": params}
                ).decode()
            )
            async with asyncio.timeout(self.open_timeout):
                while True:
                    answer = orjson.loads(await ws.recv(decode=False))
                    if isinstance(answer, dict) and answer.get("id") == rid:
                        break
            if answer.get("status") == 200:
                return
            error = answer.get("error") or {}
            exc = map_error(int(answer.get("status") or 400), error.get("code"), str(error.get("msg", "")))
            if exc.code == -1021 and not attempt:
                await self._sync_time()
                continue
            raise exc

    async def _watchdog(self, ws: ClientConnection) -> None:
        await asyncio.sleep(self.reconnect_after)
        self._close_reason = "scheduled reconnect ahead of the 24-hour cut"
        await ws.close()

    def _on_message(self, raw: bytes, ws: ClientConnection) -> None:
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
            self._close_reason = kind
            self._spawn(ws.close())

    def _deliver(self, handler: Callable[[dict[str, Any]], None], event: dict[str, Any]) -> None:
        try:
            handler(event)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            self.logger.warning("Binance user stream: malformed %s ignored: %r", event.get("e"), exc)

    async def _reconcile(self, listener: UserListener) -> None:
        backoff = Backoff(0.5, 10.0, clock=self.pacing)
        started = time.monotonic()
        while self.subscribed.is_set():
            try:
                await listener.reconcile()
                return
            except MoonshipError as exc:
                self.logger.warning("%s reconcile failed (%s); retrying", listener.symbol, exc)
                if time.monotonic() - started > 300:
                    return
                await backoff.wait()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
