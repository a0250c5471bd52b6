"""The in-process cache and bus (the default without `moonship.redis.url`).

Values are stored as JSON and the bus JSON-encodes both ways, as over a network, so both backends hand the
same types to both sides."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..codec import json_dumps as dumps
from ..codec import json_loads as loads
from ..contracts.stores import Handler, MessageBus, SharedCache, Stores
from ..errors import CommandTimeout, EngineUnavailable


class MemoryCache(SharedCache):
    """In-process cache for a single process (the default without Redis)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._expiry: dict[str, float] = {}

    def _live(self, key: str) -> bool:
        deadline = self._expiry.get(key)
        if deadline is not None and deadline <= time.monotonic():
            self._data.pop(key, None)
            del self._expiry[key]
        return key in self._data

    async def get(self, key: str) -> Any | None:
        return loads(self._data[key]) if self._live(key) else None

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._data[key] = dumps(value)
        if ttl is None:
            self._expiry.pop(key, None)
        else:
            self._expiry[key] = time.monotonic() + ttl

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)
            self._expiry.pop(key, None)

    async def expire(self, key: str, ttl: float) -> bool:
        if not self._live(key):
            return False
        self._expiry[key] = time.monotonic() + ttl
        return True

    async def incr(self, key: str, ttl: float | None = None) -> int:
        value = int(loads(self._data[key])) + 1 if self._live(key) else 1
        await self.set(key, value, ttl if ttl is not None else self._remaining(key))
        return value

    def _remaining(self, key: str) -> float | None:
        deadline = self._expiry.get(key)
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    async def hset(self, key: str, values: dict[str, Any]) -> None:
        table = self._data[key] if self._live(key) else self._data.setdefault(key, {})
        table.update((k, dumps(v)) for k, v in values.items())

    async def hget(self, key: str, field: str) -> Any | None:
        if not self._live(key) or field not in self._data[key]:
            return None
        return loads(self._data[key][field])

    async def hgetall(self, key: str) -> dict[str, Any]:
        return {k: loads(v) for k, v in self._data[key].items()} if self._live(key) else {}

    async def hdel(self, key: str, *fields: str) -> None:
        if self._live(key):
            for f in fields:
                self._data[key].pop(f, None)


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


def memory_backend(config: Any) -> Stores:
    """Cache and bus within this process."""
    return Stores(MemoryCache(), MemoryBus())
