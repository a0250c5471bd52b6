"""The websocket Transport abstraction the toolkit's ReconnectingWebSocket runs on: Connection and Transport
(protocols), UpgradeRefused. Implementations: picows_transport (the default where picows installs) and
websockets_transport (pure Python, the fallback)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

Frame = str | bytes
#: seconds a clean close waits for the venue's answering close frame before dropping the socket
CLOSE_TIMEOUT = 1.0


class UpgradeRefused(ConnectionError):
    """The venue answered the websocket upgrade with an HTTP status other than 101 (e.g. 401 for a signature
    it refused): the status and the response's body."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"upgrade refused: HTTP {status} {body[:200].decode(errors='replace')}".rstrip())
        self.status = status
        self.body = body


class Connection(Protocol):
    """One open websocket; text frames arrive as UTF-8 bytes. Once the socket is gone every method raises
    ConnectionError."""

    async def send(self, message: str) -> None: ...

    async def recv(self) -> Frame: ...

    async def deliver(self, on_frame: Callable[[Frame], None]) -> None:
        """Hand every frame (those not yet taken by `recv` first) to `on_frame` until the connection ends,
        then raise ConnectionError saying how it ended (an exception from `on_frame` ends it, raised)."""
        ...

    async def ping(self) -> Awaitable[object]:
        """Send a ping; the returned awaitable completes when its pong arrives."""
        ...

    async def close(self) -> None: ...


class Transport(Protocol):
    """Opens connections, sending `headers` with the upgrade request. A refused upgrade raises UpgradeRefused,
    any other failure ConnectionError (an OSError) or TimeoutError."""

    async def connect(
        self, url: str, *, open_timeout: float, headers: Mapping[str, str] | None = None
    ) -> Connection: ...
