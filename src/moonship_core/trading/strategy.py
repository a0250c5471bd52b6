"""Strategy: an algo + its config + runtime state (active, times, stop reason, position and P/L)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from ..backoff import Backoff
from ..clock import Clock
from ..config import StrategyConfig, validate_model
from ..contracts.algo import AlgoContext, TradingAlgo
from ..errors import ConfigError, MoonshipError, NetworkError
from ..limits import number_problems
from .counters import event_in
from .inline import Resumed, step
from .market import Market, MarketView
from .orders import OrderManager
from .risk import Risk

#: public trades a strategy may fall behind by; past it, newly arriving trades are dropped and counted
#: (books never queue up: they conflate)
MAX_PENDING_TRADES = 10_000
#: what an algo's callback may raise and the strategy contains (an algo calling sys.exit stops only itself)
ALGO_ERRORS = (Exception, SystemExit, KeyboardInterrupt)
#: the errors of an exchange that cannot be reached now: opening its market is retried
UNREACHABLE = (NetworkError, OSError, TimeoutError)
#: the longest wait between two attempts to open a market that cannot open
OPEN_RETRY_MAX = 30.0
#: how long on_stop may take
STOP_TIMEOUT = 10.0

#: Mailbox states: its strategy's task is handling events, waits for them, or waits while they are
#: delivered inline (see Mailbox.pump)
RUNNING, PARKED, DEFERRED = 0, 1, 2


class Mailbox:
    """A strategy's inbox: events in arrival order, with book updates conflated to one per market. It takes
    only the kinds in `kinds`: those its algo has a callback for.

    A strategy waiting for events is woken on its task, unless `pump` (a backtest's replay) takes the
    wake-up: then `deliver()` later runs the strategy's callbacks inline, in the same order."""

    __slots__ = ("books", "deliver", "dropped", "kinds", "pump", "queue", "state", "trades", "wake")

    def __init__(self) -> None:
        self.queue: deque[tuple[str, Market, Any]] = deque()
        self.books: set[Market] = set()  # markets with a book notice in the queue
        self.kinds: frozenset[str] = frozenset(CALLBACKS)
        self.trades = 0
        self.dropped = 0
        self.wake = asyncio.Event()
        self.state = RUNNING
        #: takes the wake-up of a parked strategy to `deliver()` it inline (True), or leaves it to the task
        self.pump: Callable[[Mailbox], bool] | None = None
        #: runs the strategy's pending callbacks inline (set by the strategy)
        self.deliver: Callable[[], None] = lambda: None

    def notify_book(self, market: Market) -> None:
        if market not in self.books and "book" in self.kinds:
            self.books.add(market)
            self.queue.append(("book", market, None))
            self._wake()

    def notify(self, kind: str, market: Market, payload: Any) -> None:
        if kind not in self.kinds:
            return
        if kind == "trade":
            if self.trades >= MAX_PENDING_TRADES:
                self.dropped += 1
                return
            self.trades += 1
        self.queue.append((kind, market, payload))
        self._wake()

    def _wake(self) -> None:
        state = self.state
        if state == PARKED:
            pump = self.pump
            if pump is not None and pump(self):
                self.state = DEFERRED
                return
            self.state = RUNNING
            self.wake.set()
        elif state == RUNNING:
            self.wake.set()

    def resume(self) -> None:
        """A deferred wake-up goes to the strategy's task after all (the pump stopped)."""
        if self.state == DEFERRED:
            self.state = RUNNING
            self.wake.set()

    def clear(self) -> None:
        self.queue.clear()
        self.books.clear()
        self.trades = 0
        self.state = RUNNING


class Strategy:
    """Runs one algo over its markets on a task of its own."""

    def __init__(
        self,
        name: str,
        engine: str,
        config: StrategyConfig,
        algo_class: type[TradingAlgo],
        markets: dict[str, Market],
        on_change: Callable[[Strategy], None],
        clock: Clock,
        orders: OrderManager,
        risk: Risk | None = None,
    ) -> None:
        self.name = name
        self.engine = engine
        self.config = config
        self.algo_class = algo_class
        self.markets = markets
        self.settings = validate_settings(name, algo_class, config.extra)
        #: the algo's settings typed as secrets: masked in StrategyInfo like the `$NAME` values
        self.secret_keys = [k for k, v in self.settings if isinstance(v, SecretStr | SecretBytes)]
        self.logger = logging.getLogger(f"moonship.strategy.{name}")
        self.clock = clock
        self.mailbox = Mailbox()
        self.mailbox.deliver = self._deliver
        self.algo: TradingAlgo | None = None
        self.active = False
        self.start_time: datetime | None = None
        self.update_time: datetime = clock.now()
        self.stop_reason: str | None = None
        self.orders = orders
        self.risk = risk
        #: positions by market: live objects the order manager books this strategy's fills into
        self.positions = {m: orders.portfolio.position(name, m) for m in markets}
        self.views = {m: MarketView(market, name, self.positions[m]) for m, market in markets.items()}
        self._views = {market: self.views[m] for m, market in markets.items()}
        self.extra: dict[str, Any] = {}
        self._on_change = on_change
        #: what a strategy that should run waits for (a market that cannot open), or None
        self.waiting_for: str | None = None
        self._starting: asyncio.Task[None] | None = None
        self._waiting = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._context = contextvars.copy_context()
        #: what the task takes over from an inline delivery: a suspended callback, or what one raised
        self._handoff: Resumed | BaseException | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._stop_requested: str | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the strategy once its markets are open. A market that cannot open (the exchange is down)
        is retried with backoff while the strategy waits (`waiting_for` says for what): this returns as soon
        as the strategy runs, fails to start, or waits; a waiting strategy starts by itself later."""
        if self.active or self._starting is not None:
            return
        starting = self._starting = asyncio.create_task(self._start(), name=f"start:{self.name}")
        waiting = asyncio.ensure_future(self._waiting.wait())
        try:
            await asyncio.wait((starting, waiting), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if starting.done():
            starting.result()  # the start's own error, if it failed

    async def _start(self) -> None:
        try:
            await self._open_markets()
            await self._begin()
        except Exception as exc:
            if not self._waiting.is_set():
                raise  # start() is still waiting for the outcome: it raises there
            self.logger.error("did not start after waiting: %s", exc)
        finally:
            self._starting = None
            self._waiting.clear()

    async def _open_markets(self) -> None:
        backoff = Backoff(maximum=OPEN_RETRY_MAX, clock=self.clock)
        while True:
            results = await asyncio.gather(*(m.open() for m in self.markets.values()), return_exceptions=True)
            failed = [(m, r) for m, r in zip(self.markets, results, strict=True) if isinstance(r, Exception)]
            if not failed:
                break
            for _, exc in failed:
                if not isinstance(exc, UNREACHABLE):
                    raise exc  # not a passing outage (a bad symbol, refused keys): no use retrying
            name, exc = failed[0]
            waiting_for = f"market {name}: {type(exc).__name__}: {exc}"
            # one line per change of market or kind of error, not per retry (nor per request that failed)
            if not (self.waiting_for or "").startswith(f"market {name}: {type(exc).__name__}: "):
                self.logger.warning("waiting for %s (retrying)", waiting_for)
            if waiting_for != self.waiting_for:
                self.waiting_for = waiting_for
                self.changed()
            self._waiting.set()
            await backoff.wait()
        if self.waiting_for is not None:
            self.logger.info("markets open: starting")
            self.waiting_for = None

    async def _begin(self) -> None:
        self.mailbox.clear()
        self.mailbox.kinds = handled_kinds(self.algo_class)
        self._stop_requested = None
        self.orders.attach(self.name, self.mailbox)
        self.algo = self.algo_class(
            AlgoContext(
                name=self.name,
                engine=self.engine,
                markets=self.views,
                settings=self.settings,
                clock=self.clock,
                logger=self.logger,
                publish=self.publish,
                request_stop=self.request_stop,
            )
        )
        self.active = True
        self.start_time = self.clock.now()
        self.stop_reason = None
        try:
            await self.algo.on_start()
        except ALGO_ERRORS as exc:  # the algo's own failure, SystemExit included: never the engine's
            self.active = False
            self.orders.detach(self.name)
            self.stop_reason = f"on_start failed: {exc!r}"
            self.logger.exception("failed to start")
            self.changed()
            detail = str(exc) if isinstance(exc, Exception) and str(exc) else repr(exc)
            raise MoonshipError(f"strategy {self.name} failed to start: {detail}") from exc
        for market in self.markets.values():
            market.subscribe(self.mailbox)
            if len(market.book):
                self.mailbox.notify_book(market)  # the book it starts on
        self._context = contextvars.copy_context()
        self._handoff = None
        self._task = asyncio.create_task(self._run(), name=f"strategy:{self.name}", context=self._context)
        self.logger.info("started (%s on %s)", self.config.algo, ", ".join(self.markets))
        self.changed()

    async def stop(self, reason: str = "stopped") -> None:
        starting = self._starting
        if starting is not None and starting is not asyncio.current_task():  # waiting for its markets
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            if self.waiting_for is not None:
                self.waiting_for = None
                self.stop_reason = reason
                self.logger.info("stopped while waiting: %s", reason)
                self.changed()
        if not self.active:
            return
        self.active = False
        self.stop_reason = reason
        for market in self.markets.values():
            market.unsubscribe(self.mailbox)
        self.orders.detach(self.name)  # its fills are still booked, by the order manager
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.mailbox.clear()
        if self.algo is not None:
            try:
                await self.clock.wait_for(self.algo.on_stop(), STOP_TIMEOUT)
            except ALGO_ERRORS:
                self.logger.exception("on_stop failed")
        if self.mailbox.dropped:
            self.logger.warning("fell behind the feed: %d public trades were dropped", self.mailbox.dropped)
            self.mailbox.dropped = 0
        self.logger.info("stopped: %s", reason)
        self.changed()

    def request_stop(self, reason: str) -> None:
        """Stop after the current callback (used by the algo itself and on callback errors)."""
        if self.active and self._stop_requested is None:
            self._stop_requested = reason
            self.mailbox.wake.set()

    # ------------------------------------------------------------------ state
    def publish(self, fields: dict[str, Any]) -> None:
        self.extra.update(fields)
        self.changed()

    def changed(self) -> None:
        self.update_time = self.clock.now()
        self._on_change(self)

    def info(self) -> dict[str, Any]:
        """The StrategyInfo the cache holds and the API returns."""
        position = self.positions[next(iter(self.markets))]
        info: dict[str, Any] = dict(self.extra)
        info.update(
            name=self.name,
            engine=self.engine,
            active=self.active,
            start_time=self.start_time,
            update_time=self.update_time,
            stop_reason=self.stop_reason,
            waiting_for=self.waiting_for,
            config=self.config.public_dump(self.secret_keys),
            position=position.quantity,
            last_trade_profit=self.orders.portfolio.last_trade_profit(self.name),
            total_profit=self.orders.portfolio.total_profit(self.name),
            fees=self.orders.portfolio.fees(self.name),
            open_orders=len(self.orders.open_orders(owner=self.name)),
        )
        if self.risk is not None:
            info.update(self.risk.info(self.name))
        if len(self.markets) > 1:
            info["positions"] = {name: p.quantity for name, p in self.positions.items()}
        return info

    # ------------------------------------------------------------------ the strategy's task
    async def _run(self) -> None:
        mailbox = self.mailbox
        wake = mailbox.wake
        try:
            while self._stop_requested is None:
                mailbox.state = PARKED
                await wake.wait()
                mailbox.state = RUNNING
                wake.clear()
                handoff, self._handoff = self._handoff, None
                if isinstance(handoff, BaseException):
                    raise handoff
                if handoff is not None:
                    await handoff
                await self._drain()
        except asyncio.CancelledError:
            handoff, self._handoff = self._handoff, None
            if isinstance(handoff, Resumed):  # cancelled before taking over a suspended callback: so is it
                with contextlib.suppress(BaseException):
                    handoff.coro.throw(asyncio.CancelledError())
                handoff.coro.close()
            raise
        self._stop_task = asyncio.create_task(self.stop(self._stop_requested or "stopped"))

    def _deliver(self) -> None:
        """The pump's inline delivery: the pending callbacks run now as on the task (its context, as the
        current task); if one suspends, or a stop is requested, the task takes over."""
        task = self._task
        mailbox = self.mailbox
        if mailbox.state != DEFERRED or task is None or task.done() or not self.active:
            return
        try:
            suspended = step(task, self._context, self._drain())
        except BaseException as exc:  # escaped the algo's containment: the task raises it
            self._handoff = exc
            mailbox.resume()
            return
        if suspended is None and self._stop_requested is None:
            mailbox.state = PARKED
            return
        self._handoff = suspended
        mailbox.resume()

    async def _drain(self) -> None:
        """Hand the queued events to the algo, in order, until none is left or a stop is requested."""
        assert self.algo is not None
        algo = self.algo
        mailbox = self.mailbox
        queue, books = mailbox.queue, mailbox.books
        views = self._views
        kind = "?"
        set_event_in = event_in.set
        try:
            while queue and self._stop_requested is None:
                kind, market, payload = queue.popleft()
                view = views[market]
                # tick-to-order runs from the market's latest event (not from an order update)
                set_event_in(market.event_in if kind != "order" and kind != "status" else None)
                if kind == "book":
                    books.discard(market)
                    await algo.on_order_book(view)
                elif kind == "trade":
                    mailbox.trades -= 1
                    await algo.on_trade(view, payload)
                elif kind == "order":
                    await algo.on_order_update(view, payload)
                elif kind == "ticker":
                    await algo.on_ticker(view, payload)
                elif kind == "candle":
                    await algo.on_candle(view, payload)
                elif kind == "status":
                    await algo.on_market_status(view, payload)
        except asyncio.CancelledError:
            raise
        except ALGO_ERRORS as exc:
            self.logger.exception("%s handler failed; stopping the strategy", kind)
            self._stop_requested = f"error in {CALLBACKS.get(kind, kind)}: {exc!r}"


#: mailbox event kind -> the algo's callback for it
CALLBACKS = {
    "book": "on_order_book", "trade": "on_trade", "order": "on_order_update", "ticker": "on_ticker",
    "candle": "on_candle", "status": "on_market_status",
}  # fmt: skip


def handled_kinds(algo_class: type[TradingAlgo]) -> frozenset[str]:
    """The event kinds `algo_class` has a callback for: TradingAlgo's own callbacks do nothing, so the
    events only they would get never wake the strategy."""
    return frozenset(
        kind for kind, callback in CALLBACKS.items()
        if getattr(algo_class, callback) is not getattr(TradingAlgo, callback)
    )  # fmt: skip


def validate_settings(name: str, algo_class: type[TradingAlgo], extra: dict[str, Any]) -> BaseModel:
    """The algo's typed settings from the strategy's extra properties (ConfigError naming the property).
    Numbers must be finite and of sane magnitude (see `limits.number_problems`): `1e999999999` would pass
    as a Decimal and overflow in the first calculation."""
    prefix = f"moonship.strategies.{name}"
    settings = validate_model(algo_class.settings_model, extra, prefix, StrategyConfig.model_fields)
    problems = list(number_problems(settings, prefix))
    if problems:
        raise ConfigError("\n".join(problems))
    return settings
