"""PicowsTransport: the venue toolkit's websocket Transport over picows (compiled frame parsing), the default
where picows is installed. Imported only when chosen (venues.websocket.default_transport)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSHandshakeError,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from .transport import CLOSE_TIMEOUT, Connection, Frame, UpgradeRefused

_TEXT, _BINARY, _CONTINUATION = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
_PONG, _CLOSE = WSMsgType.PONG, WSMsgType.CLOSE


class PicowsConnection(WSListener):
    """One picows connection behind the Connection protocol. picows calls `on_ws_frame` from the socket's
    data callback; while `deliver` runs each message goes straight to its handler (no queue, no future per
    message); before that (`on_open`'s `recv`) messages queue."""

    def __init__(self) -> None:
        self._transport: WSTransport | None = None
        self._queue: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._pongs: list[asyncio.Future[None]] = []
        self._fragments: bytearray | None = None
        self._handler: Callable[[bytes], None] = self._enqueue
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._end = "no close frame"
        self._error: Exception | None = None
        self._writable = asyncio.Event()
        self._writable.set()

    # ------------------------------------------------------------------ picows' callbacks
    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is _TEXT or kind is _BINARY:
            if not frame.fin:  # the first fragment of a message
                self._fragments = bytearray(frame.get_payload_as_memoryview())
                return
            data = frame.get_payload_as_bytes()
        elif kind is _CONTINUATION and self._fragments is not None:
            self._fragments += frame.get_payload_as_memoryview()
            if not frame.fin:
                return
            data, self._fragments = bytes(self._fragments), None
        elif kind is _PONG:  # a pong acknowledges every earlier ping
            pongs, self._pongs = self._pongs, []
            for waiter in pongs:
                if not waiter.done():
                    waiter.set_result(None)
            return
        elif kind is _CLOSE:
            code = frame.get_close_code()
            self._end = f"closed by the venue: {int(code.value)} {frame.get_close_reason() or ''}".rstrip()
            if not transport.is_close_frame_sent:
                transport.send_close(WSCloseCode.OK if code is WSCloseCode.NO_INFO else code)
            transport.disconnect()
            return
        else:
            return
        try:
            self._handler(data)
        except Exception as exc:  # the handler's failure ends the connection; `deliver` raises it
            self._error = exc
            transport.send_close(WSCloseCode.INTERNAL_ERROR)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        gone = ConnectionError(self._end)
        for waiter in (*self._pongs, self._waiter):
            if waiter is not None and not waiter.done():
                waiter.set_exception(gone)
                waiter.exception()  # retrieved: its awaiter may have given up already
        self._pongs = []
        if not self._ended.done():
            self._ended.set_result(None)
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # ------------------------------------------------------------------ the Connection protocol
    def _enqueue(self, data: bytes) -> None:
        self._queue.append(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _open(self) -> WSTransport:
        transport = self._transport
        if transport is None or transport.is_disconnected or transport.is_close_frame_sent:
            raise ConnectionError(self._end)
        return transport

    async def recv(self) -> Frame:
        while not self._queue:
            self._open()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._queue.popleft()

    async def deliver(self, on_frame: Callable[[Frame], None]) -> None:
        queue = self._queue
        try:
            while queue:
                on_frame(queue.popleft())
            self._handler = on_frame
            await asyncio.shield(self._ended)
        finally:
            self._handler = self._enqueue
        if self._error is not None:
            raise self._error
        raise ConnectionError(self._end)

    async def send(self, message: str) -> None:
        await self._writable.wait()
        self._open().send(_TEXT, message.encode())

    async def ping(self) -> Awaitable[object]:
        transport = self._open()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs.append(waiter)
        transport.send_ping()
        return waiter

    async def close(self) -> None:
        """Send a close frame, wait up to CLOSE_TIMEOUT for the venue's, then drop the socket."""
        transport = self._transport
        if transport is None or transport.is_disconnected:
            return
        if not transport.is_close_frame_sent:
            self._end = "closed by us"
            transport.send_close(WSCloseCode.OK)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._ended), CLOSE_TIMEOUT)
        transport.disconnect()
        await asyncio.shield(self._ended)


class PicowsTransport:
    """Connections over picows. `ssl_context` replaces the default (verifying) one for wss:// URLs."""

    def __init__(self, *, max_size: int = 2**24, ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_size = max_size
        self.ssl_context = ssl_context

    async def connect(
        self, url: str, *, open_timeout: float, headers: Mapping[str, str] | None = None
    ) -> Connection:
        try:
            _, conn = await ws_connect(
                PicowsConnection,
                url,
                ssl_context=self.ssl_context,
                websocket_handshake_timeout=open_timeout,
                enable_auto_pong=True,
                max_frame_size=self.max_size,
                extra_headers=headers,
                max_redirects=0,
            )
        except WSHandshakeError as exc:
            if exc.response is not None:
                raise UpgradeRefused(int(exc.response.status), exc.raw_body or b"") from exc
            raise ConnectionError(f"websocket handshake failed: {exc}") from exc
        except WSError as exc:
            raise ConnectionError(f"websocket handshake failed: {exc}") from exc
        assert isinstance(conn, PicowsConnection)
        return conn
