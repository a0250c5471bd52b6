"""MarketClient: the contract every exchange plugin implements, and what it may push to its market."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, cast

from pydantic import BaseModel

from ..book import OrderBook
from ..clock import Clock, LiveClock
from ..config import MarketConfig
from ..errors import ConfigError, NotSupported
from ..model import (
    Balance,
    Candle,
    MarketInfo,
    MarketStatus,
    Order,
    OrderRequest,
    OrderType,
    Side,
    Ticker,
    TimeInForce,
    Trade,
)
from ..orderlevel import OrderLevelBook
from .recording import FrameParser, Recorder
from .stores import Journal

#: enum members read on every order, once (a member's attribute access costs ~0.2 us on Python 3.11)
_LIMIT, _MARKET, _BUY, _SELL = OrderType.LIMIT, OrderType.MARKET, Side.BUY, Side.SELL


class MarketEvents(Protocol):
    """What a client pushes to the market it serves. Each call updates the market's state first and then
    notifies its strategies; none of them blocks."""

    @property
    def book(self) -> OrderBook:
        """The market's book: the client writes snapshots and updates into it, then calls book_changed."""
        ...

    def book_changed(self) -> None: ...

    def trade(self, trade: Trade) -> None: ...

    def ticker(self, ticker: Ticker) -> None: ...

    def candle(self, candle: Candle) -> None: ...

    def status(self, status: MarketStatus, reason: str = "") -> None:
        """The feed's state: OPEN when the book is in sync, UNSYNCED while it is not, CLOSED when closed."""
        ...

    def order_update(self, order: Order) -> None:
        """Any change of one of our orders (found by `client_order_id`), with every fill."""
        ...

    def balances(self, balances: Sequence[Balance]) -> None: ...


class Closeable(Protocol):
    async def aclose(self) -> None: ...


S = TypeVar("S", bound=Closeable)


class Sessions:
    """The engine's venue sessions by key (e.g. "binance https://api.binance.com"); it closes them all at
    stop, after the markets. Clients reach it through `ClientContext.session`."""

    def __init__(self) -> None:
        self._sessions: dict[str, Closeable] = {}

    def get(self, key: str, factory: Callable[[], S]) -> S:
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = factory()
        return cast(S, session)

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.aclose()


@dataclass(frozen=True)
class Features:
    """What a venue's client can do; the market refuses other orders before they leave (REJECTED with
    NotSupported). The defaults allow every order the model can express."""

    order_types: frozenset[OrderType] = frozenset(OrderType)
    time_in_force: frozenset[TimeInForce] = frozenset(TimeInForce)
    post_only: bool = True
    #: market orders sized in the quote asset (`quote_quantity`)
    quote_quantity_market: bool = True
    #: market BUY orders sized in the base asset (`quantity`), not by what they spend
    base_quantity_market_buy: bool = True
    #: market SELL orders sized in the quote asset (`quote_quantity`), not by what they sell
    quote_quantity_market_sell: bool = True
    margin: bool = True
    #: individual orders behind the book (`MarketClient.order_level_book`)
    l3_book: bool = False

    def check(self, request: OrderRequest, venue: str = "the venue") -> None:
        """Raise NotSupported naming the first feature `request` needs and this venue lacks."""
        missing: str | None = None
        kind = request.type
        if kind not in self.order_types:
            missing = f"order_type:{kind.value}"
        elif kind is _LIMIT and request.time_in_force not in self.time_in_force:
            missing = f"time_in_force:{request.time_in_force.value}"
        elif request.post_only and not self.post_only:
            missing = "post_only"
        elif kind is _MARKET and request.quote_quantity is not None:
            if not self.quote_quantity_market:
                missing = "quote_quantity_market"
            elif request.side is _SELL and not self.quote_quantity_market_sell:
                missing = "quote_quantity_market_sell"
        elif kind is _MARKET and request.side is _BUY:
            missing = None if self.base_quantity_market_buy else "base_quantity_market_buy"
        if missing is None and request.margin and not self.margin:
            missing = "margin"
        if missing is not None:
            raise NotSupported(f"{venue} does not support {missing}", feature=missing)
class VenueCounters:
    """What clients count per venue for the engine's metrics: reconnects and rate-limit waits."""

    __slots__ = ("rate_limit_waits", "reconnects")

    def __init__(self) -> None:
        self.reconnects: dict[str, int] = {}
        self.rate_limit_waits: dict[str, int] = {}

    def reconnected(self, venue: str) -> None:
        """A connection to `venue` (a websocket) was established again after it was lost or cut."""
        self.reconnects[venue] = self.reconnects.get(venue, 0) + 1

    def rate_limit_waited(self, venue: str) -> None:
        """A request to `venue` waited for its rate limit (or a pause the venue imposed)."""
        self.rate_limit_waits[venue] = self.rate_limit_waits.get(venue, 0) + 1


@dataclass
class ClientContext:
    """Everything a client is built from."""

    market_name: str
    config: MarketConfig
    #: the validated `moonship.<client name>` section (the client's settings_model), or {} when absent
    settings: Any
    #: the market client class registered under a name (for a client that wraps another: paper)
    resolve_client: Callable[[str], type[MarketClient]]
    #: every validated plugin section by name, for a client that builds another (paper over a real client)
    sections: Mapping[str, Any] = field(default_factory=dict)
    #: per-engine state shared by the clients of one engine (e.g. one websocket for all markets of a venue)
    shared: dict[str, Any] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("moonship.market"))
    #: market data only: no private streams (a real client under `paper` sends no orders of its own)
    market_data_only: bool = False
    clock: Clock = field(default_factory=LiveClock)
    #: the engine's journal (open before any market opens), for a client that keeps state of its own across
    #: restarts (paper accounts); None outside an engine
    journal: Journal | None = None
    #: the engine's venue sessions (closed by the engine at stop)
    sessions: Sessions = field(default_factory=Sessions)
    #: the engine's per-venue counters (its metrics): call `reconnected` and `rate_limit_waited`
    counters: VenueCounters = field(default_factory=VenueCounters)
    #: where the client records its raw market input (`moonship record`, `moonship.record.dir`), or None
    recorder: Recorder | None = None

    @property
    def symbol(self) -> str:
        return self.config.symbol

    def session(self, key: str, factory: Callable[[], S]) -> S:
        """The engine's session `key` (venue and account or base URL), built by `factory` the first time."""
        return self.sessions.get(key, factory)


class MarketClient(ABC):
    """One market's connection to one exchange.

    It owns the network: connect/reconnect with backoff, book sync (snapshot + sequenced updates, resync on
    any gap), keepalive, rate limits and signing. It pushes events to `self.events` and never touches
    strategies. Requests raise the errors of the taxonomy (`moonship_core.errors`).
    """

    #: registry name, e.g. "binance"
    name: ClassVar[str] = ""
    #: pydantic model validating the `moonship.<name>` config section (None: the client takes no settings)
    settings_model: ClassVar[type[BaseModel] | None] = None
    #: what the venue accepts; the market checks every order against it before it reaches the client
    features: ClassVar[Features] = Features()

    def __init__(self, context: ClientContext, events: MarketEvents) -> None:
        self.context = context
        self.events = events
        self.logger = context.logger.getChild("client")

    @property
    def symbol(self) -> str:
        return self.context.symbol

    @property
    def order_level_book(self) -> OrderLevelBook | None:
        """The individual orders behind the book, for venues that publish them (None elsewhere)."""
        return None

    @classmethod
    def replay_parser(cls, context: ClientContext, events: MarketEvents, info: MarketInfo) -> FrameParser:
        """A parser of what this venue's client recorded (market rules `info`), feeding `events` through the
        client's own parsing and book code (for replay and backtests). ConfigError for a venue that does not
        record."""
        raise ConfigError(f"{cls.name or cls.__name__} does not replay recordings")

    @abstractmethod
    async def connect(self) -> None:
        """Start the streams; returns once they are being established (status events tell the rest)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop the streams and release every resource; idempotent."""

    @abstractmethod
    async def get_market_info(self) -> MarketInfo: ...

    @abstractmethod
    async def get_ticker(self) -> Ticker: ...

    @abstractmethod
    async def get_recent_trades(self, limit: int = 100) -> list[Trade]: ...

    @abstractmethod
    async def place_order(self, request: OrderRequest) -> Order:
        """Send an order (price and quantity already rounded by the market); returns it as acknowledged.

        The request's client_order_id makes a retried call idempotent. When the outcome is unknown
        (timeout, 5xx) raise OrderStatusUnknown rather than guessing.
        """

    @abstractmethod
    async def cancel_order(self, order: Order) -> Order:
        """Cancel one of our orders; returns its state after the cancel. OrderNotFound if there is none."""

    @abstractmethod
    async def get_order(self, order: Order) -> Order:
        """The exchange's current view of one of our orders (looked up by id or client order id)."""

    @abstractmethod
    async def get_open_orders(self) -> list[Order]: ...

    @abstractmethod
    async def get_balances(self) -> dict[str, Balance]: ...
