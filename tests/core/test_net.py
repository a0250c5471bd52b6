"""Backoff and RateLimiter."""

from __future__ import annotations

import asyncio
import time

from moonship_core import Backoff
from moonship_core.venues.ratelimit import RateLimiter


def test_backoff_grows_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=1, maximum=8, factor=2)
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_rate_limiter_paces_by_weight_within_the_window() -> None:
    async def main() -> None:
        limiter = RateLimiter(limit=10, period=0.5)
        start = time.monotonic()
        for _ in range(5):
            await limiter.acquire(2)
        assert time.monotonic() - start < 0.1  # 10 weight fits the window
        assert limiter.used == 10
        await limiter.acquire(3)  # must wait for the window to roll over
        assert time.monotonic() - start >= 0.45

    asyncio.run(main())


def test_rate_limiter_honours_a_pause_and_the_exchanges_count() -> None:
    async def main() -> None:
        limiter = RateLimiter(limit=100, period=10)
        limiter.pause(0.3)  # Retry-After
        start = time.monotonic()
        await limiter.acquire()
        assert time.monotonic() - start >= 0.29
        limiter.sync(100)  # the exchange says the window is spent
        assert limiter.used == 100
        try:
            await asyncio.wait_for(limiter.acquire(), 0.2)
        except TimeoutError:
            pass
        else:
            raise AssertionError("acquired beyond the exchange's count")

    asyncio.run(main())
