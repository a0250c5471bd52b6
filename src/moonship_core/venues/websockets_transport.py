"""WebsocketsTransport: the venue toolkit's websocket Transport over the pure-Python `websockets` library, the
fallback where picows cannot install (or with MOONSHIP_WS_TRANSPORT=websockets)."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from functools import partial
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from .transport import CLOSE_TIMEOUT, Connection, Frame, UpgradeRefused


def _gone(exc: WebSocketException) -> ConnectionError:
    """How the connection ended, in the words PicowsConnection uses."""
    if not isinstance(exc, ConnectionClosed):
        return ConnectionError(str(exc))
    if exc.rcvd is None:
        return ConnectionError("no close frame")
    if exc.sent is not None and not exc.rcvd_then_sent:
        return ConnectionError("closed by us")
    return ConnectionError(f"closed by the venue: {exc.rcvd.code} {exc.rcvd.reason}".rstrip())


class WebsocketsConnection:
    """A `websockets` client connection behind the Connection protocol."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        #: text frames as UTF-8 bytes (parsers take them as they are)
        self._recv: Callable[[], Coroutine[Any, Any, Frame]] = partial(ws.recv, decode=False)

    async def recv(self) -> Frame:
        try:
            return await self._recv()
        except WebSocketException as exc:
            raise _gone(exc) from exc

    async def deliver(self, on_frame: Callable[[Frame], None]) -> None:
        recv = self._recv
        try:
            while True:
                on_frame(await recv())
        except WebSocketException as exc:
            raise _gone(exc) from exc

    async def send(self, message: str) -> None:
        try:
            await self._ws.send(message)
        except WebSocketException as exc:
            raise _gone(exc) from exc

    async def ping(self) -> Awaitable[object]:
        try:
            return await self._ws.ping()
        except WebSocketException as exc:
            raise _gone(exc) from exc

    async def close(self) -> None:
        await self._ws.close()


class WebsocketsTransport:
    """Connections over `websockets`, its keepalive off (ReconnectingWebSocket pings). `ssl_context`
    replaces the default (verifying) one for wss:// URLs."""

    def __init__(self, *, max_size: int = 2**24, ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_size = max_size
        self.ssl_context = ssl_context

    async def connect(
        self, url: str, *, open_timeout: float, headers: Mapping[str, str] | None = None
    ) -> Connection:
        secure = self.ssl_context is not None and url.startswith("wss:")
        options: dict[str, Any] = {"ssl": self.ssl_context} if secure else {}
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                open_timeout=open_timeout,
                ping_interval=None,
                close_timeout=CLOSE_TIMEOUT,
                max_size=self.max_size,
                max_queue=None,
                **options,
            )
        except InvalidStatus as exc:
            raise UpgradeRefused(exc.response.status_code, bytes(exc.response.body or b"")) from exc
        except WebSocketException as exc:
            raise ConnectionError(f"websocket handshake failed: {exc}") from exc
        return WebsocketsConnection(ws)
