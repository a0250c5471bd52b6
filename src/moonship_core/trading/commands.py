"""Commands: the control commands an engine obeys (list, add, update, remove, start, stop), each run once
per id, after start-up, and answered only after its state is in the shared cache (read-your-writes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Protocol

from ..codec import fill_record_to_dict, order_record_to_dict
from ..config import StrategyConfig, validate_model
from ..contracts.stores import Journal
from ..errors import ConfigError, ControlError, MoonshipError
from ..limits import MAX_DEPTH, STRATEGY_NAME_RULE, printable, too_deep, valid_strategy_name
from .publisher import CACHE_ERRORS, StatePublisher
from .risk import Risk, TradingState
from .strategy import Strategy

#: replies remembered for de-duplicating retried commands
REMEMBERED_COMMANDS = 1000


class Builder(Protocol):
    """Builds a strategy; `dotted=False` refuses an algo given as a dotted class path (nothing a command
    contains is ever imported)."""

    def __call__(self, name: str, config: StrategyConfig, *, dotted: bool) -> Strategy: ...


class Commands:
    """Runs commands on `strategies` (the engine's live mapping), building new ones with `build`.

    A command cannot hurt the engine: whatever it raises (any BaseException but cancellation, including
    SystemExit from code it reaches) becomes an error reply, and a failed add leaves nothing behind."""

    def __init__(
        self,
        strategies: dict[str, Strategy],
        build: Builder,
        publisher: StatePublisher,
        logger: logging.Logger,
        journal: Journal,
        risk: Risk | None = None,
    ) -> None:
        self.strategies = strategies
        self.risk = risk
        self.build = build
        self.publisher = publisher
        self.journal = journal
        self.logger = logger
        self.ready = asyncio.Event()
        self._replies: OrderedDict[str, asyncio.Future[dict[str, Any]]] = OrderedDict()
        #: name -> (lock, commands holding or awaiting it): an entry lives only while a command uses it
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

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
            try:
                reply = {"id": cid, "ok": True, "result": await self._execute(command)}
            finally:
                # read-your-writes: the change (or a failed one undone) is in the cache before the caller
                # hears it is done (bounded in real time, not the engine's clock: the cache is shared
                # infrastructure and the caller waits)
                with contextlib.suppress(*CACHE_ERRORS):
                    async with asyncio.timeout(2):
                        await self.publisher.flush()
        except ControlError as exc:
            reply = {"id": cid, "ok": False, "error": str(exc), "status": exc.status}
        except ConfigError as exc:
            reply = {"id": cid, "ok": False, "error": str(exc), "status": 400}
        except MoonshipError as exc:
            reply = {"id": cid, "ok": False, "error": str(exc), "status": 500}
        except asyncio.CancelledError:
            # the engine is stopping: a retry of this id runs afresh
            self._replies.pop(cid, None)
            future.cancel()
            raise
        except BaseException as exc:  # SystemExit, KeyboardInterrupt too: the engine goes on
            self.logger.error("command %r failed", command.get("command"), exc_info=exc)
            reply = {"id": cid, "ok": False, "error": f"Internal error: {type(exc).__name__}", "status": 500}
        future.set_result(reply)
        return reply

    async def _execute(self, command: dict[str, Any]) -> Any:
        action = command.get("command")
        if action == "list":
            return [s.info() for s in self.strategies.values()]
        if action in ("orders", "fills"):
            return await self._journal(action, command.get("config"))
        if action == "trading-state" and command.get("strategy") is None:
            return await self._trading_state(None, command.get("config"))
        name = command.get("strategy")
        if not isinstance(name, str) or not name:
            raise ControlError("Missing or bad strategy field", 400)
        if not valid_strategy_name(name):
            raise ControlError(f"Bad strategy name: it must be {STRATEGY_NAME_RULE}", 400)
        if action not in _ACTIONS:
            raise ControlError("Missing or bad command field", 400)
        async with self._locked(name):
            if action == "add":
                return await self._add(name, command.get("config"))
            strategy = self.strategies.get(name)
            if strategy is None:
                raise ControlError("No such strategy", 404)
            if action == "trading-state":
                return await self._trading_state(strategy, command.get("config"))
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
                _forget_logger(strategy.logger)
                self.logger.info("strategy %s removed", name)
            return self.strategies[name].info() if name in self.strategies else None

    async def _trading_state(self, strategy: Strategy | None, body: Any) -> dict[str, Any]:
        """Put the engine (or `strategy`) in the trading state `body` names ({"state", "reason"?}); answers
        once it is in force (HALTED: the open orders it covers are cancelled) with the engine's trading state
        or the strategy's StrategyInfo."""
        if self.risk is None:
            raise ControlError("This engine has no risk layer", 400)
        body = body if isinstance(body, dict) else {}
        unknown = sorted(set(body) - {"state", "reason"})
        if unknown:
            raise ControlError(f"Unknown field: {unknown[0]}", 400)
        try:
            state = TradingState(body.get("state"))
        except ValueError:
            raise ControlError("Missing or bad state field: ACTIVE, REDUCING or HALTED", 400) from None
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise ControlError(f"Bad reason field: text of at most {MAX_REASON} characters", 400)
        reason = printable(reason, MAX_REASON)
        name = strategy.name if strategy is not None else None
        await self.risk.set_state(state, reason, name)
        if strategy is not None:
            return strategy.info()
        return self.risk.engine_info()

    async def _journal(self, action: str, query: Any) -> list[dict[str, Any]]:
        """Journaled orders or fills, newest first: `query` may hold strategy, status (orders: open or
        closed), since (ISO-8601) and limit (1 to MAX_ROWS, default DEFAULT_ROWS)."""
        query = query if isinstance(query, dict) else {}
        fields = {"strategy", "since", "limit"} | ({"status"} if action == "orders" else set())
        unknown = sorted(set(query) - fields)
        if unknown:
            raise ControlError(f"Unknown query field: {unknown[0]}", 400)
        strategy = query.get("strategy")
        if strategy is not None and not isinstance(strategy, str):
            raise ControlError("Bad strategy field", 400)
        limit = query.get("limit", DEFAULT_ROWS)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_ROWS:
            raise ControlError(f"Bad limit: a whole number from 1 to {MAX_ROWS}", 400)
        since = _time(query.get("since"))
        if action == "fills":
            fills = await self.journal.fills(strategy=strategy, since=since, limit=limit)
            return [fill_record_to_dict(f) for f in fills]
        status = query.get("status")
        if status not in (None, "open", "closed"):
            raise ControlError("Bad status: open or closed", 400)
        orders = await self.journal.orders(
            strategy=strategy, open_only=status == "open", closed_only=status == "closed", since=since,
            limit=limit,
        )
        return [order_record_to_dict(o) for o in orders]

    @contextlib.asynccontextmanager
    async def _locked(self, name: str) -> AsyncIterator[None]:
        """One command at a time per strategy name; the lock is dropped when no command uses it, so unknown
        names leave nothing behind."""
        lock, users = self._locks.setdefault(name, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[name]

    async def _add(self, name: str, config: Any) -> dict[str, Any]:
        if name in self.strategies:
            raise ControlError(f"Strategy {name} already exists", 400)
        strategy = self.build(name, _strategy_config(name, config), dotted=False)
        self.strategies[name] = strategy
        try:
            if strategy.config.auto_start:
                await strategy.start()
        except BaseException:
            # atomic: a strategy that failed to auto-start is not left registered
            with contextlib.suppress(Exception):
                await strategy.stop("failed to start")
            del self.strategies[name]
            self.publisher.removed(name)  # it may have been published while starting
            _forget_logger(strategy.logger)
            raise
        self.publisher.changed(name)
        self.logger.info("strategy %s added", name)
        return strategy.info()

    async def _update(self, strategy: Strategy, changes: Any) -> None:
        if not isinstance(changes, dict):
            raise ControlError("Missing or bad config field", 400)
        merged = strategy.config.model_dump() | changes
        config = _strategy_config(strategy.name, merged)
        # values that came from `$NAME` stay secret unless the update replaces them
        config.mark_secret(loc for loc in strategy.config.secrets if loc[0] not in changes)
        # the algo the operator's config file named may stay a dotted path; a new one must be registered
        replacement = self.build(strategy.name, config, dotted=config.algo == strategy.config.algo)
        was_active = strategy.active
        await strategy.stop("updated")
        self.strategies[strategy.name] = replacement
        self.publisher.changed(strategy.name)
        self.logger.info("strategy %s updated", strategy.name)
        if was_active:
            await replacement.start()


#: rows a journal query answers by default, and at most
DEFAULT_ROWS = 100
MAX_ROWS = 10_000


def _time(value: Any) -> datetime | None:
    """An ISO-8601 time from a query (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ControlError("Bad since: an ISO-8601 time, e.g. 2026-01-31T12:00:00Z", 400)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_ACTIONS = frozenset({"add", "start", "stop", "update", "remove", "trading-state"})
#: the longest reason a trading-state command may give
MAX_REASON = 500


def _strategy_config(name: str, data: Any) -> StrategyConfig:
    if not isinstance(data, dict):
        raise ControlError("Missing or bad config field", 400)
    if too_deep(data, MAX_DEPTH):
        raise ControlError(f"Bad config field: nested more than {MAX_DEPTH} levels deep", 400)
    return validate_model(StrategyConfig, data, f"moonship.strategies.{name}")


def _forget_logger(logger: logging.Logger) -> None:
    """Drop a removed strategy's logger from the logging module, which otherwise keeps every logger ever made
    (and a placeholder for each dotted prefix of its name) for the life of the process. A logger the
    operator's logging config set up is kept, so a strategy added again under that name logs as configured."""
    if logger.handlers or logger.filters or logger.level != logging.NOTSET or not logger.propagate:
        return
    loggers = logging.Logger.manager.loggerDict
    if loggers.get(logger.name) is not logger:
        return
    if any(isinstance(other, logging.Logger) and other.parent is logger for other in loggers.values()):
        return  # another strategy's logger (e.g. "a.b" under "a") still hangs below it
    del loggers[logger.name]
    name = logger.name
    while "." in name:  # the placeholders created for the dotted prefixes of its name
        name = name.rpartition(".")[0]
        holder = loggers.get(name)
        if not isinstance(holder, logging.PlaceHolder):
            break
        holder.loggerMap.pop(logger, None)
        if not holder.loggerMap:
            del loggers[name]
