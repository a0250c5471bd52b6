"""The connection writer: one accepted websocket whose frames are queued and written in order by its own task,
while the handler's loop reads what the peer sends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.websockets import WebSocket, WebSocketDisconnect

_CLOSE = object()


class Connection:
    """`send` queues a frame; `close` ends the connection once what is queued before it is written. While
    `frozen` nothing at all is sent (frames are dropped, no keepalives) and the socket stays open. With
    `keepalive` seconds, `keepalive_frame` is sent after that long without a frame. The socket is closed with
    `close_code` when the connection ends."""

    def __init__(
        self,
        ws: WebSocket,
        *,
        close_code: int = 1000,
        keepalive: float | None = None,
        keepalive_frame: str = "",
    ) -> None:
        self.ws = ws
        self.close_code = close_code
        self.keepalive = keepalive
        self.keepalive_frame = keepalive_frame
        self.frozen = False
        self._outbox: asyncio.Queue[object] = asyncio.Queue()

    def send(self, frame: str) -> None:
        if not self.frozen:
            self._outbox.put_nowait(frame)

    def close(self) -> None:
        self._outbox.put_nowait(_CLOSE)

    async def serve(self, on_text: Callable[[str], None]) -> None:
        """Write the outbox and hand each text the peer sends to `on_text`, until either side ends."""
        writer = asyncio.ensure_future(self._write())
        reader = asyncio.ensure_future(self._read(on_text))
        ended: list[object] = []
        try:
            await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, reader):
                task.cancel()
            ended = await asyncio.gather(writer, reader, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.ws.close(self.close_code)
        for outcome in ended:  # a fault of the simulator's own handler is not hidden
            if isinstance(outcome, Exception):
                raise outcome

    async def _write(self) -> None:
        with contextlib.suppress(Exception):  # the peer went away
            while True:
                try:
                    frame = await asyncio.wait_for(self._outbox.get(), self.keepalive)
                except TimeoutError:
                    frame = self.keepalive_frame
                if frame is _CLOSE:
                    return
                if not self.frozen:
                    await self.ws.send_text(str(frame))

    async def _read(self, on_text: Callable[[str], None]) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                on_text(await self.ws.receive_text())
