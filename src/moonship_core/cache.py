"""SharedCache: runtime state shared by engines, the API and the monitor; the in-memory default.

Values are JSON documents (Decimal as exact text, datetimes as ISO-8601 UTC). Key layout, the same for
every backend:

- `moonship:engines` hash: engine name -> {"instance": id, "started": iso time}
- `moonship:{engine}:heartbeat` string with a TTL; the engine is running while it exists
- `moonship:{engine}:strategies` hash: strategy name -> StrategyInfo
- `moonship:{engine}:commands` stream and `moonship:reply:{id}` lists: the message bus (see bus.py)
- anything else a service keeps (API sessions, monitor state) under `moonship:{service}:...`
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

ENGINES_KEY = "moonship:engines"


def strategies_key(engine: str) -> str:
    return f"moonship:{engine}:strategies"


def heartbeat_key(engine: str) -> str:
    return f"moonship:{engine}:heartbeat"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in the shared cache")


def dumps(value: Any) -> bytes:
    """JSON for the cache and the bus (Decimal as text, UTC times as ISO-8601)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


loads = orjson.loads


class SharedCache(ABC):
    """Key/value and hash storage with expiry. Every call may raise ConnectionError on backend failure."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect (no-op for the memory cache)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Disconnect."""

    @abstractmethod
    async def get(self, key: str) -> Any | None: ...

    @abstractmethod
    async def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...

    @abstractmethod
    async def delete(self, *keys: str) -> None: ...

    @abstractmethod
    async def expire(self, key: str, ttl: float) -> bool:
        """Set a key's time to live; False if the key does not exist."""

    @abstractmethod
    async def incr(self, key: str, ttl: float | None = None) -> int:
        """Atomically add 1 to the integer at `key` (0 when absent) and return it; `ttl` resets its expiry."""

    @abstractmethod
    async def hset(self, key: str, values: dict[str, Any]) -> None: ...

    @abstractmethod
    async def hget(self, key: str, field: str) -> Any | None: ...

    @abstractmethod
    async def hgetall(self, key: str) -> dict[str, Any]: ...

    @abstractmethod
    async def hdel(self, key: str, *fields: str) -> None: ...


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

