"""LunoClient: one Luno market for Moonship, assembled from the venue toolkit, and the session every Luno
market of an engine shares (HTTP client, rate limits, the markets list, one user stream per set of
credentials), which the engine closes at stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import Field

from moonship_core import (
    ZERO,
    Balance,
    Ban,
    ClientContext,
    Clock,
    ConfigError,
    DuplicateClientOrderId,
    Features,
    Fill,
    FrameParser,
    MarketClient,
    MarketClosed,
    MarketEvents,
    MarketInfo,
    MarketStatus,
    NetworkError,
    Order,
    OrderLevelBook,
    OrderNotFound,
    OrderRequest,
    OrderStatus,
    OrderStatusUnknown,
    OrderType,
    RateLimited,
    RateLimits,
    Side,
    Ticker,
    TimeInForce,
    Trade,
    VenueCounters,
    VenueSession,
    VenueSettings,
    from_ms,
    validate_model,
)

from . import constants as c
from .auth import Credentials, resolve
from .parse import LunoFill, LunoMarket, LunoOrder, dec
from .rest import LunoRest
from .stream import MarketStream, ReplayParser
from .user_stream import UserStream

_KEEP_FINAL = 1000  # final orders remembered, so late or replayed messages about them are recognised


class LunoSettings(VenueSettings):
    """`moonship.luno`: credentials (a market may override them with its own api_key/api_secret) and
    endpoints (scheme://host[:port]; the client appends the paths); the connection keys every venue shares
    come from VenueSettings."""

    renamed: ClassVar[dict[str, str]] = {
        "stale_timeout": "silence_timeout",
        "max_reconnect_delay": "reconnect_max_delay",
    }

    #: API key id for live trading (a market's `api_key` overrides it)
    api_key: str | None = None
    #: its secret
    api_secret: Annotated[str | None, Field(repr=False)] = None
    #: REST endpoint
    rest_url: str = c.REST_URL
    #: streaming endpoint
    ws_url: str = c.WS_URL
    #: how much of the user stream Luno replays after a reconnect; longer outages reconcile through REST
    replay_window: Annotated[float, Field(gt=0)] = c.REPLAY_WINDOW
    #: REST calls per minute per API key, for the whole engine
    rate_limit: Annotated[int, Field(gt=0)] = c.RATE_LIMIT
    #: seconds without any frame (message or keepalive) after which the user stream is reconnected
    user_silence_timeout: Annotated[float, Field(gt=0)] = c.USER_SILENCE_TIMEOUT


class LunoSession(VenueSession):
    """What every Luno market of one engine shares (per REST base URL); the engine closes it."""

    def __init__(
        self, settings: LunoSettings, clock: Clock, logger: logging.Logger, ban: Ban, counters: VenueCounters
    ) -> None:
        super().__init__(c.NAME, settings.rest_url, request_timeout=settings.request_timeout, clock=clock,
                         logger=logger)
        self.settings = settings
        self.limits = RateLimits(
            c.rate_table(settings.rate_limit),
            clock=clock,
            max_wait=settings.rate_limit_max_wait,
            ban=ban,
            on_wait=lambda _endpoint, _seconds: counters.rate_limit_waited(c.NAME),
            latency_margin=c.LATENCY_MARGIN,
        )
        #: the engine's metrics hear of every reconnect
        self.on_reconnect = lambda _reason: counters.reconnected(c.NAME)
        self.accounts: dict[str, str] = {}  # account id -> asset
        self._markets: list[LunoMarket] | None = None
        self._markets_lock = asyncio.Lock()

    def rest(self, credentials: Credentials | None) -> LunoRest:
        return LunoRest(self.http, credentials, self.limits, self.clock, self.logger)

    async def markets(self, rest: LunoRest, *, refresh: bool = False) -> list[LunoMarket]:
        """Every Luno market, loaded once for all clients."""
        async with self._markets_lock:
            if self._markets is None or refresh:
                self._markets = await rest.markets()
            return self._markets

    def user_stream(self, credentials: Credentials) -> UserStream:
        """The user stream of `credentials`, shared by their markets."""
        settings = self.settings
        return self.part(
            f"user stream {settings.ws_url} {credentials.key_id}",
            lambda: UserStream(
                settings.ws_url,
                credentials,
                logging.getLogger("moonship.luno.user_stream"),
                replay_window=settings.replay_window,
                silence_timeout=settings.user_silence_timeout,
                open_timeout=settings.request_timeout,
                ping_interval=settings.ping_interval,
                pong_timeout=settings.pong_timeout,
                reconnect_max_delay=settings.reconnect_max_delay,
                on_reconnect=self.on_reconnect,
                clock=self.clock,
            ),
        )


@dataclass(slots=True)
class _Tracked:
    """Our knowledge of one order: what was asked, and Luno's cumulative figures so far."""

    client_order_id: str
    side: Side
    type: OrderType
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    order_id: str = ""
    luno_status: str = "PENDING"
    base: Decimal = ZERO
    counter: Decimal = ZERO
    fee_base: Decimal = ZERO
    fee_counter: Decimal = ZERO
    fills: list[Fill] = field(default_factory=list)
    created: int = 0  # ms
    #: the final status, once known
    final: OrderStatus | None = None
    #: a REST look-up of its final state is under way
    confirming: bool = False


class LunoClient(MarketClient):
    """A Luno market: order-level book over the market stream, orders over REST, updates from the user
    stream, reconciliation through REST when the user stream may have missed something."""

    name = c.NAME
    settings_model = LunoSettings
    #: Luno takes limit orders (GTC, IOC, FOK, post-only) and market orders as POST /api/1/marketorder
    #: documents them (luno-go `PostMarketOrderRequest`): a BUY by what it spends (`counter_volume`), a SELL
    #: by what it sells (`base_volume`); no margin
    features = Features(margin=False, base_quantity_market_buy=False, quote_quantity_market_sell=False)

    def __init__(self, context: ClientContext, events: MarketEvents) -> None:
        super().__init__(context, events)
        settings = context.settings
        if not isinstance(settings, LunoSettings):
            settings = validate_model(LunoSettings, settings or {}, f"moonship.{c.NAME}")
        self.settings = settings
        self.pair = context.symbol
        self.credentials: Credentials | None = resolve(settings, context.config.extra)
        ban: Ban = context.shared.setdefault(f"{c.NAME}.ban", Ban())
        self.session = context.session(
            f"{c.NAME} {settings.rest_url}",
            lambda: LunoSession(settings, context.clock, self.logger, ban, context.counters),
        )
        self.rest = self.session.rest(self.credentials)
        self.market: LunoMarket | None = None
        #: Luno's trading status (ACTIVE, POST_ONLY/POSTONLY, SUSPENDED/DISABLED), from REST and the stream
        self.trading_status = "UNKNOWN"
        self.stream: MarketStream | None = None
        self.user_stream: UserStream | None = None
        self._orders: dict[str, _Tracked] = {}  # client order id (or "#" + order id) -> order
        self._by_id: dict[str, _Tracked] = {}  # Luno order id -> order
        self._final: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconciling: asyncio.Task[None] | None = None
        self._reconcile_again = False
        self._balances_task: asyncio.Task[None] | None = None
        self._connected = False

    @classmethod
    def replay_parser(cls, context: ClientContext, events: MarketEvents, info: MarketInfo) -> FrameParser:
        return ReplayParser(context.symbol, events, context.logger.getChild("replay"), info.tick_size)

    # ------------------------------------------------------------------ lifecycle
    @property
    def order_level_book(self) -> OrderLevelBook | None:
        """Luno's individual orders (the market's L2 book is their aggregate); None before connect."""
        return None if self.stream is None else self.stream.orders

    async def connect(self) -> None:
        if self._connected:
            return
        if self.credentials is None:
            raise ConfigError(
                f"moonship.luno.api_key/api_secret (or moonship.markets.{self.context.market_name}.api_key/"
                "api_secret) are required: Luno's streams need credentials"
            )
        info = await self.get_market_info() if self.market is None else self.market.info()
        self._connected = True
        settings = self.settings
        self.stream = MarketStream(
            settings.ws_url, self.pair, self.credentials, self.events, self.logger,
            tick=info.tick_size, on_status=self._on_stream_status, book_top=self.rest.book_top,
            silence_timeout=settings.silence_timeout, open_timeout=settings.request_timeout,
            ping_interval=settings.ping_interval, pong_timeout=settings.pong_timeout,
            reconnect_max_delay=settings.reconnect_max_delay, on_reconnect=self.session.on_reconnect,
            clock=self.context.clock, recorder=self.context.recorder,
        )
        self.stream.start()
        if self.context.market_data_only:
            return
        self.user_stream = self.session.user_stream(self.credentials)
        self.user_stream.add(self)

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        if self.stream is not None:
            await self.stream.stop()
        if self.user_stream is not None:
            await self.user_stream.remove(self)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.events.status(MarketStatus.CLOSED, "closed")

    # ------------------------------------------------------------------ market data
    async def get_market_info(self) -> MarketInfo:
        markets = await self.session.markets(self.rest, refresh=self.market is not None)
        for market in markets:
            if market.market_id == self.pair:
                self.market = market
                self.trading_status = market.trading_status
                return market.info()
        raise ConfigError(
            f"moonship.markets.{self.context.market_name}.symbol: Luno has no market {self.pair!r}"
        )

    async def get_ticker(self) -> Ticker:
        return await self.rest.ticker(self.pair)

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        """The latest trades (Luno serves at most 100), oldest first."""
        trades = await self.rest.trades(self.pair)
        return trades[: max(limit, 0)][::-1]

    def _on_stream_status(self, status: str) -> None:
        self.trading_status = status

    # ------------------------------------------------------------------ orders
    async def place_order(self, request: OrderRequest) -> Order:
        self.features.check(request, "luno")
        status = self.trading_status
        if status not in ("ACTIVE", "POST_ONLY", "POSTONLY"):
            raise MarketClosed(f"luno {self.pair}: market is {status}, no orders accepted")
        if status != "ACTIVE" and not request.post_only:
            raise MarketClosed(f"luno {self.pair}: market accepts only post-only orders")
        coid = request.client_order_id
        tracked = self._orders.get(coid)
        fresh = tracked is None  # not an earlier request's retry, whose outcome may be in doubt
        if tracked is None:
            tracked = self._orders[coid] = _Tracked(
                coid, request.side, request.type, request.quantity, request.quote_quantity, request.price,
                request.time_in_force, request.post_only, created=self._now_ms(),
            )
        attempts = 1 + c.ORDER_RETRIES
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                order_id = await self._send(request)
            except DuplicateClientOrderId:
                # an earlier attempt went through: find that order, never place it twice
                return await self.get_order(self._order(tracked))
            except NetworkError as exc:  # 5xx, timeout, transport: the order may exist
                if isinstance(exc, RateLimited) and last is None and fresh:
                    # Luno answers 429 to calls over its rate limit (API docs, "Rate Limiting"; luno-api-node:
                    # such calls are "failed/unprocessed"): with no earlier attempt in doubt, no order exists
                    self._orders.pop(coid, None)
                    raise
                last = exc
                self.logger.warning(
                    "luno order %s: %s (attempt %d of %d)", coid, exc, attempt + 1, attempts
                )
                if attempt + 1 < attempts:
                    await self.context.clock.sleep(0.2 * (attempt + 1))
                continue
            except BaseException:
                if not tracked.order_id:
                    self._orders.pop(coid, None)
                raise
            self._bind(tracked, order_id)
            return self._order(tracked)
        raise OrderStatusUnknown(f"luno order {coid} not confirmed: {last}", client_order_id=coid) from last

    async def _send(self, request: OrderRequest) -> str:
        if request.type is OrderType.LIMIT:
            assert request.quantity is not None and request.price is not None  # OrderRequest guarantees it
            return await self.rest.post_limit(
                self.pair, request.side, request.quantity, request.price, post_only=request.post_only,
                time_in_force=request.time_in_force.value, client_order_id=request.client_order_id,
            )
        if request.side is Side.BUY:  # `features` keeps the other sizings from here
            return await self.rest.post_market(
                self.pair, request.side, counter_volume=request.quote_quantity,
                client_order_id=request.client_order_id,
            )
        return await self.rest.post_market(
            self.pair, request.side, base_volume=request.quantity, client_order_id=request.client_order_id
        )

    async def cancel_order(self, order: Order) -> Order:
        order_id = order.id or (await self.get_order(order)).id
        with contextlib.suppress(OrderNotFound):  # already complete, or unknown: the look-up tells which
            await self.rest.stop_order(order_id)
        return await self.get_order(order if order.id else _with_id(order, order_id))

    async def get_order(self, order: Order) -> Order:
        luno = await self.rest.order(order_id=order.id, client_order_id=order.client_order_id)
        if self._lookup(luno.order_id, luno.client_order_id) is None and order.client_order_id and (
            order.client_order_id == luno.client_order_id
        ):
            # an order of an earlier process (taken up from the journal after a restart, or an unconfirmed
            # placement): start from the fills it knew, and add those made since trade by trade, with their
            # fees, from listtrades (GET /api/1/listtrades: our trades with order_id, sequence, fee_base
            # and fee_counter), not as one lump of the cumulative base/counter the order carries
            tracked = self._adopt(luno, order)
            if luno.base > tracked.base:
                await self._reconcile_trades([tracked])
        tracked = self._merge(luno, order)
        return self._order(tracked)

    def _adopt(self, luno: LunoOrder, known: Order) -> _Tracked:
        """Track `luno`, an order this process did not place, as far as `known` (the caller's copy) says it
        has filled."""
        base_asset, counter_asset = (self.market.base, self.market.counter) if self.market else ("", "")
        tracked = _Tracked(
            known.client_order_id, luno.side, known.type, known.quantity, known.quote_quantity, known.price,
            known.time_in_force, known.post_only,
            base=known.filled_quantity, counter=known.filled_quote_quantity,
            fee_base=sum((f.fee for f in known.fills if f.fee_asset == base_asset), ZERO),
            fee_counter=sum((f.fee for f in known.fills if f.fee_asset == counter_asset), ZERO),
            fills=list(known.fills), created=luno.created or self._now_ms(),
        )
        self._orders[tracked.client_order_id] = tracked
        self._bind(tracked, luno.order_id)
        return tracked

    async def get_open_orders(self) -> list[Order]:
        return [self._order(self._merge(o)) for o in await self.rest.list_orders(self.pair)]

    async def get_balances(self) -> dict[str, Balance]:
        balances: dict[str, Balance] = {}
        for b in await self.rest.balances():
            self.session.accounts[b.account_id] = b.asset
            free, locked = b.available, b.reserved
            if b.asset in balances:  # several accounts of one asset add up
                free += balances[b.asset].free
                locked += balances[b.asset].locked
            balances[b.asset] = Balance(b.asset, free, locked)
        return balances

    # ------------------------------------------------------------------ order state
    def _bind(self, tracked: _Tracked, order_id: str) -> None:
        if not tracked.order_id:
            tracked.order_id = order_id
            self._by_id[order_id] = tracked

    def _lookup(self, order_id: str, client_order_id: str) -> _Tracked | None:
        tracked = self._orders.get(client_order_id) if client_order_id else None
        if tracked is None:
            tracked = self._by_id.get(order_id)
        if tracked is not None and order_id:
            self._bind(tracked, order_id)
        return tracked

    def _merge(self, luno: LunoOrder, known: Order | None = None) -> _Tracked:
        """Fold Luno's view of an order into ours (creating it if new) and publish any change."""
        tracked = self._lookup(luno.order_id, luno.client_order_id)
        if tracked is None:
            market_order = luno.type == "MARKET"
            tracked = _Tracked(
                luno.client_order_id or (known.client_order_id if known else ""), luno.side,
                OrderType.MARKET if market_order else OrderType.LIMIT,
                None if market_order else luno.limit_volume,
                price=None if market_order else luno.limit_price,
                time_in_force=TimeInForce(luno.time_in_force) if luno.time_in_force in TimeInForce.__members__
                else TimeInForce.GTC,
            )
            tracked.created = self._now_ms()
            if known is not None and known.client_order_id == tracked.client_order_id:
                tracked.quantity, tracked.quote_quantity = known.quantity, known.quote_quantity
                tracked.post_only = known.post_only
            self._orders[tracked.client_order_id or "#" + luno.order_id] = tracked
            self._bind(tracked, luno.order_id)
        tracked.created = luno.created or tracked.created
        changed = self._advance(
            tracked, luno.base, luno.counter, luno.fee_base, luno.fee_counter, luno.completed or luno.created
        )
        changed = self._set_status(tracked, luno.status, confirmed=True) or changed
        if changed:
            self._publish(tracked)
        return tracked

    def _advance(
        self,
        tracked: _Tracked,
        base: Decimal,
        counter: Decimal,
        fee_base: Decimal,
        fee_counter: Decimal,
        when_ms: int,
        trade_id: str = "",
        is_maker: bool | None = None,
    ) -> bool:
        """Record the fill that takes the order's cumulative figures to these; False if not ahead."""
        if base <= tracked.base:
            return False
        qty = base - tracked.base
        quote = counter - tracked.counter
        fee_b, fee_c = fee_base - tracked.fee_base, fee_counter - tracked.fee_counter
        info = self.market
        base_asset, counter_asset = (info.base, info.counter) if info else ("", "")
        if fee_b > 0 and (fee_c <= 0 or tracked.side is Side.BUY):
            fee, fee_asset = fee_b, base_asset
        elif fee_c > 0:
            fee, fee_asset = fee_c, counter_asset
        else:
            fee, fee_asset = ZERO, ""
        tracked.fills.append(
            Fill(
                trade_id or f"{tracked.order_id}:{base}",
                quote / qty,
                qty,
                fee,
                fee_asset,
                tracked.post_only if is_maker is None else is_maker,
                timestamp=from_ms(when_ms) if when_ms else self.context.clock.now(),
            )
        )
        tracked.base, tracked.counter = base, counter
        tracked.fee_base = max(fee_base, tracked.fee_base)
        tracked.fee_counter = max(fee_counter, tracked.fee_counter)
        return True

    def _set_status(self, tracked: _Tracked, luno_status: str, *, confirmed: bool) -> bool:
        """Apply Luno's status; COMPLETE short of a full fill is final only when `confirmed` by REST
        (the user stream may still owe fills). Returns whether anything changed."""
        if tracked.final is not None:
            return False
        if luno_status != "COMPLETE":
            changed = tracked.luno_status != luno_status
            tracked.luno_status = luno_status
            return changed
        if self._fully_filled(tracked):
            tracked.final = OrderStatus.FILLED
        elif confirmed:
            tracked.final = (
                OrderStatus.CANCELLED_AND_PARTIALLY_FILLED if tracked.base > 0 else OrderStatus.CANCELLED
            )
        else:
            if not tracked.confirming:
                tracked.confirming = True
                self._spawn(self._confirm(tracked))
            return False
        tracked.luno_status = luno_status
        self._final[tracked.client_order_id or "#" + tracked.order_id] = None
        while len(self._final) > _KEEP_FINAL:
            key, _ = self._final.popitem(last=False)
            old = self._orders.pop(key, None)
            if old is not None:
                self._by_id.pop(old.order_id, None)
        return True

    def _fully_filled(self, tracked: _Tracked) -> bool:
        if tracked.quantity is not None:
            return tracked.base >= tracked.quantity
        if tracked.quote_quantity is not None:  # bought for a quote amount: done when less than a lot is left
            lot = self.market.info().lot_size if self.market else ZERO
            price = tracked.counter / tracked.base if tracked.base else ZERO
            return tracked.base > 0 and tracked.quote_quantity - tracked.counter < price * lot
        return tracked.base > 0

    async def _confirm(self, tracked: _Tracked) -> None:
        try:
            luno = await self.rest.order(order_id=tracked.order_id, client_order_id=tracked.client_order_id)
        except Exception as exc:
            self.logger.warning("luno order %s: status not confirmed: %s", tracked.client_order_id, exc)
            self.reconcile_soon("order status not confirmed")
            return
        finally:
            tracked.confirming = False
        self._merge(luno)

    def _order(self, tracked: _Tracked) -> Order:
        if tracked.final is not None:
            status = tracked.final
        elif tracked.base > 0:
            status = OrderStatus.PARTIALLY_FILLED
        else:
            status = OrderStatus.PENDING
        fills = tuple(tracked.fills)
        return Order(
            id=tracked.order_id,
            client_order_id=tracked.client_order_id,
            symbol=self.pair,
            side=tracked.side,
            type=tracked.type,
            status=status,
            quantity=tracked.quantity,
            quote_quantity=tracked.quote_quantity,
            price=tracked.price,
            time_in_force=tracked.time_in_force,
            post_only=tracked.post_only,
            filled_quantity=tracked.base,
            filled_quote_quantity=tracked.counter,
            fills=fills,
            created=from_ms(tracked.created),
            updated=self.context.clock.now(),
        )

    def _publish(self, tracked: _Tracked) -> None:
        if tracked.client_order_id:
            self.events.order_update(self._order(tracked))

    # ------------------------------------------------------------------ user stream (UserListener)
    def on_order_status(self, update: dict[str, Any]) -> None:
        tracked = self._lookup(str(update.get("order_id") or ""), str(update.get("client_order_id") or ""))
        if tracked is not None and self._set_status(tracked, str(update.get("status")), confirmed=False):
            self._publish(tracked)

    def on_order_fill(self, update: dict[str, Any]) -> None:
        tracked = self._lookup(str(update.get("order_id") or ""), str(update.get("client_order_id") or ""))
        if tracked is None:
            return
        if self._advance(
            tracked, dec(update.get("base_fill")), dec(update.get("counter_fill")),
            dec(update.get("base_fee")), dec(update.get("counter_fee")), self._now_ms(),
        ):
            if tracked.luno_status == "COMPLETE" and tracked.final is None and self._fully_filled(tracked):
                self._set_status(tracked, "COMPLETE", confirmed=False)
            self._publish(tracked)

    def on_balance(self, update: dict[str, Any]) -> None:
        asset = self.session.accounts.get(str(update.get("account_id")))
        if asset is None:
            if self._balances_task is None or self._balances_task.done():
                self._balances_task = self._spawn(self._refresh_balances())
            return
        if self.market is not None and asset not in (self.market.base, self.market.counter):
            return
        balance, available = dec(update.get("balance")), dec(update.get("available"))
        self.events.balances([Balance(asset, available, balance - available)])

    def reconcile_soon(self, reason: str) -> None:
        if self._reconciling is not None and not self._reconciling.done():
            self._reconcile_again = True
            return
        self.logger.info("luno %s: reconciling orders and fills through REST (%s)", self.pair, reason)
        self._reconciling = self._spawn(self._reconcile())

    async def _refresh_balances(self) -> None:
        balances = await self.get_balances()
        market = self.market
        if market is not None:
            self.events.balances([b for a, b in balances.items() if a in (market.base, market.counter)])

    async def _reconcile(self) -> None:
        """Catch up with Luno: open orders, then our trades, then the final state of orders that closed."""
        while True:
            self._reconcile_again = False
            try:
                await self._reconcile_once()
            except Exception as exc:
                self.logger.warning("luno %s: reconciliation failed: %s; retrying", self.pair, exc)
                await self.context.clock.sleep(1.0)
                self._reconcile_again = True
            if not self._reconcile_again:
                return

    async def _reconcile_once(self) -> None:
        open_orders = {o.order_id: o for o in await self.rest.list_orders(self.pair)}
        for luno in open_orders.values():
            if self._lookup(luno.order_id, luno.client_order_id) is None:
                self._merge(_unfilled(luno))  # track it; its fills come from the trades below
        live = [t for t in self._orders.values() if t.final is None and t.order_id]
        states = dict(open_orders)
        for tracked in live:  # orders that closed meanwhile
            if tracked.order_id not in states:
                states[tracked.order_id] = await self.rest.order(order_id=tracked.order_id)
        if live:  # read after the orders, so the trades cover at least what their figures say
            await self._reconcile_trades(live)
        for tracked in live:
            self._merge(states[tracked.order_id])
        await self._refresh_balances()

    @property
    def reconciling(self) -> bool:
        """A reconciliation through REST is under way."""
        return self._reconciling is not None and not self._reconciling.done()

    async def _reconcile_trades(self, live: list[_Tracked]) -> None:
        """Add, trade by trade, the fills of `live` orders that we have not seen."""
        since = min(t.created for t in live) - 1000 if all(t.created for t in live) else None
        by_order: dict[str, list[LunoFill]] = {}
        after: int | None = None
        for _ in range(c.LIST_TRADES_PAGES):
            page = await self.rest.list_trades(self.pair, since=since, after_seq=after)
            for fill in page:
                by_order.setdefault(fill.order_id, []).append(fill)
            if len(page) < c.LIST_TRADES_PAGE:
                break
            after = page[-1].sequence
        for tracked in live:
            base = counter = fee_base = fee_counter = ZERO
            changed = False
            for fill in sorted(by_order.get(tracked.order_id, ()), key=lambda f: f.sequence):
                base, counter = base + fill.base, counter + fill.counter
                fee_base, fee_counter = fee_base + fill.fee_base, fee_counter + fill.fee_counter
                if base > tracked.base:
                    changed = self._advance(
                        tracked, base, counter, fee_base, fee_counter, fill.timestamp, str(fill.sequence),
                        fill.is_maker,
                    ) or changed
            if changed:
                self._publish(tracked)

    def _now_ms(self) -> int:
        now = self.context.clock.now()
        return int(now.timestamp()) * 1000 + now.microsecond // 1000

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _unfilled(luno: LunoOrder) -> LunoOrder:
    """An order as if nothing had filled yet (its fills are then added trade by trade)."""
    return replace(luno, base=ZERO, counter=ZERO, fee_base=ZERO, fee_counter=ZERO, status="PENDING")


def _with_id(order: Order, order_id: str) -> Order:
    return replace(order, id=order_id)
