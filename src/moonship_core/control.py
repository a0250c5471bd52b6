"""ControlPlane: list, get, add, update, remove, start and stop strategies of any engine; set the trading
state (ACTIVE, REDUCING, HALTED) of an engine or a strategy.

The one facade both the API and the monitor use: reads come from the shared cache, changes go to the named
engine through the message bus.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import orjson

from .contracts.stores import (
    ENGINES_KEY,
    FIRED_ALERTS_KEY,
    MessageBus,
    SharedCache,
    heartbeat_key,
    metrics_key,
    strategies_key,
)
from .errors import ControlError
from .limits import MAX_DEPTH, too_deep
from .metrics import EngineMetrics

P = ParamSpec("P")
R = TypeVar("R")


def matches(info: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    """True when every filter equals the field of that name (booleans and numbers compared as values)."""
    for name, wanted in filters.items():
        if name not in info:
            return False
        value = info[name]
        if isinstance(value, bool) or value is None:
            if wanted.lower() != ("null" if value is None else str(value).lower()):
                return False
            continue
        number = _as_number(value)
        if (str(value) != wanted) if number is None else (_as_number(wanted) != number):
            return False
    return True


def _as_number(value: Any) -> Decimal | None:
    """`value` as a finite Decimal, or None when it is not a number."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def _reachable(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A cache or bus outage becomes ControlError 503 naming it."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except ConnectionError as exc:
            raise ControlError(f"Shared cache or message bus unavailable: {exc}", 503) from exc

    return wrapper


class ControlPlane:
    def __init__(self, cache: SharedCache, bus: MessageBus, timeout: float = 20.0) -> None:
        self.cache = cache
        self.bus = bus
        self.timeout = timeout

    @_reachable
    async def engines(self) -> list[str]:
        """Names of the engines that are running (heartbeat alive)."""
        names = sorted(await self.cache.hgetall(ENGINES_KEY))
        return [n for n in names if await self.cache.get(heartbeat_key(n)) is not None]

    @_reachable
    async def engine_states(self) -> list[dict[str, Any]]:
        """Each running engine (heartbeat alive): `name`, `instance`, `started`, `trading_state`
        (ACTIVE, REDUCING or HALTED) and `trading_state_reason`."""
        registrations = await self.cache.hgetall(ENGINES_KEY)
        out: list[dict[str, Any]] = []
        for name in sorted(registrations):
            if await self.cache.get(heartbeat_key(name)) is None:
                continue
            registration = registrations[name] if isinstance(registrations[name], dict) else {}
            out.append({
                "name": name,
                "instance": registration.get("instance"),
                "started": registration.get("started"),
                "trading_state": registration.get("trading_state", "ACTIVE"),
                "trading_state_reason": registration.get("trading_state_reason"),
            })
        return out

    @_reachable
    async def metrics(self) -> list[EngineMetrics]:
        """Every registered engine's metrics: up while its heartbeat lives, with its published counters and
        strategies (an engine whose heartbeat ran out, after a crash, shows only as down)."""
        registrations = await self.cache.hgetall(ENGINES_KEY)
        out: list[EngineMetrics] = []
        for name in sorted(registrations):
            if await self.cache.get(heartbeat_key(name)) is None:
                out.append(EngineMetrics(name, False))
                continue
            counters = await self.cache.get(metrics_key(name))
            infos = await self.cache.hgetall(strategies_key(name))
            strategies = [info for _, info in sorted(infos.items())]
            out.append(EngineMetrics(name, True, counters if isinstance(counters, dict) else {}, strategies))
        return out

    @_reachable
    async def alerts(self) -> list[dict[str, Any]]:
        """The monitor's alerts that fired and have not re-armed, newest first: alert, engine, strategy,
        time."""
        fired = await self.cache.hgetall(FIRED_ALERTS_KEY)
        out: list[dict[str, Any]] = []
        for key, value in fired.items():
            try:
                alert, engine, strategy = orjson.loads(key)
            except (orjson.JSONDecodeError, TypeError, ValueError):
                continue
            time = value.get("time") if isinstance(value, dict) else None
            out.append({"alert": alert, "engine": engine, "strategy": strategy, "time": time})
        out.sort(key=lambda a: str(a["time"]), reverse=True)
        return out

    @_reachable
    async def strategies(self, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """StrategyInfo of every strategy of every running engine, filtered by field values."""
        out: list[dict[str, Any]] = []
        for engine in await self.engines():
            infos = await self.cache.hgetall(strategies_key(engine))
            out.extend(info for _, info in sorted(infos.items()))
        return [info for info in out if matches(info, filters or {})]

    @_reachable
    async def strategy(self, engine: str, name: str) -> dict[str, Any]:
        """One strategy of a running engine (a stopped engine's last state is not served)."""
        info = await self.cache.hget(strategies_key(engine), name)
        if info is None or await self.cache.get(heartbeat_key(engine)) is None:
            raise ControlError("No such strategy", 404)
        return dict(info)

    async def add(self, engine: str, name: str, config: Mapping[str, Any]) -> Any:
        return await self.send(engine, "add", name, dict(config))

    async def update(self, engine: str, name: str, config: Mapping[str, Any]) -> Any:
        return await self.send(engine, "update", name, dict(config))

    async def remove(self, engine: str, name: str) -> Any:
        return await self.send(engine, "remove", name)

    async def start(self, engine: str, name: str) -> Any:
        return await self.send(engine, "start", name)

    async def stop(self, engine: str, name: str) -> Any:
        return await self.send(engine, "stop", name)

    async def trading_state(
        self, engine: str, state: str, reason: str = "", strategy: str | None = None
    ) -> Any:
        """Put the engine (or one of its strategies) in trading state `state` (ACTIVE, REDUCING, HALTED);
        returns once it is in force: the engine's {trading_state, trading_state_reason}, or the strategy's
        StrategyInfo."""
        return await self.send(engine, "trading-state", strategy, {"state": state, "reason": reason})

    async def halt(self, engine: str, reason: str = "", strategy: str | None = None) -> Any:
        return await self.trading_state(engine, "HALTED", reason, strategy)

    async def reduce(self, engine: str, reason: str = "", strategy: str | None = None) -> Any:
        return await self.trading_state(engine, "REDUCING", reason, strategy)

    async def resume(self, engine: str, reason: str = "", strategy: str | None = None) -> Any:
        return await self.trading_state(engine, "ACTIVE", reason, strategy)

    async def orders(self, engine: str | None = None, **query: Any) -> list[dict[str, Any]]:
        """Journaled orders of one engine (or every running one), newest first; `query`: strategy, status
        ("open" or "closed"), since (ISO-8601), limit."""
        return await self._journal("orders", "updated", engine, query)

    async def fills(self, engine: str | None = None, **query: Any) -> list[dict[str, Any]]:
        """Journaled fills of one engine (or every running one), newest first; `query`: strategy, since,
        limit."""
        return await self._journal("fills", "time", engine, query)

    async def _journal(
        self, command: str, time_field: str, engine: str | None, query: dict[str, Any]
    ) -> list[dict[str, Any]]:
        query = {k: v for k, v in query.items() if v is not None}
        engines = [engine] if engine is not None else await self.engines()
        rows: list[dict[str, Any]] = []
        for name in engines:
            for row in await self.send(name, command, config=query):
                rows.append({"engine": name, **row})
        rows.sort(key=lambda row: datetime.fromisoformat(row[time_field]), reverse=True)
        return rows[: query["limit"]] if "limit" in query else rows

    @_reachable
    async def send(
        self,
        engine: str,
        command: str,
        strategy: str | None = None,
        config: dict[str, Any] | None = None,
        command_id: str | None = None,
    ) -> Any:
        """Send one command; returns the engine's result or raises ControlError with its status."""
        if too_deep(config, MAX_DEPTH):  # the engine would refuse it (if the bus could even encode it)
            raise ControlError(f"Bad config field: nested more than {MAX_DEPTH} levels deep", 400)
        message: dict[str, Any] = {"id": command_id or uuid.uuid4().hex, "command": command}
        if strategy is not None:
            message["strategy"] = strategy
        if config is not None:
            message["config"] = config
        reply = await self.bus.request(engine, message, self.timeout)
        if not reply.get("ok"):
            raise ControlError(str(reply.get("error", "command failed")), int(reply.get("status", 500)))
        return reply.get("result")
