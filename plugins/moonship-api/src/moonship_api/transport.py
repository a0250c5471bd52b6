"""Connections that end: uvicorn's h11 protocol with a header deadline, a body deadline and a connection cap.

uvicorn closes a kept-alive connection that stays silent for `timeout_keep_alive` seconds, but a byte now and
then restarts nothing and stops that timer, and a new connection has no timer at all: a slowloris client
(partial headers, sent slowly) or a slow body holds a connection, and its file descriptor, for as long as it
likes. Here every request's headers must be complete within `header_timeout` seconds of the connection
opening (after the TLS handshake, itself limited to the same time) or of the previous response, and its
body within `body_timeout` seconds of its headers; otherwise the connection is dropped. Connections beyond
`max_connections` are answered 503 and closed at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

#: the most header bytes a request may have (h11's max incomplete event size); more is 400
MAX_HEADER_BYTES = 16 * 1024

_BUSY_BODY = b'{"error": "Too many connections", "status": 503}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"content-length: %d\r\n"
    b"retry-after: 1\r\n"
    b"cache-control: no-store\r\n"
    b"connection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


@dataclass(frozen=True)
class ConnectionLimits:
    #: seconds for a request's headers, from the connection's start or the previous response
    header_timeout: float
    #: seconds for a request's body, from the end of its headers
    body_timeout: float
    #: open connections at most; more are answered 503 and closed
    max_connections: int


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and a connection cap."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        limits: ConnectionLimits,
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._refused = False
        self._waiting_for: object = None  # h11.IDLE (headers), h11.SEND_BODY or None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            transport.write(_BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def _track(self) -> None:
        """Keep the one deadline that applies to what the client owes us now: headers, a body, or nothing."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        waiting_for = state if state in (h11.IDLE, h11.SEND_BODY) else None
        if waiting_for is self._waiting_for:
            return  # the deadline runs from when the wait began: trickled bytes do not extend it
        self._disarm()
        self._waiting_for = waiting_for
        if waiting_for is not None:
            timeout = self.limits.header_timeout if waiting_for is h11.IDLE else self.limits.body_timeout
            self._deadline = self.loop.call_later(timeout, self._expired, waiting_for)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._waiting_for = None

    def _expired(self, waiting_for: object) -> None:
        self._deadline = None
        if self.conn.their_state is waiting_for and not self.transport.is_closing():
            # abort, not close: a TLS close waits for the peer's close_notify, which a slow client never sends
            self.transport.abort()
