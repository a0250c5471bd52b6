"""Market: one currency pair at one exchange. It keeps the book, recent trades, ticker and candles, and is
the only way to send requests to the exchange (through its MarketClient).

Cache, then publish: every event from the client updates the market's own state first and then notifies
the subscribed strategies, which decide later on their own tasks (see strategy.Mailbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from time import perf_counter
from typing import Any, Protocol

from ..book import OrderBook
from ..config import MarketConfig
from ..contracts.client import ClientContext, MarketClient
from ..errors import (
    InvalidOrder,
    MarketClosed,
    MoonshipError,
)
from ..model import (
    Balance,
    Candle,
    MarketInfo,
    MarketStatus,
    Order,
    OrderRequest,
    Side,
    Ticker,
    Trade,
    fmt_decimal,
    round_to_step,
)
from ..orderlevel import OrderLevelBook
from ..stores.memory import MemoryJournal
from .counters import EngineCounters
from .orders import OrderManager
from .portfolio import Portfolio, Position
from .risk import Risk

_QUOTE_STEP = Decimal("1e-8")
#: enum members read on every order, once (a member's attribute access costs ~0.2 us on Python 3.11)
_SELL, _BUY = Side.SELL, Side.BUY
_CLOSED, _POST_ONLY = MarketStatus.CLOSED, MarketStatus.OPEN_POST_ONLY


def _is_power_of_ten(step: Decimal) -> bool:
    """Whether `step` is 10^n (0.01, 1, 1E+1): rounding to it is one quantize."""
    return step > 0 and step.as_tuple().digits == (1,)


class Subscriber(Protocol):
    """What a market notifies (implemented by the strategy's mailbox)."""

    def notify_book(self, market: Market) -> None: ...

    def notify(self, kind: str, market: Market, payload: Any) -> None: ...


class Market:
    def __init__(
        self,
        name: str,
        config: MarketConfig,
        client_class: type[MarketClient],
        context: ClientContext,
        orders: OrderManager | None = None,
        risk: Risk | None = None,
        counters: EngineCounters | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.symbol = config.symbol
        self.logger = logging.getLogger(f"moonship.market.{name}")
        self.book = OrderBook(self.symbol)
        self.info: MarketInfo | None = None
        self.status = MarketStatus.CLOSED
        self.trades: deque[Trade] = deque(maxlen=config.max_recent_trade_list_size)
        self.candles: deque[Candle] = deque(maxlen=1000)
        self.last_price: Decimal | None = None
        self.balances: dict[str, Balance] = {}
        self._ticker: Ticker | None = None
        self._candle: Candle | None = None
        self._subscribers: list[Subscriber] = []
        #: the engine's order manager (a market of its own when built alone)
        self.orders = orders or OrderManager(MemoryJournal(), Portfolio(), context.clock)
        #: the engine's risk layer: every order passes its checks after rounding (none when built alone)
        self.risk = risk
        #: this market's events and resyncs (the engine's metrics)
        self.counts = (counters or EngineCounters()).market(name)
        #: perf_counter() time of the latest book, trade or ticker event (the start of tick-to-order)
        self.event_in = 0.0
        #: the MarketInfo whose steps `_decimal_steps` describes: whether its tick and lot are powers of ten
        self._steps_of: MarketInfo | None = None
        self._decimal_steps = (False, False)
        self._opened = False
        self._open_lock = asyncio.Lock()
        self.clock = context.clock
        context.logger = self.logger
        self.client = client_class(context, _Feed(self))

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Load the market's rules and start the client's streams (idempotent)."""
        async with self._open_lock:
            if not self._opened:
                await self._open()

    async def _open(self) -> None:
        self.info = await self.client.get_market_info()
        self.book = OrderBook(self.symbol, price_decimals=max(8, self.info.price_decimals))
        self.status = MarketStatus.UNSYNCED
        self._opened = True
        try:
            await self.client.connect()
            await self.orders.reconcile(self)
        except BaseException:
            self._opened = False  # the next open() starts afresh
            self.status = MarketStatus.CLOSED
            with contextlib.suppress(Exception):
                await self.client.close()
            raise
        self.logger.info(
            "opened %s: tick %s, lot %s, min qty %s, min notional %s",
            self.symbol,
            self.info.tick_size,
            self.info.lot_size,
            self.info.min_quantity,
            self.info.min_notional,
        )

    async def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        await self.orders.close(self.name)
        await self.client.close()
        self.status = MarketStatus.CLOSED
        self.book.clear()

    def subscribe(self, subscriber: Subscriber) -> None:
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    # ------------------------------------------------------------------ state
    @property
    def ticker(self) -> Ticker:
        """The latest ticker from the exchange, or one made from the book and the last trade."""
        if self._ticker is not None:
            return self._ticker
        return Ticker(self.symbol, self.book.best_bid, self.book.best_ask, self.last_price, self.clock.now())

    @property
    def is_open(self) -> bool:
        return self.status in (MarketStatus.OPEN, MarketStatus.OPEN_POST_ONLY)

    def open_orders(self, owner: str | None = None) -> list[Order]:
        """Our live orders in this market (of one strategy, if given)."""
        return self.orders.open_orders(self.name, owner)

    # ------------------------------------------------------------------ events from the client (via _Feed)
    def _on_book(self) -> None:
        self.event_in = perf_counter()
        self.counts.book += 1
        for sub in self._subscribers:
            sub.notify_book(self)

    def _on_trade(self, trade: Trade) -> None:
        self.event_in = perf_counter()
        self.counts.trade += 1
        self.trades.append(trade)
        self.last_price = trade.price
        period = self.config.candle_period
        if period:
            self._add_to_candle(trade, period)
        for sub in self._subscribers:
            sub.notify("trade", self, trade)

    def _on_ticker(self, ticker: Ticker) -> None:
        self.event_in = perf_counter()
        self.counts.ticker += 1
        self._ticker = ticker
        if ticker.last is not None:
            self.last_price = ticker.last
        for sub in self._subscribers:
            sub.notify("ticker", self, ticker)

    def _on_candle(self, candle: Candle) -> None:
        self.candles.append(candle)
        for sub in self._subscribers:
            sub.notify("candle", self, candle)

    def _on_status(self, status: MarketStatus, reason: str = "") -> None:
        if status is self.status or not self._opened:
            return
        level = (
            logging.INFO if status in (MarketStatus.OPEN, MarketStatus.OPEN_POST_ONLY) else logging.WARNING
        )
        self.logger.log(level, "market %s%s", status.value, f": {reason}" if reason else "")
        if status is MarketStatus.UNSYNCED and self.is_open:
            self.counts.resyncs += 1
        self.status = status
        for sub in self._subscribers:
            sub.notify("status", self, status)

    def _on_order_update(self, order: Order) -> None:
        self.counts.order += 1
        self.orders.update(self, order)

    def _on_balances(self, balances: Sequence[Balance]) -> None:
        for b in balances:
            self.balances[b.asset] = b

    # ------------------------------------------------------------------ requests
    async def place_order(self, request: OrderRequest, owner: str | None = None) -> Order:
        """Round to the market's tick and lot, check its minimums, send, and track the order for the strategy
        `owner`.

        Never raises for what the market, the exchange or the network decides: the order comes back REJECTED
        (with `error` and `reason`), or UNKNOWN while a sent order is unconfirmed; UNKNOWN resolves later,
        once, through the owner's order updates. A REJECTED order is also sent to the owner as an update.
        An order the risk layer refuses never reaches the client (REJECTED, `error` "RiskDenied")."""
        try:
            self._check_open(request)
            request = self.prepare(request)
            self.client.features.check(request, self.name)
            if self.risk is not None:
                self.risk.check(self, request, owner)
        except MoonshipError as exc:
            return self.orders.reject(self, request, exc, owner)
        return await self.orders.place(self, request, owner)

    async def cancel_order(self, order: Order) -> Order:
        """Cancel one of our orders; never raises. Returns its state after the cancel, or CANCELLATION
        PENDING while the cancel is unconfirmed (the outcome arrives as order updates). A halted market may
        still take cancels, so they are sent in any market status."""
        return await self.orders.cancel(self, order)

    async def get_order(self, order: Order) -> Order:
        result = await self.client.get_order(order)
        self.orders.update(self, result)
        return result

    async def get_balances(self) -> dict[str, Balance]:
        balances = await self.client.get_balances()
        self.balances.update(balances)
        return balances

    def prepare(self, request: OrderRequest) -> OrderRequest:
        """The request as it will leave: rounded to tick and lot, defaults applied, minimums checked."""
        info = self.info
        price, qty, quote = request.price, request.quantity, request.quote_quantity
        if info is not None:
            if info is not self._steps_of:
                steps = (_is_power_of_ten(info.tick_size), _is_power_of_ten(info.lot_size))
                self._steps_of, self._decimal_steps = info, steps
            tick_quantize, lot_quantize = self._decimal_steps
            if price is not None:
                # a buy never pays more, a sell never asks less, than the strategy said
                up = request.side is _SELL
                if tick_quantize:  # a tick of 10^n: one quantize, the same result as round_to_step
                    price = price.quantize(info.tick_size, ROUND_CEILING if up else ROUND_FLOOR)
                else:
                    price = round_to_step(price, info.tick_size, up=up)
                if price <= 0:
                    raise InvalidOrder(
                        f"{self.name}: price {request.price} rounds to 0 at tick size {info.tick_size}",
                        rule="tick_size",
                    )
            if qty is not None:
                lot = info.lot_size
                qty = qty.quantize(lot, ROUND_FLOOR) if lot_quantize else round_to_step(qty, lot)
                if qty <= 0:
                    raise InvalidOrder(
                        f"{self.name}: quantity {request.quantity} rounds to 0 at lot size {info.lot_size}",
                        rule="lot_size",
                    )
        if quote is not None:
            quote = round_to_step(quote, _QUOTE_STEP)
        margin = self.config.enable_margin if request.margin is None else request.margin
        account = self.config.account if request.account is None else request.account
        request = OrderRequest(  # built directly: dataclasses.replace costs microseconds on the hot path
            request.side, request.type, qty, quote, price, request.time_in_force, request.post_only,
            request.client_order_id, margin, account,
        )
        if info is not None:
            self._check_minimums(request, info)
        return request

    def _check_open(self, request: OrderRequest) -> None:
        status = self.status
        if status is _CLOSED:
            raise MarketClosed(f"{self.name}: market closed")
        if status is _POST_ONLY and not request.post_only:
            raise MarketClosed(f"{self.name}: market accepts only post-only orders")

    def _check_minimums(self, request: OrderRequest, info: MarketInfo) -> None:
        qty = request.quantity
        if qty is not None and qty < info.min_quantity:
            raise InvalidOrder(
                f"{self.name}: quantity {qty} is below the minimum {info.min_quantity}", rule="min_quantity"
            )
        if request.quote_quantity is not None:
            notional: Decimal | None = request.quote_quantity
        else:
            price = request.price
            if price is None:  # market order by quantity: value it at the price it would take
                price = self.book.best_ask if request.side is Side.BUY else self.book.best_bid
                price = price or self.last_price
            notional = None if price is None or qty is None else price * qty
        if notional is not None and notional < info.min_notional:
            raise InvalidOrder(
                f"{self.name}: order value {fmt_decimal(notional)} is below the minimum {info.min_notional}",
                rule="min_notional",
            )

    def _add_to_candle(self, trade: Trade, period: int) -> None:
        ts = int(trade.timestamp.timestamp())
        start = datetime.fromtimestamp(ts - ts % period, UTC)
        c = self._candle
        if c is not None and start < c.start_time:
            return  # a late trade of a candle already closed and published: the current one stays
        if c is not None and c.start_time == start:
            self._candle = replace(
                c,
                high=max(c.high, trade.price),
                low=min(c.low, trade.price),
                close=trade.price,
                volume=c.volume + trade.quantity,
                buy_volume=c.buy_volume + (trade.quantity if trade.taker_side is Side.BUY else 0),
            )
            return
        if c is not None:
            self._on_candle(c)
        self._candle = Candle(
            self.symbol,
            period,
            start,
            trade.price,
            trade.price,
            trade.price,
            trade.price,
            trade.quantity,
            trade.quantity if trade.taker_side is Side.BUY else Decimal(0),
        )

    def __repr__(self) -> str:
        return f"Market({self.name}: {self.symbol} {self.status.value})"


class _Feed:
    """The MarketEvents a market hands its client: its own handlers, bound once (no extra call per event)."""

    __slots__ = ("_market", "balances", "book_changed", "candle", "order_update", "status", "ticker", "trade")

    def __init__(self, market: Market) -> None:
        self._market = market
        self.book_changed = market._on_book
        self.trade = market._on_trade
        self.ticker = market._on_ticker
        self.candle = market._on_candle
        self.status = market._on_status
        self.order_update = market._on_order_update
        self.balances = market._on_balances

    @property
    def book(self) -> OrderBook:
        return self._market.book


class MarketView:
    """The StrategyMarket an algo gets: one market as one strategy sees it; orders placed here are tracked
    as that strategy's."""

    __slots__ = ("_market", "_owner", "_position")

    def __init__(self, market: Market, owner: str, position: Position) -> None:
        self._market = market
        self._owner = owner
        self._position = position

    @property
    def name(self) -> str:
        return self._market.name

    @property
    def symbol(self) -> str:
        return self._market.symbol

    @property
    def book(self) -> OrderBook:
        return self._market.book

    @property
    def order_level_book(self) -> OrderLevelBook | None:
        """The individual orders behind `book`, where the venue publishes them (Luno); None elsewhere."""
        return self._market.client.order_level_book

    @property
    def info(self) -> MarketInfo | None:
        return self._market.info

    @property
    def status(self) -> MarketStatus:
        return self._market.status

    @property
    def ticker(self) -> Ticker:
        return self._market.ticker

    @property
    def last_price(self) -> Decimal | None:
        return self._market.last_price

    @property
    def trades(self) -> deque[Trade]:
        """Recent public trades, oldest first."""
        return self._market.trades

    @property
    def candles(self) -> deque[Candle]:
        return self._market.candles

    @property
    def balances(self) -> Mapping[str, Balance]:
        return self._market.balances

    @property
    def open_orders(self) -> list[Order]:
        """This strategy's live orders in this market."""
        return self._market.open_orders(self._owner)

    @property
    def position(self) -> Position:
        """This strategy's position and P/L in this market."""
        return self._position

    async def place_order(self, request: OrderRequest) -> Order:
        return await self._market.place_order(request, self._owner)

    async def cancel_order(self, order: Order) -> Order:
        return await self._market.cancel_order(order)

    async def get_order(self, order: Order) -> Order:
        return await self._market.get_order(order)

    async def get_balances(self) -> dict[str, Balance]:
        return await self._market.get_balances()

    def __repr__(self) -> str:
        return f"MarketView({self.name})"
