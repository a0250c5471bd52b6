"""BinanceClient: the MarketClient for Binance spot, assembled from the venue toolkit, and the session its
markets share in an engine (REST client, rate limits, server clock, one market-data websocket, one user stream
per API key), which the engine closes at stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from moonship_core import (
    ZERO,
    AuthenticationError,
    Balance,
    Ban,
    ClientContext,
    Clock,
    ConfigError,
    DuplicateClientOrderId,
    Features,
    Fill,
    FrameParser,
    InvalidOrder,
    MarketClient,
    MarketEvents,
    MarketInfo,
    MarketStatus,
    Order,
    OrderNotFound,
    OrderRequest,
    OrderStatus,
    OrderStatusUnknown,
    OrderType,
    RateLimits,
    Ticker,
    Trade,
    VenueCounters,
    VenueSession,
    VenueSettings,
    fmt_decimal,
    round_to_step,
    validate_model,
)

from . import constants as c
from .auth import Credentials
from .parse import SymbolRules, order_from_report, parse_order, response_fills
from .rest import BinanceRest
from .stream import BookFeed, MarketStream, ReplayParser
from .user_stream import UserStream

_KEEP_FINAL = 1000  # finished orders remembered for late events and idempotent retries


class BinanceSettings(VenueSettings):
    """`moonship.binance` (the connection keys every venue shares come from VenueSettings)."""

    renamed: ClassVar[dict[str, str]] = {
        "stale_after": "silence_timeout",
        "max_reconnect_delay": "reconnect_max_delay",
    }

    #: Binance API key for trading (e.g. `$BINANCE_API_KEY`); none: market data only
    api_key: str | None = None
    #: the API key's secret (HMAC-SHA256 signing); never logged
    api_secret: SecretStr | None = None
    #: Binance's spot testnet for every URL not given explicitly
    testnet: bool = False
    #: scheme://host[:port]; the client appends /api/v3/...
    rest_url: str | None = None
    #: market streams base; the client appends /stream?streams=...
    ws_url: str | None = None
    #: the full WebSocket API URL
    ws_api_url: str | None = None
    #: milliseconds a signed request stays valid after its timestamp (Binance `recvWindow`)
    recv_window: int = Field(5000, gt=0, le=60000)
    #: levels in the book snapshot (weight 5/25/50/250 up to 100/500/1000/5000)
    depth_limit: int = Field(1000, ge=5, le=5000)
    #: diff-depth stream update speed
    depth_speed: Literal["100ms", "1000ms"] = "100ms"
    #: reconnect every connection after this many seconds, ahead of Binance's 24-hour cut
    reconnect_after: float = Field(23.5 * 3600, gt=0)
    #: cross-margin orders' sideEffectType (enable_margin markets)
    margin_side_effect: Literal["NO_SIDE_EFFECT", "MARGIN_BUY", "AUTO_REPAY", "AUTO_BORROW_REPAY"] = (
        "NO_SIDE_EFFECT"
    )
    #: seconds between REST polls of open cross-margin orders (the user stream covers spot only)
    margin_poll_interval: float = Field(2.0, gt=0)

    def urls(self) -> tuple[str, str, str]:
        """(rest_url, ws_url, ws_api_url) with production or testnet defaults."""
        if self.testnet:
            defaults = (c.TESTNET_REST_URL, c.TESTNET_WS_URL, c.TESTNET_WS_API_URL)
        else:
            defaults = (c.REST_URL, c.WS_URL, c.WS_API_URL)
        given = (self.rest_url, self.ws_url, self.ws_api_url)
        rest, ws, api = (g or d for g, d in zip(given, defaults, strict=True))
        return rest, ws, api


class BinanceSession(VenueSession):
    """Everything the Binance markets of one engine share (per REST base URL); the engine closes it."""

    def __init__(
        self,
        settings: BinanceSettings,
        clock: Clock,
        logger: logging.Logger,
        ban: Ban,
        counters: VenueCounters,
    ) -> None:
        rest_url, ws_url, self.ws_api_url = settings.urls()
        super().__init__(
            c.NAME, rest_url, request_timeout=settings.request_timeout, clock=clock, logger=logger
        )
        self.settings = settings
        self.limits = RateLimits(
            c.RATE_TABLE,
            clock=clock,
            max_wait=settings.rate_limit_max_wait,
            ban=ban,
            on_wait=lambda _endpoint, _seconds: counters.rate_limit_waited(c.NAME),
            latency_margin=c.LATENCY_MARGIN,
        )
        #: the engine's metrics hear of every reconnect
        self.on_reconnect = lambda _reason: counters.reconnected(c.NAME)
        self.rest = BinanceRest(
            self.http, recv_window=settings.recv_window, limits=self.limits, clock=clock, logger=logger
        )
        self.stream = self.part(
            "market stream",
            lambda: MarketStream(
                ws_url,
                reconnect_after=settings.reconnect_after,
                reconnect_max_delay=settings.reconnect_max_delay,
                open_timeout=settings.request_timeout,
                ping_interval=settings.ping_interval,
                pong_timeout=settings.pong_timeout,
                on_reconnect=self.on_reconnect,
                logger=logger,
                clock=clock,
            ),
        )
        self.user_streams: dict[str, UserStream] = {}
        self._rules: dict[str, SymbolRules] = {}
        self._rules_lock = asyncio.Lock()

    async def rules(self, symbol: str) -> SymbolRules:
        async with self._rules_lock:
            rules = self._rules.get(symbol)
            if rules is None:
                rules = self._rules[symbol] = await self.rest.exchange_info(symbol)
            return rules

    def user_stream(self, creds: Credentials) -> UserStream:
        settings = self.settings
        stream = self.part(
            f"user stream {creds.api_key}",
            lambda: UserStream(
                self.ws_api_url,
                creds,
                self.rest.server_time,
                reconnect_after=settings.reconnect_after,
                reconnect_max_delay=settings.reconnect_max_delay,
                open_timeout=settings.request_timeout,
                ping_interval=settings.ping_interval,
                pong_timeout=settings.pong_timeout,
                on_reconnect=self.on_reconnect,
                logger=self.logger,
                clock=self.clock,
            ),
        )
        self.user_streams[creds.api_key] = stream
        return stream


class BinanceClient(MarketClient):
    """One Binance spot market (or cross-margin, with `enable_margin`)."""

    name = c.NAME
    settings_model = BinanceSettings
    features = Features(l3_book=False)

    def __init__(self, context: ClientContext, events: MarketEvents) -> None:
        super().__init__(context, events)
        raw = context.settings
        if not isinstance(raw, BinanceSettings):
            raw = validate_model(BinanceSettings, raw or {}, f"moonship.{c.NAME}")
        self.settings = raw
        self.creds = _credentials(context, self.settings)
        self.margin = context.config.enable_margin
        ban: Ban = context.shared.setdefault(f"{c.NAME}.ban", Ban())
        settings = self.settings
        self.session = context.session(
            f"{c.NAME} {settings.urls()[0]}",
            lambda: BinanceSession(settings, context.clock, self.logger, ban, context.counters),
        )
        self.feed = BookFeed(
            self.symbol,
            events,
            self._depth,
            depth_limit=settings.depth_limit,
            speed=settings.depth_speed,
            silence_timeout=settings.silence_timeout,
            synced_status=self._synced_status,
            logger=self.logger,
            clock=context.clock,
            recorder=context.recorder,
        )
        self._rules: SymbolRules | None = None
        self._orders: OrderedDict[str, Order] = OrderedDict()  # client order id -> latest merged state
        self._connected = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def replay_parser(cls, context: ClientContext, events: MarketEvents, info: MarketInfo) -> FrameParser:
        return ReplayParser(context.symbol, events, context.logger.getChild("replay"), context.clock)

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        if self._connected:
            return
        self._connected = True
        await self.session.stream.add(self.feed)
        if self.creds is None or self.context.market_data_only:
            return
        if not self.margin:
            self.session.user_stream(self.creds).add(self)
        else:
            self._spawn(self._poll_margin_orders())

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.session.stream.remove(self.feed)
        if self.creds is not None and self.creds.api_key in self.session.user_streams:
            await self.session.user_streams[self.creds.api_key].remove(self)
        self.events.status(MarketStatus.CLOSED, "closed")

    # ------------------------------------------------------------------ market data
    async def get_market_info(self) -> MarketInfo:
        self._rules = await self.session.rules(self.symbol)
        return self._rules.info

    async def get_ticker(self) -> Ticker:
        book, last = await asyncio.gather(
            self.session.rest.book_ticker(self.symbol), self.session.rest.last_price(self.symbol)
        )
        bid, ask = Decimal(book["bidPrice"]), Decimal(book["askPrice"])
        return Ticker(self.symbol, bid or None, ask or None, last or None, self.context.clock.now())

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        return await self.session.rest.trades(self.symbol, max(1, min(limit, 1000)))

    async def _depth(self, symbol: str, limit: int) -> dict[str, Any]:
        return await self.session.rest.depth(symbol, limit)

    def _synced_status(self) -> MarketStatus:
        return self._rules.info.status if self._rules is not None else MarketStatus.OPEN

    # ------------------------------------------------------------------ orders
    def _require_creds(self) -> Credentials:
        if self.creds is None:
            raise AuthenticationError(
                f"Binance market {self.context.market_name}: orders need moonship.binance.api_key and "
                "api_secret"
            )
        return self.creds

    async def place_order(self, request: OrderRequest) -> Order:
        creds = self._require_creds()
        coid = request.client_order_id
        known = self._orders.get(coid)
        if known is not None:  # sent before: never send the same client order id twice
            return await self.get_order(known)
        params = await self._order_params(request)
        self._orders[coid] = self._pending(request)
        try:
            body = await self.session.rest.new_order(creds, params, coid, margin=self.margin)
        except DuplicateClientOrderId:
            return await self.get_order(self._orders[coid])
        except OrderStatusUnknown:
            raise  # still tracked: the market and the next reconcile find out what happened
        except BaseException:
            self._orders.pop(coid, None)
            raise
        return self._merge(parse_order(body, response_fills(body)))

    async def _order_params(self, request: OrderRequest) -> list[tuple[str, str]]:
        params = [("symbol", self.symbol), ("side", request.side.value)]
        if request.type is OrderType.LIMIT:
            assert request.quantity is not None and request.price is not None
            if request.post_only:
                params.append(("type", "LIMIT_MAKER"))
            else:
                params += [("type", "LIMIT"), ("timeInForce", request.time_in_force.value)]
            params += [("quantity", fmt_decimal(request.quantity)), ("price", fmt_decimal(request.price))]
        elif request.quantity is not None:
            params += [
                ("type", "MARKET"),
                ("quantity", fmt_decimal(await self._market_quantity(request.quantity))),
            ]
        else:
            assert request.quote_quantity is not None
            params += [("type", "MARKET"), ("quoteOrderQty", fmt_decimal(request.quote_quantity))]
        params += [("newClientOrderId", request.client_order_id), ("newOrderRespType", "FULL")]
        if self.margin:
            params += [("isIsolated", "FALSE"), ("sideEffectType", self.settings.margin_side_effect)]
        return params

    async def _market_quantity(self, quantity: Decimal) -> Decimal:
        """A market order's quantity on MARKET_LOT_SIZE's step, inside its bounds."""
        rules = self._rules or await self.session.rules(self.symbol)
        step, low, high = rules.market_lot
        if step > 0:
            quantity = round_to_step(quantity, step)
        if quantity <= 0 or quantity < low or (high > 0 and quantity > high):
            raise InvalidOrder(
                f"Binance {self.symbol}: market quantity {quantity} outside MARKET_LOT_SIZE [{low}, {high}]",
                rule="market_lot_size",
            )
        return quantity

    def _pending(self, request: OrderRequest) -> Order:
        return Order.from_request(request, self.symbol, OrderStatus.UNKNOWN, self.context.clock.now())

    def _ref(self, order: Order) -> list[tuple[str, str]]:
        return [("orderId", order.id)] if order.id else [("origClientOrderId", order.client_order_id)]

    async def cancel_order(self, order: Order) -> Order:
        creds = self._require_creds()
        try:
            body = await self.session.rest.cancel_order(
                creds, self.symbol, self._ref(order), order.client_order_id, margin=self.margin
            )
        except OrderNotFound:  # already closed (or never existed): report what the exchange knows
            return await self.get_order(order)
        return self._merge(parse_order(body, self._known_fills(order.client_order_id)))

    async def get_order(self, order: Order) -> Order:
        creds = self._require_creds()
        body = await self.session.rest.query_order(creds, self.symbol, self._ref(order), margin=self.margin)
        return await self._complete(parse_order(body, self._known_fills(body["clientOrderId"])))

    async def get_open_orders(self) -> list[Order]:
        creds = self._require_creds()
        rows = await self.session.rest.open_orders(creds, self.symbol, margin=self.margin)
        return [await self._complete(parse_order(r, self._known_fills(r["clientOrderId"]))) for r in rows]

    async def get_balances(self) -> dict[str, Balance]:
        rows = await self.session.rest.balances(self._require_creds(), margin=self.margin)
        return {asset: Balance(asset, free, locked) for asset, free, locked in rows}

    async def _complete(self, order: Order) -> Order:
        """`order` with every fill: myTrades fills in what the stream has not told us."""
        if order.filled_quantity > sum((f.quantity for f in order.fills), ZERO):
            fills = await self.session.rest.my_trades(
                self._require_creds(), self.symbol, order.id, margin=self.margin
            )
            order = replace(order, fills=_union(order.fills, fills))
        return self._merge(order)

    def _known_fills(self, coid: str) -> tuple[Fill, ...]:
        known = self._orders.get(coid)
        return known.fills if known is not None else ()

    def _merge(self, new: Order) -> Order:
        """Combine what we knew of an order with `new` (stream events and REST answers race each other)."""
        coid = new.client_order_id
        old = self._orders.get(coid)
        merged = new if old is None else _merge(old, new)
        self._orders[coid] = merged
        self._orders.move_to_end(coid)
        if len(self._orders) > _KEEP_FINAL:
            for key in [k for k, o in self._orders.items() if o.status.is_final][
                : len(self._orders) - _KEEP_FINAL
            ]:
                del self._orders[key]
        return merged

    # ------------------------------------------------------------------ user stream (UserListener)
    def on_execution_report(self, event: dict[str, Any]) -> None:
        self.events.order_update(self._merge(order_from_report(event)))

    def on_account_position(self, event: dict[str, Any]) -> None:
        self.events.balances([Balance(b["a"], Decimal(b["f"]), Decimal(b["l"])) for b in event["B"]])

    async def reconcile(self) -> None:
        """Catch up after a (re)connect: open orders, every order we still thought open, fills, balances."""
        creds = self._require_creds()
        tracked = [o for o in self._orders.values() if not o.status.is_final]
        rows = await self.session.rest.open_orders(creds, self.symbol, margin=self.margin)
        seen = set()
        for row in rows:
            order = await self._complete(parse_order(row, self._known_fills(row["clientOrderId"])))
            seen.add(order.client_order_id)
            self.events.order_update(order)
        for order in tracked:
            if order.client_order_id in seen:
                continue
            try:
                self.events.order_update(await self.get_order(order))
            except OrderNotFound:
                if order.status is OrderStatus.UNKNOWN:  # never reached the exchange
                    rejected = order.closed(
                        OrderStatus.REJECTED, "not received by Binance", at=self.context.clock.now()
                    )
                    self.events.order_update(rejected)
                    self._orders.pop(order.client_order_id, None)
        self.events.balances(list((await self.get_balances()).values()))
        self.logger.info("%s reconciled: %d open orders", self.symbol, len(rows))

    async def _poll_margin_orders(self) -> None:
        """Cross-margin orders have no user stream here: poll the ones we track while they are open."""
        while True:
            await asyncio.sleep(self.settings.margin_poll_interval)
            for order in [o for o in self._orders.values() if not o.status.is_final and o.id]:
                with contextlib.suppress(Exception):
                    self.events.order_update(await self.get_order(order))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _credentials(context: ClientContext, settings: BinanceSettings) -> Credentials | None:
    """The market's own api_key/api_secret if set, else the section's; None when there are none."""
    extra = context.config.extra
    key = extra.get("api_key", settings.api_key)
    secret: Any = extra.get("api_secret", settings.api_secret)
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    if not key and not secret:
        return None
    if not key or not secret:
        raise ConfigError(
            f"moonship.markets.{context.market_name}: Binance needs both api_key and api_secret (or neither)"
        )
    return Credentials(str(key), str(secret))


def _union(known: Sequence[Fill], more: Sequence[Fill]) -> tuple[Fill, ...]:
    by_id = {f.trade_id: f for f in known}
    for fill in more:
        by_id.setdefault(fill.trade_id, fill)
    return tuple(sorted(by_id.values(), key=lambda f: (f.timestamp, f.trade_id)))


def _merge(old: Order, new: Order) -> Order:
    fills = _union(old.fills, new.fills) if new.fills != old.fills else old.fills
    if old.status.is_final and not new.status.is_final:
        base = old
    elif new.status.is_final or new.filled_quantity >= old.filled_quantity:
        base = new
    else:
        base = old
    return replace(
        base,
        id=new.id or old.id,
        fills=fills,
        filled_quantity=max(old.filled_quantity, new.filled_quantity),
        filled_quote_quantity=max(old.filled_quote_quantity, new.filled_quote_quantity),
        created=min(old.created, new.created),
    )
