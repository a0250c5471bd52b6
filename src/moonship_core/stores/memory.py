"""The in-process cache, bus and journal (the default without `moonship.redis.url`).

Values are stored as JSON and the bus JSON-encodes both ways, as over a network, so both backends hand the
same types to both sides."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from ..codec import json_dumps as dumps
from ..codec import json_loads as loads
from ..config import MoonshipConfig
from ..contracts.stores import FillRecord, Handler, Journal, MessageBus, OrderRecord, SharedCache, Stores
from ..errors import CommandTimeout, EngineUnavailable
from ..model import Order
from .sqlite import SqliteJournal


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


class MemoryJournal(Journal):
    """A journal that lives as long as the process (embedded engines and tests)."""

    def __init__(self) -> None:
        self._orders: dict[str, OrderRecord] = {}
        self._fills: dict[tuple[str, str], FillRecord] = {}
        self._state: dict[str, Any] = {}

    def record_order(self, strategy: str, market: str, order: Order) -> None:
        self._orders.pop(order.client_order_id, None)  # dicts keep insertion order: latest update last
        self._orders[order.client_order_id] = OrderRecord(strategy, market, order)

    def record_fill(self, record: FillRecord) -> None:
        self._fills.setdefault((record.client_order_id, record.fill.trade_id), record)

    def put(self, key: str, value: Any) -> None:
        self._state[key] = loads(dumps(value))

    async def flush(self) -> None:
        pass

    async def orders(
        self,
        *,
        strategy: str | None = None,
        open_only: bool = False,
        closed_only: bool = False,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[OrderRecord]:
        found = [
            r for r in reversed(self._orders.values())
            if (strategy is None or r.strategy == strategy)
            and not (open_only and r.order.status.is_final)
            and not (closed_only and not r.order.status.is_final)
            and (since is None or r.order.updated >= since)
        ]
        return found[:limit] if limit is not None else found

    async def fills(
        self, *, strategy: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[FillRecord]:
        found = [
            r for r in reversed(self._fills.values())
            if (strategy is None or r.strategy == strategy) and (since is None or r.fill.timestamp >= since)
        ]
        return found[:limit] if limit is not None else found

    async def get(self, key: str) -> Any | None:
        return self._state.get(key)


def memory_backend(config: MoonshipConfig) -> Stores:
    """Cache and bus within this process; the journal in a SQLite file."""
    return Stores(MemoryCache(), MemoryBus(), SqliteJournal(config.journal_path))
