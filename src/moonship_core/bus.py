"""MessageBus: control commands to named engines with correlated replies; the in-memory default.

Over Redis, each engine reads its own stream `moonship:{engine}:commands` (entries hold the command as JSON)
and pushes each reply onto the list `moonship:reply:{id}`, which the caller pops with a timeout.

A command is a JSON object `{"id", "command", "strategy"?, "config"?}`; the reply is
`{"id", "ok": bool, "result"?: ..., "error"?: str, "status"?: int}`. The engine de-duplicates by id, so
a caller may retry a command with the same id and it runs once.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from .cache import dumps, heartbeat_key, loads, redis_client, unavailable
from .errors import CommandTimeout, EngineUnavailable
from .net import Backoff

logger = logging.getLogger("moonship.bus")

#: how long a reply waits in Redis for its caller
REPLY_TTL = 60.0

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
        # the command runs to completion even if the caller stops waiting, as it would on a remote engine
        task = asyncio.ensure_future(handler(command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise CommandTimeout(engine, timeout) from None

    async def close(self) -> None:
        self._handlers.clear()


def commands_key(engine: str) -> str:
    return f"moonship:{engine}:commands"


def reply_key(command_id: str) -> str:
    return f"moonship:reply:{command_id}"


class RedisBus(MessageBus):
    """Commands between processes through Redis streams; an engine is reachable while its heartbeat lives."""

    def __init__(self, url: str, *, verify_cert: bool = True) -> None:
        self.redis = redis_client(url, verify_cert=verify_cert)
        self.blocking = redis_client(url, verify_cert=verify_cert, blocking=True)
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
        while True:
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
