"""Backoff: exponential, jittered delays between retries (reconnects, unreachable stores)."""

from __future__ import annotations

import random

from .clock import Clock, LiveClock


class Backoff:
    """Exponential delays with full jitter for reconnects: `await backoff.wait()`; `reset()` on success.
    It sleeps on `clock` (a client passes its `context.clock`; the system clock by default)."""

    def __init__(
        self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0, *, clock: Clock | None = None
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempts = 0
        self.clock = clock or LiveClock()

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return random.uniform(ceiling / 2, ceiling)

    async def wait(self) -> None:
        await self.clock.sleep(self.next_delay())

    def reset(self) -> None:
        self.attempts = 0
