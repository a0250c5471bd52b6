"""PaperClient: real market data from a wrapped client, orders simulated against the live book.

Takers walk the opposite side level by level, each level at its own price; liquidity a paper taker used is
remembered per level (until that level's quantity in the real book changes) so it is not taken twice.
Resting orders fill, as makers at their own price, when a public trade prints at or through them (up to
the trade's quantity) or when the book moves through them (up to the quantity available there).
Simulated fills never become public trades. Funds are reserved when an order is placed and checked:
buys lock quote (price, quantity and fee), sells lock base; fees are charged in the quote asset.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..book import OrderBook
from ..config import ROOT, MarketConfig, format_errors, section_settings
from ..contracts.client import ClientContext, MarketClient, MarketEvents
from ..errors import ConfigError, InsufficientFunds, InvalidOrder, OrderNotFound, PostOnlyRejected
from ..model import (
    ZERO,
    Balance,
    Candle,
    Fill,
    MarketInfo,
    MarketStatus,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Ticker,
    TimeInForce,
    Trade,
    fmt_decimal,
    round_to_step,
)
from ..orderlevel import OrderLevelBook

HISTORY_SIZE = 1000
_Take = tuple[Decimal, Decimal]  # (price, quantity) taken at one level


class PaperSettings(BaseModel):
    """The paper client's keys of `moonship.markets.NAME`; the other keys are the real client's."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: the client that supplies market data: a registry name ("binance") or a dotted class path
    real_client: str = Field(min_length=1)
    #: start balances by asset
    balances: dict[str, Annotated[Decimal, Field(ge=0)]] = Field(default_factory=dict)
    #: taker fee rate
    fee_rate: Decimal = Field(Decimal("0.001"), ge=0, lt=1)
    #: maker fee rate (default: fee_rate)
    maker_fee_rate: Decimal | None = Field(None, ge=0, lt=1)


@dataclass(slots=True)
class _Live:
    """An open paper order and the funds it holds."""

    order: Order
    info: MarketInfo
    asset: str  # the asset reserved
    reserved: Decimal  # still locked for this order
    unit: Decimal | None  # reserve released per unit filled (None: a market buy's exact cost and fee)


class _Tap:
    """The events object the real client pushes to: market data reaches the market first, then the paper
    engine reacts; the real client's own order and balance events are dropped."""

    __slots__ = ("_paper",)

    def __init__(self, paper: PaperClient) -> None:
        self._paper = paper

    @property
    def book(self) -> OrderBook:
        return self._paper.events.book

    def book_changed(self) -> None:
        self._paper.events.book_changed()
        self._paper.on_book_changed()

    def trade(self, trade: Trade) -> None:
        self._paper.events.trade(trade)
        self._paper.on_trade(trade)

    def ticker(self, ticker: Ticker) -> None:
        self._paper.events.ticker(ticker)

    def candle(self, candle: Candle) -> None:
        self._paper.events.candle(candle)

    def status(self, status: MarketStatus, reason: str = "") -> None:
        self._paper.events.status(status, reason)

    def order_update(self, order: Order) -> None:
        """Dropped: paper orders never reach the exchange."""

    def balances(self, balances: Sequence[Balance]) -> None:
        """Dropped: the paper balances are the simulated ones."""


class PaperClient(MarketClient):
    """Simulated orders over a real client's market data (`client: paper`, `real_client: NAME`)."""

    name = "paper"

    def __init__(self, context: ClientContext, events: MarketEvents) -> None:
        super().__init__(context, events)
        path = f"{ROOT}.markets.{context.market_name}"
        try:
            settings = PaperSettings.model_validate(context.config.extra)
        except ValidationError as exc:
            raise ConfigError(format_errors(exc.errors(), path)) from None
        try:
            real_class = context.resolve_client(settings.real_client)
        except ConfigError as exc:
            raise ConfigError(f"{path}.real_client: {exc}") from None
        if not issubclass(real_class, MarketClient) or issubclass(real_class, PaperClient):
            raise ConfigError(f"{path}.real_client: {settings.real_client!r} is not an exchange client")
        real_name = real_class.name or settings.real_client
        own_keys = PaperSettings.model_fields.keys()
        real_config = MarketConfig.model_validate(
            {k: v for k, v in context.config.model_dump().items() if k not in own_keys}
            | {"client": settings.real_client}
        )
        real_context = replace(
            context,
            config=real_config,
            settings=section_settings(context.sections, real_name, real_class.settings_model),
            market_data_only=True,
        )
        self.real: MarketClient = real_class(real_context, _Tap(self))
        self.taker_fee_rate = settings.fee_rate
        maker = settings.maker_fee_rate
        self.maker_fee_rate = settings.fee_rate if maker is None else maker
        self._reserve_rate = max(self.taker_fee_rate, self.maker_fee_rate)
        self._free: dict[str, Decimal] = dict(settings.balances)
        self._locked: dict[str, Decimal] = {}
        self._info: MarketInfo | None = None
        self._open: dict[str, _Live] = {}  # order id -> open order, in placement order
        self._history: OrderedDict[str, Order] = OrderedDict()  # order id -> final order
        self._ids: dict[str, str] = {}  # client order id -> order id
        #: (book side, price) -> (the level's quantity when paper takers used it, quantity used)
        self._consumed: dict[tuple[Side, Decimal], tuple[Decimal, Decimal]] = {}
        self._order_seq = 0
        self._fill_seq = 0
        self._outbox: list[Order] = []
        self._balances_changed = False
        self._flush_scheduled = False

    # ------------------------------------------------------------------ delegated to the real client
    @property
    def order_level_book(self) -> OrderLevelBook | None:
        return self.real.order_level_book

    async def connect(self) -> None:
        await self.real.connect()

    async def close(self) -> None:
        """Stop the real client; paper orders stay as they are."""
        await self.real.close()

    async def get_market_info(self) -> MarketInfo:
        self._info = await self.real.get_market_info()
        return self._info

    async def get_ticker(self) -> Ticker:
        return await self.real.get_ticker()

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        return await self.real.get_recent_trades(limit)

    # ------------------------------------------------------------------ orders
    async def place_order(self, request: OrderRequest) -> Order:
        info = self._info or await self.get_market_info()
        # from here on nothing awaits: the book cannot move under the order; the id is taken if it is recorded
        known = self._ids.get(request.client_order_id)
        if known is not None:
            return self._current(known)
        order = Order(
            id=f"paper-{self._order_seq + 1}", client_order_id=request.client_order_id, symbol=self.symbol,
            side=request.side, type=request.type, status=OrderStatus.PENDING, quantity=request.quantity,
            quote_quantity=request.quote_quantity, price=request.price, time_in_force=request.time_in_force,
            post_only=request.post_only, created=self.context.clock.now(), updated=self.context.clock.now(),
        )
        if request.type is OrderType.MARKET:
            self._market_order(order, info)
        else:
            self._limit_order(order, info)
        return order

    def _limit_order(self, order: Order, info: MarketInfo) -> None:
        price, quantity = order.price, order.quantity
        if price is None or quantity is None:
            raise InvalidOrder("a limit order needs a price and a quantity", rule="limit")
        book, book_side = self.events.book, order.side.opposite
        if order.post_only:
            best = book.best_ask if order.side is Side.BUY else book.best_bid
            if best is not None and (price >= best if order.side is Side.BUY else price <= best):
                raise PostOnlyRejected(f"post-only {order.side.value} at {fmt_decimal(price)} crosses {best}")
        if order.side is Side.BUY:
            unit = price * (1 + self._reserve_rate)
            live = self._reserve(order, info, info.quote_asset, quantity * unit, unit)
        else:
            live = self._reserve(order, info, info.base_asset, quantity, Decimal(1))
        fok_short = (
            order.time_in_force is TimeInForce.FOK and self._available(book_side, price) < quantity
        )
        if not fok_short:
            takes, _ = self._walk(book_side, price, quantity)
            self._take(live, book_side, takes)
        if order.time_in_force is not TimeInForce.GTC and not live.order.status.is_final:
            reason = "FOK: not enough liquidity" if fok_short else "IOC: unfilled quantity cancelled"
            self._finish(live, live.order.closed(OrderStatus.CANCELLED, reason, at=self.context.clock.now()))

    def _market_order(self, order: Order, info: MarketInfo) -> None:
        book_side = order.side.opposite
        takes, complete = self._walk(book_side, None, order.quantity, order.quote_quantity, info.lot_size)
        if order.side is Side.BUY:
            need = sum((p * q * (1 + self.taker_fee_rate) for p, q in takes), ZERO)
            live = self._reserve(order, info, info.quote_asset, need, None)
        else:
            need = sum((q for _, q in takes), ZERO)
            live = self._reserve(order, info, info.base_asset, need, Decimal(1))
        self._take(live, book_side, takes)
        if live.order.status.is_final:
            return
        now = self.context.clock.now()
        if complete:  # a quote-sized order whose remainder is worth less than one lot
            self._finish(live, replace(live.order, status=OrderStatus.FILLED, updated=now))
        else:
            self._finish(live, live.order.closed(OrderStatus.CANCELLED, "not enough liquidity", at=now))

    async def cancel_order(self, order: Order) -> Order:
        live = self._open.get(order.id) or self._open.get(self._ids.get(order.client_order_id, ""))
        if live is None:
            raise OrderNotFound(f"paper order {order.id or order.client_order_id} is not open")
        final = live.order.closed(OrderStatus.CANCELLED, "cancelled", at=self.context.clock.now())
        self._finish(live, final)
        return final

    async def get_order(self, order: Order) -> Order:
        known = order.id in self._open or order.id in self._history
        order_id = order.id if known else self._ids.get(order.client_order_id)
        if order_id is None:
            raise OrderNotFound(f"no paper order {order.id or order.client_order_id}")
        return self._current(order_id)

    async def get_open_orders(self) -> list[Order]:
        return [live.order for live in self._open.values()]

    async def get_balances(self) -> dict[str, Balance]:
        return self._balances()

    def _current(self, order_id: str) -> Order:
        live = self._open.get(order_id)
        return live.order if live is not None else self._history[order_id]

    # ------------------------------------------------------------------ market events (from the tap)
    def on_book_changed(self) -> None:
        """Forget stale used liquidity; fill resting orders the book moved through."""
        book = self.events.book
        if self._consumed:
            stale = [key for key, (seen, _) in self._consumed.items() if book.quantity_at(*key) != seen]
            for key in stale:
                del self._consumed[key]
        if not self._open:
            return
        best_ask, best_bid = book.best_ask, book.best_bid
        for live in self._resting():
            price, remaining = live.order.price, live.order.remaining_quantity
            if price is None or not remaining:
                continue
            side = live.order.side
            best = best_ask if side is Side.BUY else best_bid
            if best is None or (best > price if side is Side.BUY else best < price):
                continue
            takes, _ = self._walk(side.opposite, price, remaining)
            total = sum((q for _, q in takes), ZERO)
            if total:
                self._consume(side.opposite, takes)
                self._fill(live, price, total, is_maker=True)

    def on_trade(self, trade: Trade) -> None:
        """Fill resting orders a public trade printed at or through, up to the trade's quantity."""
        left = trade.quantity
        for live in self._resting():
            price, remaining = live.order.price, live.order.remaining_quantity
            if price is None or not remaining:
                continue
            if trade.price <= price if live.order.side is Side.BUY else trade.price >= price:
                quantity = min(remaining, left)
                self._fill(live, price, quantity, is_maker=True)
                left -= quantity
                if not left:
                    return

    def _resting(self) -> list[_Live]:
        """Open orders by price priority (highest buys, lowest sells first), then time."""
        return sorted(
            self._open.values(),
            key=lambda live: -(live.order.price or ZERO) if live.order.side is Side.BUY
            else live.order.price or ZERO,
        )

    # ------------------------------------------------------------------ liquidity
    def _walk(
        self,
        book_side: Side,
        limit: Decimal | None,
        quantity: Decimal | None,
        quote: Decimal | None = None,
        lot: Decimal = ZERO,
    ) -> tuple[list[_Take], bool]:
        """What a taker of `quantity` (or of `quote` worth, rounded to `lot`) would get from `book_side` at
        `limit` or better, less what paper takers already used; and whether that covers it all."""
        takes: list[_Take] = []
        for price, level in self.events.book.levels(book_side):
            if limit is not None and (price > limit if book_side is Side.SELL else price < limit):
                break
            available = level - self._used(book_side, price, level)
            if available <= 0:
                continue
            if quantity is not None:
                take = min(available, quantity)
                quantity -= take
                takes.append((price, take))
                if not quantity:
                    return takes, True
            elif quote is not None:
                take = min(available, round_to_step(quote / price, lot))
                if take <= 0:  # what is left buys less than one lot
                    return takes, bool(takes)
                quote -= take * price
                takes.append((price, take))
                if not quote:
                    return takes, True
        return takes, False

    def _used(self, book_side: Side, price: Decimal, level: Decimal) -> Decimal:
        entry = self._consumed.get((book_side, price))
        return entry[1] if entry is not None and entry[0] == level else ZERO

    def _available(self, book_side: Side, limit: Decimal) -> Decimal:
        """Quantity on `book_side` at `limit` or better that paper takers have not used."""
        book = self.events.book
        total = book.quantity_up_to(book_side, limit)
        for (side, price), (seen, used) in self._consumed.items():
            within = price <= limit if side is Side.SELL else price >= limit
            if side is book_side and within and book.quantity_at(side, price) == seen:
                total -= used
        return total

    def _consume(self, book_side: Side, takes: list[_Take]) -> None:
        book = self.events.book
        for price, quantity in takes:
            level = book.quantity_at(book_side, price)
            self._consumed[(book_side, price)] = (level, self._used(book_side, price, level) + quantity)

    def _take(self, live: _Live, book_side: Side, takes: list[_Take]) -> None:
        """Execute `takes` for `live` as a taker, one fill per level."""
        self._consume(book_side, takes)
        for price, quantity in takes:
            self._fill(live, price, quantity, is_maker=False)

    # ------------------------------------------------------------------ funds and fills
    def _reserve(
        self, order: Order, info: MarketInfo, asset: str, amount: Decimal, unit: Decimal | None
    ) -> _Live:
        """Lock `amount` of `asset` for a new order and record it as open."""
        free = self._free.get(asset, ZERO)
        if amount > free:
            raise InsufficientFunds(
                f"insufficient {asset}: the order needs {fmt_decimal(amount)}, {fmt_decimal(free)} is free"
            )
        live = _Live(order, info, asset, amount, unit)
        self._order_seq += 1
        self._open[order.id] = live
        self._ids[order.client_order_id] = order.id
        if amount:
            self._free[asset] = free - amount
            self._locked[asset] = self._locked.get(asset, ZERO) + amount
            self._balances_changed = True
            self._schedule()
        return live

    def _fill(self, live: _Live, price: Decimal, quantity: Decimal, *, is_maker: bool) -> None:
        info = live.info
        cost = price * quantity
        fee = cost * (self.maker_fee_rate if is_maker else self.taker_fee_rate)
        self._fill_seq += 1
        fill = Fill(
            f"paper-fill-{self._fill_seq}", price, quantity, fee, info.quote_asset, is_maker,
            timestamp=self.context.clock.now(),
        )
        live.order = live.order.with_fill(fill)
        release = min(live.reserved, cost + fee if live.unit is None else quantity * live.unit)
        live.reserved -= release
        self._locked[live.asset] -= release
        base, quote = info.base_asset, info.quote_asset
        if live.order.side is Side.BUY:  # the reserve paid cost and fee; any excess is free again
            self._free[quote] += release - cost - fee
            self._free[base] = self._free.get(base, ZERO) + quantity
        else:  # the reserved base is gone
            self._free[quote] = self._free.get(quote, ZERO) + cost - fee
        self._balances_changed = True
        self._publish(live.order)
        if live.order.status is OrderStatus.FILLED:
            self._finish(live)

    def _finish(self, live: _Live, final: Order | None = None) -> None:
        """Close an open order (with `final` as its last state, if given) and release its funds."""
        if self._open.pop(live.order.id, None) is None:
            return
        if final is not None:
            live.order = final
            self._publish(final)
        if live.reserved:
            self._locked[live.asset] -= live.reserved
            self._free[live.asset] += live.reserved
            live.reserved = ZERO
            self._balances_changed = True
        self._history[live.order.id] = live.order
        while len(self._history) > HISTORY_SIZE:
            old_id, old = self._history.popitem(last=False)
            if self._ids.get(old.client_order_id) == old_id:
                del self._ids[old.client_order_id]
        self._schedule()

    def _balances(self) -> dict[str, Balance]:
        return {
            asset: Balance(asset, self._free.get(asset, ZERO), self._locked.get(asset, ZERO))
            for asset in self._free.keys() | self._locked.keys()
        }

    # ------------------------------------------------------------------ pushing updates
    def _publish(self, order: Order) -> None:
        self._outbox.append(order)
        self._schedule()

    def _schedule(self) -> None:
        """Deliver queued updates in order on the next loop iteration (so place_order's ack comes first)."""
        if self._flush_scheduled or not (self._outbox or self._balances_changed):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven synchronously (no loop): deliver now
            self._flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        orders, self._outbox = self._outbox, []
        for order in orders:
            self.events.order_update(order)
        if self._balances_changed:
            self._balances_changed = False
            self.events.balances(list(self._balances().values()))
