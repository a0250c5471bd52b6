"""Commands: the control commands an engine obeys (list, add, update, remove, start, stop), each run once
per id, after start-up, and answered only after its state is in the shared cache (read-your-writes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..config import StrategyConfig, validate_model
from ..errors import ConfigError, ControlError, MoonshipError
from .publisher import CACHE_ERRORS, StatePublisher
from .strategy import Strategy

#: replies remembered for de-duplicating retried commands
REMEMBERED_COMMANDS = 1000


class Commands:
    """Runs commands on `strategies` (the engine's live mapping), building new ones with `build`."""

    def __init__(
        self,
        strategies: dict[str, Strategy],
        build: Callable[[str, StrategyConfig], Strategy],
        publisher: StatePublisher,
        logger: logging.Logger,
    ) -> None:
        self.strategies = strategies
        self.build = build
        self.publisher = publisher
        self.logger = logger
        self.ready = asyncio.Event()
        self._replies: OrderedDict[str, asyncio.Future[dict[str, Any]]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run a command once per id (a retry gets the first run's reply), after start-up is complete."""
        await self.ready.wait()
        cid = str(command.get("id") or uuid.uuid4().hex)
        earlier = self._replies.get(cid)
        if earlier is not None:
            return await asyncio.shield(earlier)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[cid] = future
        while len(self._replies) > REMEMBERED_COMMANDS:
            self._replies.popitem(last=False)
        try:
            reply = {"id": cid, "ok": True, "result": await self._execute(command)}
            # read-your-writes: the change is in the cache before the caller hears it is done (bounded in
            # real time, not the engine's clock: the cache is shared infrastructure and the caller waits)
            with contextlib.suppress(*CACHE_ERRORS):
                async with asyncio.timeout(2):
                    await self.publisher.flush()
        except ControlError as exc:
            reply = {"id": cid, "ok": False, "error": str(exc), "status": exc.status}
        except ConfigError as exc:
            reply = {"id": cid, "ok": False, "error": str(exc), "status": 400}
        except MoonshipError as exc:
            reply = {"id": cid, "ok": False, "error": str(exc), "status": 500}
        except Exception as exc:
            self.logger.exception("command %s failed", command.get("command"))
            reply = {"id": cid, "ok": False, "error": f"Internal error: {type(exc).__name__}", "status": 500}
        future.set_result(reply)
        return reply

    async def _execute(self, command: dict[str, Any]) -> Any:
        action = command.get("command")
        if action == "list":
            return [s.info() for s in self.strategies.values()]
        name = command.get("strategy")
        if not isinstance(name, str) or not name:
            raise ControlError("Missing or bad strategy field", 400)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if action == "add":
                return await self._add(name, command.get("config"))
            strategy = self.strategies.get(name)
            if strategy is None:
                raise ControlError("No such strategy", 404)
            if action == "start":
                await strategy.start()
            elif action == "stop":
                await strategy.stop("stopped by command")
            elif action == "update":
                await self._update(strategy, command.get("config"))
            elif action == "remove":
                await strategy.stop("removed")
                del self.strategies[name]
                self.publisher.removed(name)
                self.logger.info("strategy %s removed", name)
            else:
                raise ControlError("Missing or bad command field", 400)
            return self.strategies[name].info() if name in self.strategies else None

    async def _add(self, name: str, config: Any) -> dict[str, Any]:
        if name in self.strategies:
            raise ControlError(f"Strategy {name} already exists", 400)
        strategy = self.build(name, _strategy_config(name, config))
        self.strategies[name] = strategy
        self.publisher.changed(name)
        self.logger.info("strategy %s added", name)
        if strategy.config.auto_start:
            await strategy.start()
        return strategy.info()

    async def _update(self, strategy: Strategy, changes: Any) -> None:
        if not isinstance(changes, dict):
            raise ControlError("Missing or bad config field", 400)
        merged = strategy.config.model_dump() | changes
        replacement = self.build(strategy.name, _strategy_config(strategy.name, merged))
        was_active = strategy.active
        await strategy.stop("updated")
        self.strategies[strategy.name] = replacement
        self.publisher.changed(strategy.name)
        self.logger.info("strategy %s updated", strategy.name)
        if was_active:
            await replacement.start()


def _strategy_config(name: str, data: Any) -> StrategyConfig:
    if not isinstance(data, dict):
        raise ControlError("Missing or bad config field", 400)
    return validate_model(StrategyConfig, data, f"moonship.strategies.{name}")
