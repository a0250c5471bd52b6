"""MessageBus: control commands to named engines with correlated replies; the in-memory default.

A command is a JSON object `{"id", "command", "strategy"?, "config"?}`; the reply is
`{"id", "ok": bool, "result"?: ..., "error"?: str, "status"?: int}`. The engine de-duplicates by id, so
a caller may retry a command with the same id and it runs once.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from .cache import dumps, loads
from .errors import CommandTimeout, EngineUnavailable

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class MessageBus(ABC):
    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect (no-op in memory)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Disconnect and stop serving."""

    @abstractmethod
    async def serve(self, engine: str, handler: Handler) -> None:
        """Deliver commands addressed to `engine` to `handler` from now on."""

    @abstractmethod
    async def unserve(self, engine: str) -> None: ...

    @abstractmethod
    async def request(self, engine: str, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a command and wait for the reply; EngineUnavailable or CommandTimeout otherwise."""


class MemoryBus(MessageBus):
    """Commands within one process."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._tasks: set[asyncio.Task[dict[str, Any]]] = set()

    async def serve(self, engine: str, handler: Handler) -> None:
        self._handlers[engine] = handler

    async def unserve(self, engine: str) -> None:
        self._handlers.pop(engine, None)

    async def request(self, engine: str, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        handler = self._handlers.get(engine)
        if handler is None:
            raise EngineUnavailable(engine)
        # JSON both ways, as over a network, so both backends hand the same types to both sides; and the
        # command runs to completion even if the caller stops waiting, as it would on a remote engine
        task = asyncio.ensure_future(self._call(handler, loads(dumps(command))))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise CommandTimeout(engine, timeout) from None

    @staticmethod
    async def _call(handler: Handler, command: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = loads(dumps(await handler(command)))
        return reply

    async def close(self) -> None:
        self._handlers.clear()
