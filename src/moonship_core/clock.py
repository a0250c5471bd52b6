"""Clock: the one source of time for trading code. LiveClock reads the system; SimClock moves only when told
to (backtests, deterministic tests), waking the sleepers whose time has come."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

T = TypeVar("T")


class Clock(ABC):
    """Wall time (aware UTC), a monotonic reading for deadlines, and sleeping."""

    @abstractmethod
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    @abstractmethod
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines and intervals)."""

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""

    def epoch_ns(self) -> int:
        """`now()` as integer nanoseconds since the Unix epoch (the receive time of a recorded frame)."""
        return epoch_ns(self.now())

    async def wait_for(self, awaitable: Awaitable[T], timeout: float) -> T:
        """The result of `awaitable`, or TimeoutError (and `awaitable` cancelled) once `timeout` seconds of
        this clock's time have passed."""
        task = asyncio.ensure_future(awaitable)
        timer = asyncio.ensure_future(self.sleep(timeout))
        try:
            await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, timer, return_exceptions=True)
        if task.cancelled():
            raise TimeoutError
        return task.result()


class LiveClock(Clock):
    """The system clock and the event loop's timers."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def epoch_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    async def wait_for(self, awaitable: Awaitable[T], timeout: float) -> T:
        # asyncio.timeout, not asyncio.wait_for: on Python 3.11 wait_for can swallow the cancel of a task
        async with asyncio.timeout(max(timeout, 0.0)):
            return await awaitable


class SimClock(Clock):
    """Simulated time: `advance_to` / `advance` move it and wake every sleeper due by then, in deadline
    order. `monotonic()` counts seconds since the epoch of `now()`. Time is kept in whole microseconds (the
    resolution of datetime), so advancing to `next_wakeup` always wakes the sleeper it names."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock needs a timezone-aware start time")
        self._epoch = start.astimezone(UTC)
        self._epoch_us = epoch_ns(self._epoch) // 1000
        self._elapsed = 0  # microseconds
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._epoch + timedelta(microseconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed / 1_000_000

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._elapsed + math.ceil(seconds * 1_000_000)  # never early
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    @property
    def next_wakeup(self) -> datetime | None:
        """When the earliest sleeper is due (None when nothing sleeps)."""
        due = self.next_wakeup_ns
        return None if due is None else from_epoch_ns(due)

    @property
    def next_wakeup_ns(self) -> int | None:
        """`next_wakeup` in epoch nanoseconds."""
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleepers
            heapq.heappop(self._sleepers)
        return (self._epoch_us + self._sleepers[0][0]) * 1000 if self._sleepers else None

    def advance_to(self, when: datetime) -> None:
        """Move to `when` (never backwards) and wake the sleepers due by then; they run at the loop's next
        turn."""
        self.advance_to_ns(epoch_ns(when))

    def advance_to_ns(self, ns: int) -> None:
        """`advance_to` a time in epoch nanoseconds (rounded down to the microsecond)."""
        target = ns // 1000 - self._epoch_us
        if target > self._elapsed:
            self._elapsed = target
        sleepers = self._sleepers
        while sleepers and sleepers[0][0] <= self._elapsed:
            _, _, future = heapq.heappop(sleepers)
            if not future.done():
                future.set_result(None)

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now() + timedelta(seconds=seconds))


_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ns(when: datetime) -> int:
    """An aware datetime as integer nanoseconds since the Unix epoch (exact)."""
    return (when - _EPOCH) // _MICROSECOND * 1000


def from_epoch_ns(ns: int) -> datetime:
    """Integer nanoseconds since the Unix epoch as an aware UTC datetime (microseconds, rounded down)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)
