"""Rate limits: RateLimiter (one window), and RateLimits driven by a venue's RateTable (endpoint weights per
pool, per-account pools, the venue's usage headers, Retry-After pauses, engine-wide 418 bans)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from ..clock import Clock, LiveClock
from ..errors import RateLimited


class RateLimiter:
    """Paces requests so at most `limit` weight is spent in any `period` seconds, and holds every request
    back until a server-imposed pause (429/418 Retry-After) has passed. Share one per exchange per process.
    Windows and pauses are measured, and waited out, on `clock` (the system clock by default). `on_wait` is
    called once for each request that has to wait (the engine's metrics: `ClientContext.counters`).
    """

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        clock: Clock | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        self.limit = limit
        self.period = period
        self.clock = clock or LiveClock()
        self.on_wait = on_wait
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

    def wait_time(self, weight: int = 1) -> float:
        """Seconds until `weight` could be spent (ignoring requests queued meanwhile)."""
        weight = min(weight, self.limit)
        now = self.clock.monotonic()
        wait = self._paused_until - now
        self._expire(now)
        if self._used + weight > self.limit and self._spent:
            excess = self._used + weight - self.limit
            freed = 0
            for when, spent in self._spent:
                freed += spent
                if freed >= excess:
                    wait = max(wait, when + self.period - now)
                    break
        return max(wait, 0.0)

    async def acquire(self, weight: int = 1) -> None:
        """Wait until `weight` may be spent without exceeding the limit or breaking a pause."""
        weight = min(weight, self.limit)
        waited = False
        async with self._lock:
            while True:
                now = self.clock.monotonic()
                if now < self._paused_until:
                    delay = self._paused_until - now
                else:
                    self._expire(now)
                    if self._used + weight <= self.limit:
                        self._spent.append((now, weight))
                        self._used += weight
                        return
                    delay = self._spent[0][0] + self.period - now
                if not waited and self.on_wait is not None:
                    self.on_wait()
                waited = True
                await self.clock.sleep(delay)

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


@dataclass(frozen=True)
class Pool:
    """One rate-limit window: at most `limit` weight per `period` seconds, counted per IP (engine-wide) or
    per account (`per_account`). Several windows may share a `name` (e.g. orders per 10 s and per day): an
    endpoint's weight for that name is charged to each. `header` is the response header in which the venue
    reports its own count for this window (lower case), if it does."""

    name: str
    limit: int
    period: float
    per_account: bool = False
    header: str | None = None


@dataclass(frozen=True)
class RateTable:
    """A venue's rate-limit table: its pools, and the weight each endpoint ("METHOD /path") costs in each
    pool by name. An endpoint not in the table costs `default`."""

    pools: Sequence[Pool]
    endpoints: Mapping[str, Mapping[str, int]]
    default: Mapping[str, int] = field(default_factory=dict)

    def weights(self, endpoint: str) -> Mapping[str, int]:
        return self.endpoints.get(endpoint, self.default)


class Ban:
    """A venue-wide stop (HTTP 418 / an IP ban): shared by every RateLimits of the venue in an engine, e.g.
    `context.shared.setdefault("binance.ban", Ban())`."""

    def __init__(self) -> None:
        self.until = 0.0  # monotonic

    def impose(self, until: float) -> None:
        self.until = max(self.until, until)


class RateLimits:
    """Paces a venue's requests by its RateTable: `await limits.acquire("GET /api/v3/depth", account=key)`
    waits until every pool the endpoint costs has room and no Retry-After pause or ban is running.

    A wait longer than `max_wait` raises RateLimited at once (the caller decides; an order is not held for
    minutes). `on_wait(endpoint, seconds)` is told of every wait (metrics). `observe(headers)` adopts the
    venue's own counts; `refused(status, retry_after)` honours a 429 (this session) or 418 (the whole venue).
    """

    def __init__(
        self,
        table: RateTable,
        *,
        clock: Clock | None = None,
        max_wait: float = 30.0,
        ban: Ban | None = None,
        on_wait: Callable[[str, float], None] | None = None,
        latency_margin: float = 0.0,
    ) -> None:
        self.table = table
        self.clock = clock or LiveClock()
        self.max_wait = max_wait
        self.ban = ban or Ban()
        self.on_wait = on_wait
        #: added to every window: a request we count when sent, the venue counts when it arrives
        self.latency_margin = latency_margin
        self._pools: list[Pool] = list(table.pools)
        self._limiters: dict[tuple[int, str | None], RateLimiter] = {}
        self._paused_until = 0.0

    @property
    def pools(self) -> Sequence[Pool]:
        return tuple(self._pools)

    def configure(self, pools: Sequence[Pool]) -> None:
        """Replace the pools (a venue that publishes its limits, e.g. Binance's exchangeInfo)."""
        self._pools = list(pools)
        self._limiters.clear()

    def limiter(self, pool: Pool, account: str | None = None) -> RateLimiter:
        index = self._pools.index(pool)
        key = (index, account if pool.per_account else None)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = RateLimiter(
                pool.limit, pool.period + self.latency_margin, clock=self.clock
            )
        return limiter

    def _charged(self, endpoint: str, account: str | None) -> list[tuple[RateLimiter, int]]:
        weights = self.table.weights(endpoint)
        return [
            (self.limiter(pool, account), weights[pool.name])
            for pool in self._pools
            if weights.get(pool.name) and (account is not None or not pool.per_account)
        ]

    def wait_time(self, endpoint: str, *, account: str | None = None) -> float:
        """Seconds before `endpoint` may be sent (0 when now)."""
        now = self.clock.monotonic()
        wait = max(self._paused_until, self.ban.until) - now
        for limiter, weight in self._charged(endpoint, account):
            wait = max(wait, limiter.wait_time(weight))
        return max(wait, 0.0)

    async def acquire(self, endpoint: str, *, account: str | None = None) -> None:
        """Wait for room for `endpoint` in every pool it costs; RateLimited if longer than max_wait."""
        wait = self.wait_time(endpoint, account=account)
        if wait > self.max_wait:
            raise RateLimited(f"{endpoint}: rate limited for {wait:.1f} s more", retry_after=wait)
        if wait > 0 and self.on_wait is not None:
            self.on_wait(endpoint, wait)
        while (pause := max(self._paused_until, self.ban.until) - self.clock.monotonic()) > 0:
            await self.clock.sleep(pause)
        for limiter, weight in self._charged(endpoint, account):
            await limiter.acquire(weight)

    def observe(self, headers: Mapping[str, str], *, account: str | None = None) -> None:
        """Adopt the venue's counts from response headers (keys lower case, as httpx gives them)."""
        for pool in self._pools:
            if pool.header is None or (pool.per_account and account is None):
                continue
            value = headers.get(pool.header)
            if value is not None and value.isdigit():
                self.limiter(pool, account).sync(int(value))

    def refused(self, status: int, retry_after: float) -> None:
        """The venue said 429 (pause this session) or 418 (ban the venue engine-wide) for `retry_after` s."""
        until = self.clock.monotonic() + retry_after
        if status == 418:
            self.ban.impose(until)
        else:
            self._paused_until = max(self._paused_until, until)


def parse_retry_after(value: str | None, now: datetime, default: float = 1.0) -> float:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110), else `default`."""
    if value is None:
        return default
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
