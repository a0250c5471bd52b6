"""ServerClock: a venue's server time as this process sees it (the offset learned from its time endpoint)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..clock import Clock, LiveClock


def _ms(clock: Clock) -> int:
    now = clock.now()
    return int(now.timestamp()) * 1000 + now.microsecond // 1000


class ServerClock:
    """Server time = the injected clock + an offset measured from `fetch_ms()` (the venue's time endpoint, in
    ms), assuming the server read its clock midway through the round trip. `ensure()` syncs when never synced,
    invalidated, or older than `max_age` s; concurrent callers share one fetch. After the venue rejects a
    timestamp, `invalidate()` and retry."""

    def __init__(
        self, fetch_ms: Callable[[], Awaitable[int]], clock: Clock | None = None, *, max_age: float = 1800.0
    ) -> None:
        self.fetch_ms = fetch_ms
        self.clock = clock or LiveClock()
        self.max_age = max_age
        self.offset_ms = 0
        #: round trip of the last sync, ms
        self.rtt_ms = 0
        self.synced_at: float | None = None  # monotonic
        self._lock = asyncio.Lock()

    def now_ms(self) -> int:
        return _ms(self.clock) + self.offset_ms

    def invalidate(self) -> None:
        self.synced_at = None

    @property
    def stale(self) -> bool:
        return self.synced_at is None or self.clock.monotonic() - self.synced_at > self.max_age

    async def ensure(self) -> None:
        if not self.stale:
            return
        async with self._lock:
            if self.stale:
                await self.sync()

    async def sync(self) -> None:
        sent = _ms(self.clock)
        server = await self.fetch_ms()
        received = _ms(self.clock)
        self.rtt_ms = received - sent
        self.offset_ms = server - (sent + received) // 2
        self.synced_at = self.clock.monotonic()
