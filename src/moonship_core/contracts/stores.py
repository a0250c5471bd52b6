"""The stores engines, the API and the monitor share: SharedCache (runtime state) and MessageBus (control
commands), bundled as Stores; backends (memory, Redis) implement them.

Values are JSON documents (Decimal as exact text, datetimes as ISO-8601 UTC). Key layout, the same for
every backend:

- `moonship:engines` hash: engine name -> {"instance": id, "started": iso time}
- `moonship:{engine}:heartbeat` string with a TTL; the engine is running while it exists
- `moonship:{engine}:strategies` hash: strategy name -> StrategyInfo
- `moonship:{engine}:commands` stream and `moonship:reply:{id}` lists: the message bus
- anything else a service keeps (API sessions, monitor state) under `moonship:{service}:...`
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..model import Fill, Order, Side

ENGINES_KEY = "moonship:engines"


def strategies_key(engine: str) -> str:
    return f"moonship:{engine}:strategies"


def heartbeat_key(engine: str) -> str:
    return f"moonship:{engine}:heartbeat"


def metrics_key(engine: str) -> str:
    """The engine's counters (`EngineCounters.snapshot()`) and market prices, with the heartbeat's TTL."""
    return f"moonship:{engine}:metrics"


#: the monitor's alerts that fired and have not re-armed: JSON `["alert", "engine", "strategy"]` ->
#: {"time", "start_time"}
FIRED_ALERTS_KEY = "moonship:monitor:fired"


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


#: what serves an engine's commands: takes a command, returns its reply
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class MessageBus(ABC):
    """Control commands to named engines with correlated replies.

    A command is a JSON object `{"id", "command", "strategy"?, "config"?}`; the reply is
    `{"id", "ok": bool, "result"?: ..., "error"?: str, "status"?: int}`. The engine de-duplicates by id, so
    a caller may retry a command with the same id and it runs once.
    """

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


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One of our orders as the journal knows it: its owner and its latest state."""

    strategy: str
    market: str
    order: Order


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One fill booked to a strategy, with what rebuilding its position needs."""

    strategy: str
    market: str
    client_order_id: str
    side: Side
    fill: Fill
    base_asset: str
    quote_asset: str


class Journal(ABC):
    """The durable record of every order (request, acknowledgement, status change) and fill, and of small
    state (paper accounts, trading state). Writes are queued and batched off the trading path: `record_*`
    and `put` never wait; `flush` does. Reads serve start-up recovery, the API and the CLI, newest first."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect or create the store."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and disconnect."""

    @abstractmethod
    def record_order(self, strategy: str, market: str, order: Order) -> None:
        """Queue the order's current state (a new order, an acknowledgement or a status change)."""

    @abstractmethod
    def record_fill(self, record: FillRecord) -> None:
        """Queue a fill; the same fill (order and trade id) recorded twice is kept once."""

    @abstractmethod
    def put(self, key: str, value: Any) -> None:
        """Queue a small JSON value under `key` (replacing the previous one)."""

    @abstractmethod
    async def flush(self) -> None:
        """Write everything queued so far."""

    @abstractmethod
    async def orders(
        self,
        *,
        strategy: str | None = None,
        open_only: bool = False,
        closed_only: bool = False,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[OrderRecord]:
        """Orders, newest first (by last update)."""

    @abstractmethod
    async def fills(
        self, *, strategy: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[FillRecord]:
        """Fills, newest first."""

    @abstractmethod
    async def get(self, key: str) -> Any | None:
        """The value `put` under `key`, or None."""


@dataclass(frozen=True)
class Stores:
    """What a backend makes for a process: the shared cache and the message bus (opened for every process),
    and the journal (opened by the engine that writes it)."""

    cache: SharedCache
    bus: MessageBus
    journal: Journal | None = None

    async def open(self) -> None:
        await self.cache.open()
        await self.bus.open()

    async def close(self) -> None:
        """Close both; the first failure is raised after both were tried."""
        errors: list[BaseException] = []
        for part in (self.bus, self.cache):
            try:
                await part.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
