"""Backoff: exponential, jittered delays between retries (reconnects, unreachable stores)."""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """Exponential delays with full jitter for reconnects: `await backoff.wait()`; `reset()` on success."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempts = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return random.uniform(ceiling / 2, ceiling)

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self.attempts = 0
