"""Risk: pre-trade checks between a market's rounding and its client, trading states, circuit breakers.

Every order a strategy places passes `Risk.check` after `Market.prepare` and before `OrderManager.place`; a
refused order never reaches the client: it comes back REJECTED with `error` "RiskDenied" and the rule and
its numbers in `reason`. The limits come from `moonship.risk` (engine-wide) and
`moonship.strategies.NAME.risk`, the stricter of the two winning. Trading states (ACTIVE, REDUCING,
HALTED) are kept per engine and per strategy in the journal, so a restart keeps them; entering HALTED
cancels the open orders it covers. Breakers move a strategy (or the engine) to HALTED on their own: the
day's realised loss, and too many rejections in a window.

Time comes from the engine's clock only (rates and windows on `monotonic`, the day on `now`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from ..book import OrderBook
from ..clock import Clock
from ..config import RiskConfig
from ..contracts.stores import FillRecord, Journal
from ..errors import RiskDenied
from ..model import ZERO, MarketStatus, Order, OrderRequest, OrderStatus, OrderType, Side, fmt_decimal
from .orders import OrderManager

logger = logging.getLogger("moonship.risk")

#: the journal key the trading states are kept under (one journal per engine)
STATE_KEY = "trading_state"
#: a denial of one rule for one strategy is logged at most once in this many seconds
LOG_INTERVAL = 60.0
#: the rule a denial by the trading state is counted under
STATE_RULE = "trading_state"
_LIMITS = (
    "max_order_quantity", "max_order_notional", "max_position", "max_open_orders", "max_orders_per_second",
    "price_band_bps", "max_daily_loss", "max_rejects",
)
_TEN_THOUSAND = Decimal(10000)
_TRADABLE = (MarketStatus.OPEN, MarketStatus.OPEN_POST_ONLY)


class TradingState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    #: only orders that reduce the absolute position pass; cancels always pass
    REDUCING = "REDUCING"
    #: no new orders; the open orders were cancelled when it was entered
    HALTED = "HALTED"


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
#: enum members read on every order, once (a member's attribute access costs ~0.2 us on Python 3.11)
_ACTIVE, _REDUCING, _HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
_BUY, _SELL, _LIMIT = Side.BUY, Side.SELL, OrderType.LIMIT


class RiskVenue(Protocol):
    """What the checks read of a market."""

    name: str
    status: MarketStatus
    book: OrderBook
    last_price: Decimal | None


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force for one strategy (None: no limit)."""

    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position: Decimal | None = None
    max_open_orders: int | None = None
    max_orders_per_second: int | None = None
    price_band_bps: Decimal | None = None
    max_daily_loss: Decimal | None = None
    max_rejects: int | None = None
    reject_window: float = 60.0

    @classmethod
    def merged(cls, engine: RiskConfig, strategy: RiskConfig | None) -> Limits:
        """The stricter of each limit the two configs set."""
        values: dict[str, Any] = {}
        for name in _LIMITS:
            given = [v for v in (getattr(engine, name), getattr(strategy, name, None)) if v is not None]
            values[name] = min(given) if given else None
        window = engine.reject_window
        if strategy is not None and "reject_window" in strategy.model_fields_set:
            window = strategy.reject_window
        return cls(**values, reject_window=window)

    @property
    def needs_open_orders(self) -> bool:
        return self.max_position is not None or self.max_open_orders is not None


@dataclass(slots=True)
class StateEntry:
    state: TradingState
    reason: str
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "reason": self.reason, "since": self.since.isoformat()}


class Risk:
    """One engine's risk layer. `on_change(name)` is told when what a strategy's StrategyInfo shows of it
    changes, `on_engine_change()` when the engine's trading state does."""

    def __init__(
        self,
        config: RiskConfig,
        orders: OrderManager,
        journal: Journal,
        clock: Clock,
        on_change: Callable[[str], None] = lambda name: None,
        on_engine_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.orders = orders
        self.journal = journal
        self.clock = clock
        self._monotonic = clock.monotonic
        self._on_change = on_change
        self._on_engine_change = on_engine_change
        self.engine_limits = Limits.merged(config, None)
        self._limits: dict[str, Limits] = {}
        self.engine_state: StateEntry | None = None
        self.states: dict[str, StateEntry] = {}
        #: denials by strategy ("" for orders without one) and rule
        self.denials: dict[str, Counter[str]] = {}
        self._logged: dict[tuple[str, str], float] = {}
        self._sent: dict[str, deque[float]] = {}
        self._engine_sent: deque[float] = deque()
        self._rejects: dict[str, deque[float]] = {}
        #: realised P/L of the current UTC day by strategy, and the engine's total: (day, profit)
        self._daily: dict[str, tuple[date, Decimal]] = {}
        self._engine_daily: tuple[date, Decimal] = (date.min, ZERO)
        self._restoring = False
        self._tasks: set[asyncio.Task[None]] = set()
        orders.portfolio.listeners.append(self._booked)
        orders.on_reject = self._rejected

    # ------------------------------------------------------------------ configuration
    def configure(self, strategy: str, config: RiskConfig | None) -> None:
        """The strategy's own limits (its `risk` block), merged with the engine's."""
        self._limits[strategy] = Limits.merged(self.config, config)

    def limits(self, strategy: str | None) -> Limits:
        return self._limits.get(strategy or "", self.engine_limits)

    # ------------------------------------------------------------------ pre-trade checks
    def check(self, market: RiskVenue, request: OrderRequest, owner: str | None) -> None:
        """Raise RiskDenied if the prepared `request` of `owner` on `market` breaks a rule; otherwise count
        it as sent (for the rate limits)."""
        key = owner or ""
        try:
            self._check(market, request, key)
        except RiskDenied as exc:
            self._denied(key, exc)
            raise

    def _check(self, market: RiskVenue, request: OrderRequest, key: str) -> None:
        state = _ACTIVE if self.engine_state is None and not self.states else self.state_of(key)
        if state is _HALTED:
            raise RiskDenied(f"HALTED ({self.reason_of(key) or 'no reason given'})", rule=STATE_RULE)
        if market.status not in _TRADABLE:
            raise RiskDenied("market unsynced", rule="market_status")
        limits = self._limits.get(key, self.engine_limits)
        side = request.side
        quantity = request.quantity
        if quantity is None:  # a market order by quote quantity: its base size at the touch
            touch = self._touch(market, side)
            quantity = request.quote_quantity / touch if touch and request.quote_quantity else None
        largest = limits.max_order_quantity
        if largest is not None and quantity is not None and quantity > largest:
            raise RiskDenied(
                f"order {fmt_decimal(quantity)} > {fmt_decimal(largest)}",
                rule="max_order_quantity",
            )
        if limits.max_order_notional is not None:
            if request.quote_quantity is not None:
                notional: Decimal | None = request.quote_quantity
            else:
                price = request.price if request.price is not None else self._touch(market, side)
                notional = None if price is None or quantity is None else price * quantity
            if notional is not None and notional > limits.max_order_notional:
                raise RiskDenied(
                    f"order value {fmt_decimal(notional)} > {fmt_decimal(limits.max_order_notional)}",
                    rule="max_order_notional",
                )
        band = limits.price_band_bps
        if band is not None and request.type is _LIMIT and request.price is not None:
            book = market.book
            bid, ask = book.best_bid, book.best_ask
            if bid is not None and ask is not None:
                both = bid + ask  # |price - mid| / mid > band / 10000, without a division on the way
                if abs(request.price + request.price - both) * _TEN_THOUSAND > band * both:
                    mid = both / 2
                    away = abs(request.price - mid) * _TEN_THOUSAND / mid
                    raise RiskDenied(
                        f"price {fmt_decimal(request.price)} is {away:.1f} bps from mid {fmt_decimal(mid)} "
                        f"> {fmt_decimal(band)}",
                        rule="price_band_bps",
                    )
        if state is _REDUCING or limits.needs_open_orders:
            mine = self.orders.open_orders(market.name, key or None) if key else []
            position = self.orders.portfolio.position(key, market.name).quantity if key else ZERO
            open_same_side = ZERO
            for order in mine:
                if order.side is side and order.quantity is not None:
                    open_same_side += order.quantity - order.filled_quantity
            size = quantity or ZERO
            if state is _REDUCING:
                reduces = position != 0 and (position > 0) == (side is _SELL)
                if not reduces or open_same_side + size > abs(position):
                    raise RiskDenied(
                        f"REDUCING: {side.value} {fmt_decimal(size)} would not reduce position "
                        f"{fmt_decimal(position)}"
                        + (f" (open {fmt_decimal(open_same_side)})" if open_same_side else ""),
                        rule=STATE_RULE,
                    )
            if limits.max_open_orders is not None and len(mine) + 1 > limits.max_open_orders:
                raise RiskDenied(
                    f"{len(mine)} open + 1 > {limits.max_open_orders}", rule="max_open_orders"
                )
            if limits.max_position is not None:
                sign = 1 if side is _BUY else -1
                after = position + sign * (open_same_side + size)
                if abs(after) > limits.max_position:
                    op = "+" if sign > 0 else "-"
                    cmp, bound = (">", limits.max_position) if sign > 0 else ("<", -limits.max_position)
                    held = f" {op} open {fmt_decimal(open_same_side)}" if open_same_side else ""
                    raise RiskDenied(
                        f"position {fmt_decimal(position)}{held} {op} order {fmt_decimal(size)} {cmp} "
                        f"{fmt_decimal(bound)}",
                        rule="max_position",
                    )
        rate = limits.max_orders_per_second
        engine_rate = self.engine_limits.max_orders_per_second
        if rate is None and engine_rate is None:
            return
        now = self._monotonic()
        sent = self._sent.get(key)
        if rate is not None:
            if sent is None:
                sent = self._sent[key] = deque()
            _prune(sent, now - 1.0)
            if len(sent) >= rate:
                raise RiskDenied(
                    f"{len(sent)} orders in the last second, at most {rate}", rule="max_orders_per_second"
                )
        if engine_rate is not None:
            _prune(self._engine_sent, now - 1.0)
            if len(self._engine_sent) >= engine_rate:
                raise RiskDenied(
                    f"engine: {len(self._engine_sent)} orders in the last second, at most {engine_rate}",
                    rule="max_orders_per_second",
                )
            self._engine_sent.append(now)
        if sent is not None:
            sent.append(now)

    @staticmethod
    def _touch(market: RiskVenue, side: Side) -> Decimal | None:
        """The price a market order on `side` would take (else the last trade's)."""
        price = market.book.best_ask if side is _BUY else market.book.best_bid
        return price or market.last_price

    def _denied(self, key: str, exc: RiskDenied) -> None:
        self.denials.setdefault(key, Counter())[exc.rule] += 1
        now = self.clock.monotonic()
        last = self._logged.get((key, exc.rule))
        if last is None or now - last >= LOG_INTERVAL:
            self._logged[(key, exc.rule)] = now
            logger.warning("%s: order denied: %s: %s", key or "(no strategy)", exc.rule, exc)
        if key:
            self._on_change(key)

    # ------------------------------------------------------------------ trading state
    def state_of(self, strategy: str | None) -> TradingState:
        """The state in force for `strategy`: the stricter of the engine's and its own."""
        engine = self.engine_state.state if self.engine_state is not None else TradingState.ACTIVE
        own = self.states.get(strategy or "")
        if own is None or _SEVERITY[engine] >= _SEVERITY[own.state]:
            return engine
        return own.state

    def reason_of(self, strategy: str | None) -> str:
        engine = self.engine_state
        own = self.states.get(strategy or "")
        if engine is not None and (own is None or _SEVERITY[engine.state] >= _SEVERITY[own.state]):
            return f"engine: {engine.reason}" if engine.reason else "engine"
        return own.reason if own is not None else ""

    def info(self, strategy: str) -> dict[str, Any]:
        """What StrategyInfo shows of the risk layer for `strategy`."""
        state = self.state_of(strategy)
        return {
            "trading_state": state.value,
            "trading_state_reason": self.reason_of(strategy) if state is not TradingState.ACTIVE else None,
            "risk_denials": dict(self.denials.get(strategy, {})),
            "daily_profit": self.daily_profit(strategy),
        }

    def engine_info(self) -> dict[str, Any]:
        entry = self.engine_state
        return {
            "trading_state": (entry.state if entry is not None else TradingState.ACTIVE).value,
            "trading_state_reason": entry.reason if entry is not None else None,
        }

    async def set_state(self, state: TradingState, reason: str = "", strategy: str | None = None) -> None:
        """Put the engine (or `strategy`) in `state`; returns once it is in force: entering HALTED has
        cancelled the open orders it covers (or their cancels are pending), and the state is journaled."""
        self._apply(state, reason, strategy)
        if state is TradingState.HALTED:
            await self._cancel_open(strategy)
        try:
            await self.journal.flush()
        except Exception as exc:  # the state is in force; the journal writes it later
            logger.error("trading state not yet written to the journal: %s", exc)

    def trip(self, state: TradingState, reason: str, strategy: str | None = None) -> None:
        """A breaker's state change: in force at once, its cancels in the background."""
        self._apply(state, reason, strategy)
        if state is TradingState.HALTED:
            self._spawn(self._cancel_open(strategy))

    def _apply(self, state: TradingState, reason: str, strategy: str | None) -> None:
        entry = None if state is TradingState.ACTIVE else StateEntry(state, reason, self.clock.now())
        who = f"strategy {strategy}" if strategy is not None else "engine"
        log = logger.info if state is TradingState.ACTIVE else logger.warning
        log("%s trading state %s%s", who, state.value, f": {reason}" if reason else "")
        if strategy is None:
            self.engine_state = entry
            self._on_engine_change()
            for name in self._limits:
                self._on_change(name)
        else:
            if entry is None:
                self.states.pop(strategy, None)
            else:
                self.states[strategy] = entry
            self._on_change(strategy)
        self._persist()

    async def _cancel_open(self, strategy: str | None) -> None:
        cancelled = await self.orders.cancel_all(strategy)
        if cancelled:
            logger.warning(
                "%s halted: %d open orders cancelled",
                f"strategy {strategy}" if strategy is not None else "engine",
                len(cancelled),
            )

    def _persist(self) -> None:
        self.journal.put(STATE_KEY, {
            "engine": self.engine_state.to_dict() if self.engine_state is not None else None,
            "strategies": {name: entry.to_dict() for name, entry in self.states.items()},
        })

    async def restore(self) -> None:
        """Take up the trading states the journal holds (before any strategy starts)."""
        saved = await self.journal.get(STATE_KEY)
        if not isinstance(saved, dict):
            return
        engine = _entry(saved.get("engine"))
        self.engine_state = engine
        strategies = saved.get("strategies")
        if isinstance(strategies, dict):
            for name, data in strategies.items():
                entry = _entry(data)
                if entry is not None:
                    self.states[str(name)] = entry
        for name, entry in self.states.items():
            logger.warning("strategy %s is %s (from the journal): %s", name, entry.state.value, entry.reason)
        if engine is not None:
            logger.warning("engine is %s (from the journal): %s", engine.state.value, engine.reason)
            self._on_engine_change()

    # ------------------------------------------------------------------ breakers
    def restoring(self) -> contextlib.AbstractContextManager[None]:
        """While the journal's fills are booked again at start-up: the day's P/L is rebuilt, no breaker
        trips (the state they led to, if any, is in the journal)."""
        return _Flag(self)

    def daily_profit(self, strategy: str | None = None) -> Decimal:
        """Realised P/L (fees included, as the portfolio books it) since 00:00 UTC, of `strategy` or, if
        None, of the whole engine."""
        today = self.clock.now().date()
        day, profit = self._engine_daily if strategy is None else self._daily.get(strategy, (date.min, ZERO))
        return profit if day == today else ZERO

    def _booked(self, record: FillRecord, profit: Decimal | None) -> None:
        """A fill was booked (the portfolio's listener)."""
        if not profit:
            return
        today = self.clock.now().date()
        if record.fill.timestamp.date() != today:
            return
        day, total = self._daily.get(record.strategy, (today, ZERO))
        mine = (total if day == today else ZERO) + profit
        self._daily[record.strategy] = (today, mine)
        day, total = self._engine_daily
        everyone = (total if day == today else ZERO) + profit
        self._engine_daily = (today, everyone)
        if self._restoring:
            return
        limit = self.limits(record.strategy).max_daily_loss
        if limit is not None and -mine > limit and self.state_of(record.strategy) is TradingState.ACTIVE:
            self.trip(
                TradingState.HALTED,
                f"max_daily_loss: loss {fmt_decimal(-mine)} > {fmt_decimal(limit)}",
                record.strategy,
            )
        engine_limit = self.engine_limits.max_daily_loss
        active = self.engine_state is None
        if engine_limit is not None and -everyone > engine_limit and active:
            self.trip(
                TradingState.HALTED,
                f"max_daily_loss: engine loss {fmt_decimal(-everyone)} > {fmt_decimal(engine_limit)}",
            )

    def _rejected(self, owner: str | None, order: Order) -> None:
        """An order of `owner` ended REJECTED (the order manager's hook)."""
        if owner is None or order.status is not OrderStatus.REJECTED:
            return
        if order.error == RiskDenied.__name__ and (order.reason or "").startswith(STATE_RULE):
            return  # refused because of the state it is in already
        limits = self.limits(owner)
        if limits.max_rejects is None or self.state_of(owner) is TradingState.HALTED:
            return
        now = self.clock.monotonic()
        times = self._rejects.setdefault(owner, deque())
        _prune(times, now - limits.reject_window)
        times.append(now)
        if len(times) >= limits.max_rejects:
            times.clear()
            self.trip(
                TradingState.HALTED,
                f"max_rejects: {limits.max_rejects} rejections within {limits.reject_window:g} s",
                owner,
            )

    # ------------------------------------------------------------------ housekeeping
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let the cancels a breaker started finish (the engine is stopping)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class _Flag:
    def __init__(self, risk: Risk) -> None:
        self._risk = risk

    def __enter__(self) -> None:
        self._risk._restoring = True

    def __exit__(self, *exc: object) -> None:
        self._risk._restoring = False


def _prune(times: deque[float], before: float) -> None:
    while times and times[0] <= before:
        times.popleft()


def _entry(data: Any) -> StateEntry | None:
    if not isinstance(data, dict):
        return None
    try:
        state = TradingState(str(data.get("state")))
        since = datetime.fromisoformat(str(data.get("since")))
    except ValueError:
        return None
    if state is TradingState.ACTIVE:
        return None
    return StateEntry(state, str(data.get("reason") or ""), since)
