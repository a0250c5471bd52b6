"""VenueSession: what the markets of one venue and account share in an engine (HTTP client, rate limits,
server clock, sockets), owned by the engine and closed by it at stop."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from ..clock import Clock, LiveClock

T = TypeVar("T")


class VenueSession:
    """One venue (and account or base URL) in one engine. Get it with
    `context.session(key, lambda: VenueSession(...))`: the first market builds it, the others share it, the
    engine closes it. `part(name, factory)` keeps any other shared piece (a socket, a user stream); parts
    with `stop()` or `aclose()` are stopped when the session closes, in reverse order of creation."""

    def __init__(
        self,
        venue: str,
        base_url: str,
        *,
        request_timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        self.request_timeout = request_timeout
        self.clock = clock or LiveClock()
        self.logger = logger or logging.getLogger(f"moonship.{venue}")
        self._headers = {"User-Agent": f"moonship-{venue}", **(headers or {})}
        self._http: httpx.AsyncClient | None = None
        self._parts: dict[str, Any] = {}
        self.closed = False

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared HTTP client (connection pool) for `base_url`, created on first use."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self.request_timeout,
                headers=self._headers,
                limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            )
        return self._http

    def part(self, name: str, factory: Callable[[], T]) -> T:
        """The shared part `name`, built by `factory` the first time."""
        if name not in self._parts:
            self._parts[name] = factory()
        part: T = self._parts[name]
        return part

    async def aclose(self) -> None:
        """Stop every part and close the HTTP client; idempotent."""
        if self.closed:
            return
        self.closed = True
        for name, part in reversed(list(self._parts.items())):
            closer: Callable[[], Awaitable[object]] | None = getattr(part, "stop", None) or getattr(
                part, "aclose", None
            )
            if closer is not None:
                try:
                    await closer()
                except Exception as exc:
                    self.logger.warning("%s session: closing %s failed: %r", self.venue, name, exc)
        self._parts.clear()
        if self._http is not None:  # kept: a request after close fails instead of opening a new pool
            with contextlib.suppress(Exception):
                await self._http.aclose()
