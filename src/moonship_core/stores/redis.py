"""The shared cache and message bus on a Redis server, for several processes and machines.

Cache keys are those of contracts/stores.py. Commands: each engine reads its own stream
`moonship:{engine}:commands` (entries hold the command as JSON) and pushes each reply onto the list
`moonship:reply:{id}`, which the caller pops with a timeout. Imported only when `moonship.redis.url` is set.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..backoff import Backoff
from ..codec import fill_from_dict, fill_to_dict, order_from_dict, order_to_dict
from ..codec import json_dumps as dumps
from ..codec import json_loads as loads
from ..config import MoonshipConfig
from ..contracts.stores import (
    FillRecord,
    Handler,
    Journal,
    MessageBus,
    OrderRecord,
    SharedCache,
    Stores,
    heartbeat_key,
)
from ..errors import CommandTimeout, EngineUnavailable
from ..model import Order, Side
from .batch import BatchWriter
from .sqlite import SqliteJournal

logger = logging.getLogger("moonship.bus")

#: how long a reply waits in Redis for its caller
REPLY_TTL = 60.0


P = ParamSpec("P")
R = TypeVar("R")

#: seconds any single Redis call may take
REDIS_TIMEOUT = 5.0


def redis_client(
    url: str, *, verify_cert: bool = True, blocking: bool = False, protocol: int | None = None
) -> aioredis.Redis:
    """A Redis client; `blocking` ones have no socket timeout (for BLPOP/XREAD, which set their own)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": REDIS_TIMEOUT,
        "socket_timeout": None if blocking else REDIS_TIMEOUT,
        "health_check_interval": 15,
    }
    if protocol is not None:
        options["protocol"] = protocol
    if url.startswith("rediss://") and not verify_cert:
        options.update(ssl_cert_reqs="none", ssl_check_hostname=False)
    return aioredis.Redis.from_url(url, **options)


def unavailable(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn the Redis client's errors into ConnectionError, the one error callers handle for outages."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except RedisError as exc:
            raise ConnectionError(f"redis: {exc}") from exc

    return wrapper


class RedisCache(SharedCache):
    """The shared cache on a Redis server, for several processes and machines."""

    def __init__(self, url: str, *, verify_cert: bool = True, protocol: int | None = None) -> None:
        self.redis = redis_client(url, verify_cert=verify_cert, protocol=protocol)

    async def close(self) -> None:
        await self.redis.aclose()

    @unavailable
    async def get(self, key: str) -> Any | None:
        raw = await self.redis.get(key)
        return None if raw is None else loads(raw)

    @unavailable
    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        await self.redis.set(key, dumps(value), px=None if ttl is None else int(ttl * 1000))

    @unavailable
    async def delete(self, *keys: str) -> None:
        if keys:
            await self.redis.delete(*keys)

    @unavailable
    async def expire(self, key: str, ttl: float) -> bool:
        return bool(await self.redis.pexpire(key, int(ttl * 1000)))

    @unavailable
    async def incr(self, key: str, ttl: float | None = None) -> int:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            if ttl is not None:
                pipe.pexpire(key, int(ttl * 1000))
            results: list[Any] = await pipe.execute()
        return int(results[0])

    @unavailable
    async def hset(self, key: str, values: dict[str, Any]) -> None:
        if values:
            await self.redis.hset(key, mapping={k: dumps(v) for k, v in values.items()})

    @unavailable
    async def hget(self, key: str, field: str) -> Any | None:
        raw = await self.redis.hget(key, field)
        return None if raw is None else loads(raw)

    @unavailable
    async def hgetall(self, key: str) -> dict[str, Any]:
        raw: dict[Any, Any] = await self.redis.hgetall(key)
        return {k.decode(): loads(v) for k, v in raw.items()}

    @unavailable
    async def hdel(self, key: str, *fields: str) -> None:
        if fields:
            await self.redis.hdel(key, *fields)


def commands_key(engine: str) -> str:
    return f"moonship:{engine}:commands"


def reply_key(command_id: str) -> str:
    return f"moonship:reply:{command_id}"


class RedisBus(MessageBus):
    """Commands between processes through Redis streams; an engine is reachable while its heartbeat lives."""

    def __init__(self, url: str, *, verify_cert: bool = True, protocol: int | None = None) -> None:
        self.redis = redis_client(url, verify_cert=verify_cert, protocol=protocol)
        self.blocking = redis_client(url, verify_cert=verify_cert, blocking=True, protocol=protocol)
        self._consumers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, engine: str, handler: Handler) -> None:
        await self.unserve(engine)
        last = await self._last_id(engine)
        consumer = self._consume(engine, handler, last)
        self._consumers[engine] = asyncio.create_task(consumer, name=f"bus:{engine}")

    async def unserve(self, engine: str) -> None:
        task = self._consumers.pop(engine, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @unavailable
    async def _last_id(self, engine: str) -> bytes:
        """Commands already in the stream were meant for an earlier run of the engine: start after them."""
        newest: Any = await self.redis.xrevrange(commands_key(engine), count=1)
        return bytes(newest[0][0]) if newest else b"0-0"

    async def _consume(self, engine: str, handler: Handler, last: bytes) -> None:
        stream = commands_key(engine)
        backoff = Backoff(0.2, 5.0)
        down = False
        task = asyncio.current_task()
        # redis-py waits with asyncio.wait_for, which on Python 3.11 can swallow our cancellation: look again
        while task is None or not task.cancelling():
            try:
                batches: Any = await self.blocking.xread({stream: last}, block=1000, count=100)
            except (RedisError, OSError) as exc:
                if not down:
                    logger.error("message bus unreachable (%s); retrying", exc)
                    down = True
                await backoff.wait()
                continue
            if down:
                logger.info("message bus reachable again")
                down = False
                backoff.reset()
            for _, entries in batches or ():
                for entry_id, fields in entries:
                    last = entry_id
                    task = asyncio.create_task(self._answer(handler, fields))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _answer(self, handler: Handler, fields: dict[bytes, bytes]) -> None:
        try:
            command = loads(fields[b"command"])
            if not isinstance(command, dict) or not isinstance(command.get("id"), str):
                raise ValueError("not a command object with an id")
        except (KeyError, ValueError) as exc:
            logger.warning("ignored a malformed command on the bus: %s", exc)
            return
        reply = dumps(await handler(command))
        key = reply_key(command["id"])
        backoff = Backoff(0.2, 5.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REPLY_TTL
        while True:
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.rpush(key, reply)
                    pipe.pexpire(key, int(REPLY_TTL * 1000))
                    await pipe.execute()
                return
            except (RedisError, OSError) as exc:
                if loop.time() > deadline:
                    logger.error("reply to command %s lost: %s", command["id"], exc)
                    return
                await backoff.wait()

    @unavailable
    async def request(self, engine: str, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        if not await self.redis.exists(heartbeat_key(engine)):
            raise EngineUnavailable(engine)
        stream = commands_key(engine)
        await self.redis.xadd(stream, {"command": dumps(command)}, maxlen=1000, approximate=True)
        popped: Any = await self.blocking.blpop([reply_key(command["id"])], timeout=timeout)
        if popped is None:
            raise CommandTimeout(engine, timeout)
        reply: dict[str, Any] = loads(popped[1])
        return reply

    async def close(self) -> None:
        for engine in list(self._consumers):
            await self.unserve(engine)
        for task in list(self._tasks):
            task.cancel()
        await self.redis.aclose()
        await self.blocking.aclose()


def journal_key(engine: str, part: str) -> str:
    return f"moonship:{engine}:journal:{part}"


#: adds a fill to the stream only the first time its (order, trade id) is seen
_ADD_FILL = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'data', ARGV[2])
end
"""

_JournalOp = tuple[str, tuple[Any, ...]]


class RedisJournal(Journal):
    """The journal of one engine on Redis, for engines on hosts whose disk does not last. Keys, under
    `moonship:{engine}:journal:`: `orders` hash (client order id -> latest state), `updated` sorted set (by
    last update, ms), `events` stream (every state an order passed through), `fills` stream with `fill_ids`
    set (each fill once), `state` hash (small values)."""

    def __init__(
        self, url: str, engine: str, *, verify_cert: bool = True, protocol: int | None = None
    ) -> None:
        self.redis = redis_client(url, verify_cert=verify_cert, protocol=protocol)
        self.keys = {part: journal_key(engine, part) for part in
                     ("orders", "updated", "events", "fills", "fill_ids", "state")}
        self._add_fill = self.redis.register_script(_ADD_FILL)
        self._writer: BatchWriter[_JournalOp] = BatchWriter(self._write, f"journal of {engine}", logger)

    async def open(self) -> None:
        self._writer.start()

    async def close(self) -> None:
        try:
            await self._writer.stop()
        finally:
            await self.redis.aclose()

    def record_order(self, strategy: str, market: str, order: Order) -> None:
        data = dumps({"strategy": strategy, "market": market, "order": order_to_dict(order)})
        self._writer.add(("order", (order.client_order_id, int(order.updated.timestamp() * 1000), data)))

    def record_fill(self, record: FillRecord) -> None:
        data = dumps({
            "strategy": record.strategy, "market": record.market, "coid": record.client_order_id,
            "side": record.side.value, "base": record.base_asset, "quote": record.quote_asset,
            "fill": fill_to_dict(record.fill),
        })
        self._writer.add(("fill", (f"{record.client_order_id}|{record.fill.trade_id}", data)))

    def put(self, key: str, value: Any) -> None:
        self._writer.add(("state", (key, dumps(value))))

    async def flush(self) -> None:
        await self._writer.flush()

    @unavailable
    async def _write(self, batch: list[_JournalOp]) -> None:
        keys = self.keys
        async with self.redis.pipeline(transaction=True) as pipe:
            for kind, args in batch:
                if kind == "order":
                    coid, updated, data = args
                    pipe.hset(keys["orders"], coid, data)
                    pipe.zadd(keys["updated"], {coid: updated})
                    pipe.xadd(keys["events"], {"data": data})
                elif kind == "fill":
                    fill_id, data = args
                    ids_and_stream = [keys["fill_ids"], keys["fills"]]
                    await self._add_fill(keys=ids_and_stream, args=[fill_id, data], client=pipe)
                else:
                    key, data = args
                    pipe.hset(keys["state"], key, data)
            await pipe.execute()

    async def orders(
        self,
        *,
        strategy: str | None = None,
        open_only: bool = False,
        closed_only: bool = False,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[OrderRecord]:
        await self.flush()  # read-your-writes
        low = "-inf" if since is None else int(since.timestamp() * 1000)
        found: list[OrderRecord] = []
        for raw in await self._order_rows(low):
            value = loads(raw)
            order = order_from_dict(value["order"])
            if (
                (strategy is None or value["strategy"] == strategy)
                and not (open_only and order.status.is_final)
                and not (closed_only and not order.status.is_final)
            ):
                found.append(OrderRecord(value["strategy"], value["market"], order))
                if limit is not None and len(found) >= limit:
                    break
        return found

    async def fills(
        self, *, strategy: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[FillRecord]:
        await self.flush()
        found: list[FillRecord] = []
        for _, fields in await self._fill_entries():
            value = loads(fields[b"data"])
            fill = fill_from_dict(value["fill"])
            if since is not None and fill.timestamp < since:
                continue
            if strategy is None or value["strategy"] == strategy:
                found.append(FillRecord(
                    value["strategy"], value["market"], value["coid"], Side(value["side"]), fill,
                    value["base"], value["quote"],
                ))
                if limit is not None and len(found) >= limit:
                    break
        return found

    async def get(self, key: str) -> Any | None:
        await self.flush()
        raw = await self._state(key)
        return None if raw is None else loads(raw)

    @unavailable
    async def _order_rows(self, low: int | str) -> list[Any]:
        """The orders' JSON, newest update first, down to score `low`."""
        coids: list[Any] = await self.redis.zrevrangebyscore(self.keys["updated"], "+inf", low)
        return await self.redis.hmget(self.keys["orders"], coids) if coids else []

    @unavailable
    async def _fill_entries(self) -> list[Any]:
        entries = await self.redis.xrevrange(self.keys["fills"])
        return list(entries or [])

    @unavailable
    async def _state(self, key: str) -> Any:
        return await self.redis.hget(self.keys["state"], key)


def redis_backend(config: MoonshipConfig) -> Stores:
    """Cache, bus and (unless `moonship.journal.backend: sqlite`) journal on the Redis server at
    `moonship.redis.url`."""
    url = config.redis.url
    if url is None:
        raise ValueError("moonship.redis.url is not set")
    verify, protocol = config.redis.ssl_verify_cert, config.redis.protocol
    journal: Journal
    if config.journal_backend == "redis":
        journal = RedisJournal(url, config.engine.name, verify_cert=verify, protocol=protocol)
    else:
        journal = SqliteJournal(config.journal_path)
    return Stores(
        RedisCache(url, verify_cert=verify, protocol=protocol),
        RedisBus(url, verify_cert=verify, protocol=protocol),
        journal,
    )
