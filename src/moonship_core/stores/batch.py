"""BatchWriter: queued writes, written together by a background task, so the trading path never waits on a
disk or a network. A failed batch is kept and retried; nothing queued is dropped. Writers queue what they
record as it is (immutable orders and fills) and encode it when the batch is written."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: how long queued writes wait for company before they are written together
BATCH_WINDOW = 0.05
#: the pause after a failed write before the next try
RETRY_DELAY = 1.0


class BatchWriter(Generic[T]):
    def __init__(
        self, write: Callable[[list[T]], Awaitable[None]], what: str, logger: logging.Logger
    ) -> None:
        self._write = write
        self._what = what
        self._logger = logger
        self._queue: list[T] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: the background task's write in progress: stop() lets it finish rather than cancel it midway
        self._writing: asyncio.Future[None] | None = None
        self._failing = False

    def add(self, item: T) -> None:
        self._queue.append(item)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"writer: {self._what}")

    async def stop(self) -> None:
        """Stop the background task (a write it has begun ends first) and write what is queued (raises if
        that last write fails)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        """Write everything queued so far."""
        batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            await self._write(batch)
        except BaseException:
            self._queue[:0] = batch
            raise
        if self._failing:
            self._failing = False
            self._logger.info("%s written again", self._what)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(BATCH_WINDOW)
            self._wake.clear()
            self._writing = asyncio.ensure_future(self.flush())
            try:
                await asyncio.shield(self._writing)
            except Exception as exc:
                if not self._failing:
                    self._logger.error("%s not written (%s); retrying, nothing is dropped", self._what, exc)
                    self._failing = True
                await asyncio.sleep(RETRY_DELAY)
                self._wake.set()

