"""Domain types: Decimal money, timezone-aware UTC times, immutable records.

Records carry no hidden clock: every time on an Order, Fill, Trade or Ticker is given by whoever makes it
(an exchange's own time from the wire, or the engine's Clock), so a backtest under a SimClock stamps only
simulated times."""

from __future__ import annotations

import enum
import itertools
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any

ZERO = Decimal(0)


def utc_now() -> datetime:
    """The system's current time, timezone-aware UTC. Trading code asks its Clock instead (`clock.now()`)."""
    return datetime.now(UTC)


def from_ms(ms: int | float | str) -> datetime:
    """Epoch milliseconds to an aware UTC datetime."""
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


#: the start of every client order id Moonship makes (reconciliation recognises its own orders by it)
CLIENT_ORDER_ID_PREFIX = "ms"


_ID_COUNTER: ContextVar[Iterator[int] | None] = ContextVar("moonship_client_order_ids", default=None)


def new_client_order_id() -> str:
    """A unique client order id (alphanumeric, 26 chars: fits every exchange's limit); counted up from 1
    inside `sequential_client_order_ids`."""
    counter = _ID_COUNTER.get()
    if counter is not None:
        return f"{CLIENT_ORDER_ID_PREFIX}{next(counter):024x}"
    return f"{_ID_PREFIX}{next(_ID_SEQUENCE):012x}"


#: outside `sequential_client_order_ids`: 12 random hex digits per process, then a count from a random start
#: (unique within the process, and across processes and restarts but by a 1 in 2**48 chance; no system call
#: per id)
_ID_PREFIX = CLIENT_ORDER_ID_PREFIX + secrets.token_hex(6)
_ID_SEQUENCE = itertools.count(secrets.randbits(40))


@contextmanager
def sequential_client_order_ids() -> Iterator[None]:
    """Within (and in the tasks started within), client order ids count up: a backtest's are the same on
    every run."""
    token = _ID_COUNTER.set(itertools.count(1))
    try:
        yield
    finally:
        _ID_COUNTER.reset(token)


def round_to_step(value: Decimal, step: Decimal, *, up: bool = False) -> Decimal:
    """Round `value` down (or up) to a whole multiple of `step`."""
    if step <= 0:
        return value
    units = (value / step).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR)
    return (units * step).quantize(step, ROUND_DOWN)


def fmt_decimal(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros ("0.0001", "12")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(enum.StrEnum):
    """The first Moonship's statuses (readable strings), plus UNKNOWN for unconfirmed requests."""

    PENDING = "PENDING"
    PARTIALLY_FILLED = "PARTIALLY FILLED"
    FILLED = "FILLED"
    CANCELLATION_PENDING = "CANCELLATION PENDING"
    CANCELLED = "CANCELLED"
    CANCELLED_AND_PARTIALLY_FILLED = "CANCELLED AND PARTIALLY FILLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.CANCELLED_AND_PARTIALLY_FILLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
    }
)


_LIMIT = OrderType.LIMIT
_GTC = TimeInForce.GTC


class MarketStatus(enum.StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    OPEN_POST_ONLY = "OPEN POST ONLY"
    #: connected but the book cannot be trusted (disconnected, resyncing)
    UNSYNCED = "UNSYNCED"


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """Static trading rules of one market."""

    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal = ZERO
    min_notional: Decimal = ZERO
    status: MarketStatus = MarketStatus.OPEN

    @property
    def price_decimals(self) -> int:
        return max(0, -self.tick_size.normalize().as_tuple().exponent)  # type: ignore[operator]


@dataclass(frozen=True, slots=True, init=False)
class OrderRequest:
    """What a strategy asks a market to do. `client_order_id` is always set, so retries are idempotent."""

    side: Side
    type: OrderType
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    client_order_id: str = field(default_factory=new_client_order_id)
    margin: bool | None = None
    account: str | None = None

    def __init__(
        self,
        side: Side,
        type: OrderType,
        quantity: Decimal | None = None,
        quote_quantity: Decimal | None = None,
        price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        client_order_id: str | None = None,
        margin: bool | None = None,
        account: str | None = None,
    ) -> None:
        # the fields set through their slots: a frozen dataclass's own __init__ costs ~4x as much
        if (quantity is None) == (quote_quantity is None):
            raise ValueError("an order needs exactly one of quantity or quote_quantity")
        if type is _LIMIT:
            if price is None or price <= 0:
                raise ValueError("a limit order needs a positive price")
            if quantity is None:
                raise ValueError("a limit order is sized by quantity")
            if post_only and time_in_force is not _GTC:
                raise ValueError("a post-only order rests: its time in force must be GTC")
        elif post_only:
            raise ValueError("a market order cannot be post-only")
        if (quantity if quantity is not None else quote_quantity) <= 0:  # type: ignore[operator]
            raise ValueError("order size must be positive")
        s = _REQUEST_SLOTS
        s[0](self, side)
        s[1](self, type)
        s[2](self, quantity)
        s[3](self, quote_quantity)
        s[4](self, price)
        s[5](self, time_in_force)
        s[6](self, post_only)
        s[7](self, new_client_order_id() if client_order_id is None else client_order_id)
        s[8](self, margin)
        s[9](self, account)

    @classmethod
    def limit(
        cls,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        *,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        client_order_id: str | None = None,
        margin: bool | None = None,
        account: str | None = None,
    ) -> OrderRequest:
        return cls(
            side, _LIMIT, quantity, None, price, time_in_force, post_only, client_order_id, margin, account
        )

    @classmethod
    def market(
        cls, side: Side, *, quantity: Decimal | None = None, quote_quantity: Decimal | None = None, **kw: Any
    ) -> OrderRequest:
        return cls(
            side,
            OrderType.MARKET,
            quantity=quantity,
            quote_quantity=quote_quantity,
            time_in_force=TimeInForce.IOC,
            **kw,
        )


#: the slots' setters of OrderRequest's fields, in field order
_REQUEST_SLOTS = tuple(getattr(OrderRequest, f.name).__set__ for f in fields(OrderRequest))


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one of our orders."""

    trade_id: str
    price: Decimal
    quantity: Decimal
    fee: Decimal = ZERO
    fee_asset: str = ""
    is_maker: bool = False
    timestamp: datetime = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class Order:
    """The exchange's view of one of our orders at one moment."""

    id: str
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    filled_quantity: Decimal = ZERO
    filled_quote_quantity: Decimal = ZERO
    fills: tuple[Fill, ...] = ()
    created: datetime = field(kw_only=True)
    updated: datetime = field(kw_only=True)
    reason: str | None = None
    #: why an order was REJECTED: the error taxonomy's class name ("InsufficientFunds", "InvalidOrder", ...)
    error: str | None = None

    @classmethod
    def from_request(
        cls,
        request: OrderRequest,
        symbol: str,
        status: OrderStatus,
        at: datetime,
        *,
        order_id: str = "",
        reason: str | None = None,
    ) -> Order:
        """The order `request` asks for on `symbol`, as far as known `at`: no fills, id `order_id` ("" until
        the venue names it), `status` usually UNKNOWN or PENDING."""
        order = _new_object(cls)
        s = _ORDER_SLOTS  # set through the slots: the dataclass's own __init__ costs ~3x as much
        s[0](order, order_id)
        s[1](order, request.client_order_id)
        s[2](order, symbol)
        s[3](order, request.side)
        s[4](order, request.type)
        s[5](order, status)
        s[6](order, request.quantity)
        s[7](order, request.quote_quantity)
        s[8](order, request.price)
        s[9](order, request.time_in_force)
        s[10](order, request.post_only)
        s[11](order, ZERO)
        s[12](order, ZERO)
        s[13](order, ())
        s[14](order, at)
        s[15](order, at)
        s[16](order, reason)
        s[17](order, None)
        return order

    @property
    def average_price(self) -> Decimal | None:
        if not self.filled_quantity:
            return None
        return self.filled_quote_quantity / self.filled_quantity

    @property
    def remaining_quantity(self) -> Decimal | None:
        return None if self.quantity is None else self.quantity - self.filled_quantity

    @property
    def fees(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for f in self.fills:
            if f.fee:
                out[f.fee_asset] = out.get(f.fee_asset, ZERO) + f.fee
        return out

    def with_fill(self, fill: Fill) -> Order:
        """This order after `fill`; its status becomes PARTIALLY FILLED or FILLED."""
        filled = self.filled_quantity + fill.quantity
        quote = self.filled_quote_quantity + fill.price * fill.quantity
        done = (self.quantity is not None and filled >= self.quantity) or (
            self.quote_quantity is not None and quote >= self.quote_quantity
        )
        return replace(
            self,
            filled_quantity=filled,
            filled_quote_quantity=quote,
            fills=(*self.fills, fill),
            status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
            updated=fill.timestamp,
        )

    def closed(self, status: OrderStatus, reason: str | None = None, *, at: datetime) -> Order:
        """This order ended `at` (the caller's clock): a cancel or expiry with fills keeps them visible in
        the status."""
        if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and self.filled_quantity > 0:
            status = OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
        return replace(self, status=status, reason=reason or self.reason, updated=at)


#: the slots' setters of Order's fields, in field order
_ORDER_SLOTS = tuple(getattr(Order, f.name).__set__ for f in fields(Order))
_new_object = object.__new__


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade."""

    id: str
    symbol: str
    price: Decimal
    quantity: Decimal
    taker_side: Side
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    timestamp: datetime

    @property
    def spread(self) -> Decimal | None:
        return None if self.bid is None or self.ask is None else self.ask - self.bid


@dataclass(frozen=True, slots=True)
class Candle:
    symbol: str
    period: int
    start_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    buy_volume: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked
