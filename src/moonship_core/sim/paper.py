"""PaperClient: real market data from a wrapped client, orders simulated against the live book.

Takers walk the opposite side level by level, each level at its own price; liquidity a paper taker used is
remembered per level (until that level's quantity in the real book changes) so it is not taken twice.
Resting orders fill, as makers at their own price, when a public trade prints at or through them (up to
the trade's quantity) or when the book moves through them (up to the quantity available there).
Simulated fills never become public trades. Funds are reserved when an order is placed and checked:
buys lock quote (price, quantity and fee), sells lock base; fees are charged in the quote asset.

Funds live in a PaperAccount, one per (real client, `account`) in an engine, shared by every paper market on
it as on the exchange. Each asset is seeded once in the account's life: with the `balances` the markets give
(several markets may give them; the same asset with two different amounts is a ConfigError), or, when no
market of the account gives any, with DEFAULT_BALANCE of each quote asset and, at the market's first mid,
DEFAULT_BALANCE quote worth of each base asset. With a journal (ClientContext.journal) the account (balances,
start balances, open orders, id counters) is kept under `paper:{real client}:{account}`, so a paper session
carries on after a restart. It is written before the journal hears of what it reflects (in the same batch,
or an earlier one), so after a kill -9 the account is never behind the journal: the engine's reconciliation
books what the account holds and the journal missed, exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..book import OrderBook
from ..codec import order_from_dict, order_to_dict
from ..config import ROOT, MarketConfig, format_errors, section_settings
from ..contracts.client import ClientContext, MarketClient, MarketEvents
from ..contracts.stores import Journal
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
#: a paper account without configured balances starts with this much of each quote asset, and this much
#: quote worth of each base asset (at the market's first mid)
DEFAULT_BALANCE = Decimal(10_000)
_SEED_STEP = Decimal("1e-8")
_STATE_VERSION = 1
logger = logging.getLogger("moonship.paper")
_Take = tuple[Decimal, Decimal]  # (price, quantity) taken at one level


class PaperSettings(BaseModel):
    """The paper client's keys of `moonship.markets.NAME`; the other keys are the real client's."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: the client that supplies market data: a registry name ("binance") or a dotted class path
    real_client: str = Field(min_length=1)
    #: start balances by asset, of the account this market trades on (see PaperAccount)
    balances: dict[str, Annotated[Decimal, Field(ge=0)]] = Field(default_factory=dict)
    #: taker fee rate
    fee_rate: Decimal = Field(Decimal("0.001"), ge=0, lt=1)
    #: maker fee rate (default: fee_rate)
    maker_fee_rate: Decimal | None = Field(None, ge=0, lt=1)
    #: milliseconds (of the engine's clock) before an order or a cancel reaches the simulated book
    latency_ms: Decimal = Field(Decimal(0), ge=0, le=60_000)


@dataclass(slots=True)
class _Live:
    """An open paper order and the funds it holds."""

    order: Order
    info: MarketInfo
    asset: str  # the asset reserved
    reserved: Decimal  # still locked for this order
    unit: Decimal | None  # reserve released per unit filled (None: a market buy's exact cost and fee)
    #: place among the resting orders of its side, best first: (-price for buys, price for sells; placement)
    rank: tuple[Decimal, int] = (ZERO, 0)


def _rank(live: _Live) -> tuple[Decimal, int]:
    return live.rank


def account_key(real_client: str, account: str | None) -> str:
    """The key of a paper account, in the engine's shared state and in its journal."""
    return f"paper:{real_client}:{account or 'default'}"


class PaperAccount:
    """The simulated funds of one account at one venue, shared by every paper market on it; it delivers
    their order and balance updates (one queue, so they go out in the order they happened) and keeps
    itself in the journal."""

    def __init__(self, key: str, journal: Journal | None) -> None:
        self.key = key
        self.journal = journal
        self.free: dict[str, Decimal] = {}
        self.locked: dict[str, Decimal] = {}
        #: what each asset was seeded with; an asset is seeded once in the account's life
        self.start: dict[str, Decimal] = {}
        #: configured start balances: asset -> (amount, the `balances` property that gave it)
        self.configured: dict[str, tuple[Decimal, str]] = {}
        self.members: dict[str, PaperClient] = {}  # market name -> client
        #: journaled open orders (as stored) of markets that have not taken them up (yet)
        self.dormant: dict[str, list[dict[str, Any]]] = {}
        self.order_seq = 0
        self.fill_seq = 0
        self._unlogged: dict[str, Decimal] = {}
        self._loaded = journal is None
        self._load_lock = asyncio.Lock()
        self._outbox: list[tuple[PaperClient, Order]] = []
        self._balances_changed = False
        self._dirty = False
        self._flush_scheduled = False

    @classmethod
    def of(cls, context: ClientContext, real_client: str) -> PaperAccount:
        """The engine's account for `real_client` and the market's `account` (made on first use)."""
        key = account_key(real_client, context.config.account)
        account = context.shared.get(key)
        if not isinstance(account, PaperAccount):
            account = context.shared[key] = cls(key, context.journal)
        return account

    @property
    def defaults(self) -> bool:
        """Whether the account starts with the default balances (no market configures any)."""
        return not self.configured

    def join(self, client: PaperClient, balances: Mapping[str, Decimal], path: str) -> None:
        """Add a market and the start balances it configures (under `path`)."""
        for asset, amount in balances.items():
            given = self.configured.get(asset)
            if given is not None and given[0] != amount:
                raise ConfigError(
                    f"{path}.balances.{asset}: {fmt_decimal(amount)} differs from {given[1]}.{asset}: "
                    f"{fmt_decimal(given[0])} (the paper markets on account {self.key} share its balances: "
                    f"give an asset once, or alike)"
                )
        for asset, amount in balances.items():
            self.configured.setdefault(asset, (amount, f"{path}.balances"))
        self.members[client.context.market_name] = client
        if self._loaded:
            self._seed_configured()

    async def load(self) -> None:
        """Take up the journaled account, once; then seed what the configuration adds."""
        if self._loaded:
            return
        async with self._load_lock:
            if self._loaded or self.journal is None:
                return
            state = await self.journal.get(self.key)
            if state is not None:
                self._restore(state)
            self._loaded = True
            self._seed_configured()
            self._dirty = True
            self.schedule()

    def _restore(self, state: dict[str, Any]) -> None:
        balances: dict[str, dict[str, str]] = state["balances"]
        self.free = {asset: Decimal(b["free"]) for asset, b in balances.items()}
        self.locked = {asset: Decimal(b["locked"]) for asset, b in balances.items() if Decimal(b["locked"])}
        self.start = {asset: Decimal(amount) for asset, amount in state["start"].items()}
        self.order_seq = int(state["order_seq"])
        self.fill_seq = int(state["fill_seq"])
        for entry in state["orders"]:
            self.dormant.setdefault(entry["market"], []).append(entry)
        logger.info(
            "paper account %s: taken up from the journal: %s; %d open orders",
            self.key, _describe_balances(self.balances()), len(state["orders"]),
        )

    def take_up(self, market: str) -> list[dict[str, Any]]:
        """The journaled open orders of `market`, handed over once."""
        return self.dormant.pop(market, [])

    # ------------------------------------------------------------------ funds
    def seed(self, asset: str, amount: Decimal) -> None:
        """Give an asset its start balance, unless it has one (it goes out with the next update)."""
        if asset in self.start:
            return
        self.start[asset] = amount
        self.free[asset] = self.free.get(asset, ZERO) + amount
        self._unlogged[asset] = amount
        self._balances_changed = self._dirty = True

    def _seed_configured(self) -> None:
        for asset, (amount, _) in self.configured.items():
            self.seed(asset, amount)

    def log_start(self, source: str) -> None:
        """One line with the start balances seeded since the last."""
        if not self._unlogged:
            return
        seeded = ", ".join(f"{fmt_decimal(v)} {asset}" for asset, v in sorted(self._unlogged.items()))
        self._unlogged = {}
        logger.info("paper account %s: start balances %s (%s)", self.key, seeded, source)

    def configured_in(self) -> str:
        return ", ".join(sorted({path for _, path in self.configured.values()}))

    def balances(self) -> dict[str, Balance]:
        return {
            asset: Balance(asset, self.free.get(asset, ZERO), self.locked.get(asset, ZERO))
            for asset in sorted(self.free.keys() | self.locked.keys())
        }

    # ------------------------------------------------------------------ updates and the journal
    def publish(self, client: PaperClient, order: Order) -> None:
        self._outbox.append((client, order))
        self._dirty = True
        self.schedule()

    def changed(self) -> None:
        """The balances changed."""
        self._balances_changed = self._dirty = True
        self.schedule()

    def touched(self) -> None:
        """The open orders changed."""
        self._dirty = True
        self.schedule()

    def schedule(self) -> None:
        """Deliver queued updates in order on the next loop iteration (so place_order's ack comes first)."""
        if self._flush_scheduled or not (self._outbox or self._balances_changed or self._dirty):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven synchronously (no loop): deliver now
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Journal the account, then deliver the queued updates: the journal's batches never hold an update
        without the account state it came from."""
        self.save()
        orders, self._outbox = self._outbox, []
        for client, order in orders:
            client.events.order_update(order)
        if self._balances_changed:
            self._balances_changed = False
            balances = list(self.balances().values())
            for client in self.members.values():
                client.events.balances(balances)

    def save(self) -> None:
        """Queue the account's state in the journal (once it was taken up from there)."""
        if not self._dirty or self.journal is None or not self._loaded:
            return
        self._dirty = False
        self.journal.put(self.key, self.state())

    def state(self) -> dict[str, Any]:
        orders = [entry for entries in self.dormant.values() for entry in entries]
        for client in self.members.values():
            orders.extend(client.open_order_entries())
        return {
            "version": _STATE_VERSION,
            "balances": {
                asset: {"free": b.free, "locked": b.locked} for asset, b in self.balances().items()
            },
            "start": dict(self.start),
            "order_seq": self.order_seq,
            "fill_seq": self.fill_seq,
            "orders": orders,
        }


def _describe_balances(balances: Mapping[str, Balance]) -> str:
    return ", ".join(f"{fmt_decimal(b.total)} {asset}" for asset, b in balances.items()) or "no funds"


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
        self.latency = float(settings.latency_ms) / 1000
        #: the funds, shared with every paper market on the same real client and account
        self.account = PaperAccount.of(context, real_name)
        self.account.join(self, settings.balances, path)
        self._seeding = False  # the base asset's default balance waits for the first mid
        self._info: MarketInfo | None = None
        self._open: dict[str, _Live] = {}  # order id -> open order, in placement order
        #: the open limit orders of each side by price priority, then time (`_Live.rank`)
        self._resting: dict[Side, list[_Live]] = {Side.BUY: [], Side.SELL: []}
        self._placed = 0  # placements ranked so far
        self._history: OrderedDict[str, Order] = OrderedDict()  # order id -> final order
        self._ids: dict[str, str] = {}  # client order id -> order id
        #: (book side, price) -> (the level's quantity when paper takers used it, quantity used)
        self._consumed: dict[tuple[Side, Decimal], tuple[Decimal, Decimal]] = {}

    # ------------------------------------------------------------------ delegated to the real client
    @property
    def order_level_book(self) -> OrderLevelBook | None:
        return self.real.order_level_book

    async def connect(self) -> None:
        await self.real.connect()

    async def close(self) -> None:
        """Stop the real client; paper orders stay as they are (and are journaled as they are)."""
        await self.real.close()
        self.account.flush()

    async def get_market_info(self) -> MarketInfo:
        """The real market's rules; the first call also takes up the account (and this market's journaled
        open orders) and seeds its start balances."""
        info = await self.real.get_market_info()
        account = self.account
        await account.load()
        first = self._info is None
        self._info = info
        if first:
            self._take_up(info)
        if account.defaults:
            account.seed(info.quote_asset, DEFAULT_BALANCE)
            self._seeding = info.base_asset not in account.start
            self._seed_base()
        else:
            account.log_start(f"configured: {account.configured_in()}")
        account.schedule()
        return info

    def _seed_base(self) -> None:
        """Seed the base asset's default balance at the first mid."""
        info, mid = self._info, self.events.book.mid
        if info is None or mid is None or mid <= 0:
            return
        self._seeding = False
        self.account.seed(info.base_asset, round_to_step(DEFAULT_BALANCE / mid, _SEED_STEP))
        self.account.log_start(
            f"the default: {fmt_decimal(DEFAULT_BALANCE)} of each quote asset, and "
            f"{fmt_decimal(DEFAULT_BALANCE)} {info.quote_asset} worth of {info.base_asset} at its first mid "
            f"{fmt_decimal(mid)}"
        )
        self.account.schedule()

    def _take_up(self, info: MarketInfo) -> None:
        """Open again the orders the journaled account holds for this market. An order that would not
        have rested (market, IOC, FOK) ends cancelled: its session ended before it completed."""
        entries = self.account.take_up(self.context.market_name)
        if any(entry["order"]["symbol"] != self.symbol for entry in entries):  # the market was redefined
            self.logger.warning(
                "the journaled paper orders of market %s are not in %s: left as they are",
                self.context.market_name, self.symbol,
            )
            self.account.dormant[self.context.market_name] = entries
            return
        for entry in entries:
            order = order_from_dict(entry["order"])
            unit = entry["unit"]
            reserved = Decimal(entry["reserved"])
            live = _Live(order, info, entry["asset"], reserved, None if unit is None else Decimal(unit))
            self._add(live)
            if order.type is OrderType.MARKET or order.time_in_force is not TimeInForce.GTC:
                reason = "the paper session ended before the order completed"
                self._finish(live, order.closed(OrderStatus.CANCELLED, reason, at=self.context.clock.now()))
        if entries:
            self.logger.info("%d paper orders taken up from the journal", len(entries))

    def open_order_entries(self) -> list[dict[str, Any]]:
        """This market's open orders as the account journals them."""
        return [
            {"market": self.context.market_name, "order": order_to_dict(live.order), "asset": live.asset,
             "reserved": live.reserved, "unit": live.unit}
            for live in self._open.values()
        ]

    async def get_ticker(self) -> Ticker:
        return await self.real.get_ticker()

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        return await self.real.get_recent_trades(limit)

    # ------------------------------------------------------------------ orders
    async def place_order(self, request: OrderRequest) -> Order:
        if self.latency:
            await self.context.clock.sleep(self.latency)
        info = self._info or await self.get_market_info()
        # from here on nothing awaits: the book cannot move under the order; the id is taken if it is recorded
        known = self._ids.get(request.client_order_id)
        if known is not None:
            return self._current(known)
        order_id = f"paper-{self.account.order_seq + 1}"
        order = Order.from_request(
            request, self.symbol, OrderStatus.PENDING, self.context.clock.now(), order_id=order_id
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
        if self.latency:
            await self.context.clock.sleep(self.latency)
        live = self._open.get(order.id) or self._open.get(self._ids.get(order.client_order_id, ""))
        if live is None:
            raise OrderNotFound(f"paper order {order.id or order.client_order_id} is not open")
        final = live.order.closed(OrderStatus.CANCELLED, "cancelled", at=self.context.clock.now())
        self._finish(live, final)
        self.account.flush()  # journaled before the caller hears of it
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
        """The account's balances (of every asset, as an exchange account's)."""
        return self._balances()

    def _current(self, order_id: str) -> Order:
        live = self._open.get(order_id)
        return live.order if live is not None else self._history[order_id]

    # ------------------------------------------------------------------ market events (from the tap)
    def on_book_changed(self) -> None:
        """Forget stale used liquidity; fill resting orders the book moved through."""
        if self._seeding:
            self._seed_base()
        book = self.events.book
        if self._consumed:
            stale = [key for key, (seen, _) in self._consumed.items() if book.quantity_at(*key) != seen]
            for key in stale:
                del self._consumed[key]
        if not self._open:
            return
        for live in self._crossed(book.best_ask, book.best_bid):
            price, remaining = live.order.price, live.order.remaining_quantity
            if price is None or not remaining:
                continue
            side = live.order.side
            takes, _ = self._walk(side.opposite, price, remaining)
            total = sum((q for _, q in takes), ZERO)
            if total:
                self._consume(side.opposite, takes)
                self._fill(live, price, total, is_maker=True)

    def on_trade(self, trade: Trade) -> None:
        """Fill resting orders a public trade printed at or through, up to the trade's quantity."""
        left = trade.quantity
        for live in self._crossed(trade.price, trade.price):
            price, remaining = live.order.price, live.order.remaining_quantity
            if price is None or not remaining:
                continue
            quantity = min(remaining, left)
            self._fill(live, price, quantity, is_maker=True)
            left -= quantity
            if not left:
                return

    def _crossed(self, ask: Decimal | None, bid: Decimal | None) -> list[_Live]:
        """The resting buys at `ask` or higher, then the resting sells at `bid` or lower, each best first
        then by time: the orders a book or print at those prices reaches (the others are not looked at)."""
        crossed: list[_Live] = []
        if ask is not None:
            for live in self._resting[Side.BUY]:
                if -live.rank[0] < ask:
                    break
                crossed.append(live)
        if bid is not None:
            for live in self._resting[Side.SELL]:
                if live.rank[0] > bid:
                    break
                crossed.append(live)
        return crossed

    def _add(self, live: _Live) -> None:
        """Record a new open order (ranked among the resting orders if it has a price)."""
        order = live.order
        self._open[order.id] = live
        self._ids[order.client_order_id] = order.id
        if order.price is not None:
            self._placed += 1
            live.rank = (-order.price if order.side is Side.BUY else order.price, self._placed)
            insort(self._resting[order.side], live, key=_rank)

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
        account = self.account
        free = account.free.get(asset, ZERO)
        if amount > free:
            raise InsufficientFunds(
                f"insufficient {asset}: the order needs {fmt_decimal(amount)}, {fmt_decimal(free)} is free"
            )
        live = _Live(order, info, asset, amount, unit)
        account.order_seq += 1
        self._add(live)
        if amount:
            account.free[asset] = free - amount
            account.locked[asset] = account.locked.get(asset, ZERO) + amount
            account.changed()
        else:
            account.touched()
        # journaled (with what is queued) before the order is acknowledged; its fills follow later
        account.flush()
        return live

    def _fill(self, live: _Live, price: Decimal, quantity: Decimal, *, is_maker: bool) -> None:
        info = live.info
        cost = price * quantity
        fee = cost * (self.maker_fee_rate if is_maker else self.taker_fee_rate)
        account = self.account
        account.fill_seq += 1
        fill = Fill(
            f"paper-fill-{account.fill_seq}", price, quantity, fee, info.quote_asset, is_maker,
            timestamp=self.context.clock.now(),
        )
        live.order = live.order.with_fill(fill)
        release = min(live.reserved, cost + fee if live.unit is None else quantity * live.unit)
        live.reserved -= release
        free, locked = account.free, account.locked
        locked[live.asset] -= release
        base, quote = info.base_asset, info.quote_asset
        if live.order.side is Side.BUY:  # the reserve paid cost and fee; any excess is free again
            free[quote] += release - cost - fee
            free[base] = free.get(base, ZERO) + quantity
        else:  # the reserved base is gone
            free[quote] = free.get(quote, ZERO) + cost - fee
        account.changed()
        account.publish(self, live.order)
        if live.order.status is OrderStatus.FILLED:
            self._finish(live)

    def _finish(self, live: _Live, final: Order | None = None) -> None:
        """Close an open order (with `final` as its last state, if given) and release its funds."""
        if self._open.pop(live.order.id, None) is None:
            return
        if live.order.price is not None:
            resting = self._resting[live.order.side]
            del resting[bisect_left(resting, live.rank, key=_rank)]
        account = self.account
        if final is not None:
            live.order = final
            account.publish(self, final)
        if live.reserved:
            account.locked[live.asset] -= live.reserved
            account.free[live.asset] += live.reserved
            live.reserved = ZERO
            account.changed()
        account.touched()
        self._history[live.order.id] = live.order
        while len(self._history) > HISTORY_SIZE:
            old_id, old = self._history.popitem(last=False)
            if self._ids.get(old.client_order_id) == old_id:
                del self._ids[old.client_order_id]

    def _balances(self) -> dict[str, Balance]:
        return self.account.balances()
