"""RateLimiter: request pacing by weight within a window, and server-imposed pauses (Retry-After)."""

from __future__ import annotations

import asyncio
from collections import deque

from ..clock import Clock, LiveClock


class RateLimiter:
    """Paces requests so at most `limit` weight is spent in any `period` seconds, and holds every request
    back until a server-imposed pause (429/418 Retry-After) has passed. Share one per exchange per process.
    Windows and pauses are measured, and waited out, on `clock` (the system clock by default).
    """

    def __init__(self, limit: int, period: float, *, clock: Clock | None = None) -> None:
        self.limit = limit
        self.period = period
        self.clock = clock or LiveClock()
        self._spent: deque[tuple[float, int]] = deque()  # (time, weight)
        self._used = 0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def used(self) -> int:
        """Weight spent within the current window."""
        self._expire(self.clock.monotonic())
        return self._used

    def _expire(self, now: float) -> None:
        spent = self._spent
        while spent and spent[0][0] <= now - self.period:
            self._used -= spent.popleft()[1]

    async def acquire(self, weight: int = 1) -> None:
        """Wait until `weight` may be spent without exceeding the limit or breaking a pause."""
        weight = min(weight, self.limit)
        async with self._lock:
            while True:
                now = self.clock.monotonic()
                if now < self._paused_until:
                    await self.clock.sleep(self._paused_until - now)
                    continue
                self._expire(now)
                if self._used + weight <= self.limit:
                    self._spent.append((now, weight))
                    self._used += weight
                    return
                await self.clock.sleep(self._spent[0][0] + self.period - now)

    def pause(self, seconds: float) -> None:
        """No request leaves for `seconds` (the exchange said Retry-After)."""
        self._paused_until = max(self._paused_until, self.clock.monotonic() + seconds)

    def sync(self, used: int) -> None:
        """Adopt the exchange's own count of weight used in this window (e.g. a used-weight header)."""
        now = self.clock.monotonic()
        self._expire(now)
        if used > self._used:
            self._spent.append((now, used - self._used))
            self._used = used
