"""ValrClient: one VALR market. Every VALR market of an engine shares one ValrSession (a toolkit VenueSession
the engine owns and closes): one HTTP client, the rate limits, VALR's clock, one trade socket and one account
socket per account."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from moonship_core import (
    AuthenticationError,
    Balance,
    ClientContext,
    Clock,
    ConfigError,
    DuplicateClientOrderId,
    ExchangeError,
    FrameParser,
    InvalidOrder,
    MarketClient,
    MarketEvents,
    MarketInfo,
    MarketStatus,
    NetworkError,
    Order,
    OrderNotFound,
    OrderRequest,
    OrderStatus,
    OrderStatusUnknown,
    OrderType,
    RateLimits,
    ServerClock,
    Ticker,
    Trade,
    VenueCounters,
    VenueSession,
    VenueSettings,
    fmt_decimal,
    validate_model,
)

from . import constants as c
from .auth import Signer
from .parse import parse_balance, parse_market_info, parse_ticker, parse_trade
from .rest import ValrRest, check_client_order_id, error_for
from .stream import MarketFeed, ReplayParser, Timing, TradeStream
from .user_stream import AccountStream, order_from_status

_PAIRS_TTL = 60.0


def _base_url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"must be {' or '.join(schemes)}://host[:port] without a path")
    return f"{parts.scheme}://{parts.netloc}"


class ValrSettings(VenueSettings):
    """The `moonship.valr` section (VenueSettings' keys: request_timeout, silence_timeout,
    reconnect_max_delay, ping_interval, pong_timeout, rate_limit_max_wait)."""

    renamed: ClassVar[dict[str, str]] = {"stale_timeout": "silence_timeout"}

    #: API key for live trading (a market's `api_key` overrides it)
    api_key: str | None = None
    #: its secret
    api_secret: SecretStr | None = None
    #: VALR sub-account id every request is signed for (a market's `account` overrides it)
    sub_account_id: str | None = None
    #: scheme://host[:port]; the client appends /v1/..., /v2/...
    rest_url: str = c.REST_URL
    #: scheme://host[:port]; the client appends /ws/trade and /ws/account
    ws_url: str = c.WS_URL
    #: seconds between two PINGs on each socket (VALR drops sockets idle for 30 s)
    ping_interval: float = Field(20.0, gt=0, le=25)
    #: how long a final status may wait for its trades before they are fetched over REST
    fill_wait: float = Field(1.0, ge=0)
    #: how long cancel_order waits for the account socket to confirm before asking over REST
    cancel_wait: float = Field(2.0, ge=0)
    #: requests per minute per API key / to /v1/public/*
    rate_limit: int = Field(c.KEY_LIMIT_PER_MIN, gt=0)
    #: requests per minute to /v1/public/* (without a key)
    public_rate_limit: int = Field(c.PUBLIC_LIMIT_PER_MIN, gt=0)

    @field_validator("rest_url")
    @classmethod
    def _rest(cls, value: str) -> str:
        return _base_url(value, ("https", "http"))

    @field_validator("ws_url")
    @classmethod
    def _ws(cls, value: str) -> str:
        return _base_url(value, ("wss", "ws"))


class _MarketKeys(BaseModel):
    """The VALR keys a market may override (`moonship.markets.NAME.api_key`, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: str | None = None
    api_secret: SecretStr | None = None
    sub_account_id: str | None = None


class ValrSession(VenueSession):
    """What every VALR market of one engine shares (per REST base URL): the HTTP client, rate limits, VALR's
    clock, the pair metadata, the trade socket and one account socket per account; the engine closes it."""

    def __init__(
        self,
        settings: ValrSettings,
        logger: logging.Logger,
        clock: Clock | None = None,
        counters: VenueCounters | None = None,
    ) -> None:
        super().__init__(
            "valr", settings.rest_url, request_timeout=settings.request_timeout, clock=clock, logger=logger
        )
        self.settings = settings
        #: the engine's reconnect and rate-limit-wait counters
        self.counters = counters or VenueCounters()
        self.timing = Timing(
            settings.ping_interval,
            settings.pong_timeout,
            settings.request_timeout,
            settings.reconnect_max_delay,
            self.clock,
        )
        #: every request of the engine's VALR markets, per key and per IP
        self.limits = RateLimits(
            c.rate_table(settings.rate_limit, settings.public_rate_limit),
            clock=self.clock,
            max_wait=settings.rate_limit_max_wait,
            on_wait=lambda _endpoint, _seconds: self.counters.rate_limit_waited("valr"),
        )
        self._rests: dict[tuple[str, str], ValrRest] = {}
        self.trade: TradeStream | None = None
        #: VALR's clock: every signer of the engine stamps with it
        self.server_time = ServerClock(self._fetch_time, self.clock)
        self._pairs: tuple[float, str, dict[str, dict[str, Any]]] | None = None
        self._pairs_lock = asyncio.Lock()

    def rest(self, signer: Signer | None) -> ValrRest:
        key = (signer.api_key, signer.sub_account) if signer is not None else ("", "")
        rest = self._rests.get(key)
        if rest is None:
            rest = self._rests[key] = ValrRest(
                lambda: self.http, self.base_url, signer, self.limits, self.clock
            )
        return rest

    async def _fetch_time(self) -> int:
        server = await self.rest(None).server_time()
        self.logger.info("VALR clock read: %d ms", server)
        return server

    async def resync_time(self) -> None:
        """VALR refused a timestamp: learn its clock again (concurrent callers share one request)."""
        self.server_time.invalidate()
        await self.server_time.ensure()

    async def pairs(self, rest: ValrRest) -> tuple[str, dict[str, dict[str, Any]]]:
        """The exchange status and every pair's metadata (one request per minute at most, however many
        markets open)."""
        async with self._pairs_lock:
            now = time.monotonic()
            if self._pairs is None or now - self._pairs[0] > _PAIRS_TTL:
                status, pairs = await asyncio.gather(rest.status(), rest.pairs())
                self._pairs = (now, status, {str(p["symbol"]): p for p in pairs})
            return self._pairs[1], self._pairs[2]

    def trade_stream(self, rest: ValrRest) -> TradeStream:
        """The engine's one trade socket (signed with the first market's key, if it has one)."""

        def build() -> TradeStream:
            stream = TradeStream(
                self.settings.ws_url,
                rest.signer,
                self.timing,
                self.logger.getChild("trade"),
                self.resync_time if rest.signer is not None else None,
            )
            stream.on_reconnect = partial(self.counters.reconnected, "valr")
            return stream

        self.trade = self.part("trade", build)
        return self.trade

    def account(self, rest: ValrRest) -> AccountStream:
        """The account socket of `rest`'s key and sub-account."""
        signer = rest.signer
        assert signer is not None

        def build() -> AccountStream:
            stream = AccountStream(
                self.settings.ws_url,
                rest,
                signer,
                self.timing,
                self.settings.fill_wait,
                self.logger.getChild("account"),
                self.resync_time,
            )
            stream.on_reconnect = partial(self.counters.reconnected, "valr")
            return stream

        return self.part(f"account {signer.api_key} {signer.sub_account}", build)


class ValrClient(MarketClient):
    """A VALR market: aggregated book, trades and ticker from the trade socket; orders through the v2
    endpoints with customerOrderId; order and balance updates from the account socket."""

    name = "valr"
    settings_model = ValrSettings

    def __init__(self, context: ClientContext, events: MarketEvents) -> None:
        super().__init__(context, events)
        settings = context.settings
        if not isinstance(settings, ValrSettings):
            settings = validate_model(ValrSettings, settings or {}, "moonship.valr")
        keys = validate_model(_MarketKeys, context.config.extra, f"moonship.markets.{context.market_name}")
        valr = settings
        self.session = context.session(
            f"valr {settings.rest_url}",
            lambda: ValrSession(valr, logging.getLogger("moonship.valr"), context.clock, context.counters),
        )
        self.pair = self.symbol.upper()
        api_key = keys.api_key or settings.api_key
        secret = keys.api_secret or settings.api_secret
        self.sub_account = keys.sub_account_id or context.config.account or settings.sub_account_id or ""
        signer = None
        if api_key and secret:
            signer = Signer(api_key, secret.get_secret_value(), self.session.server_time, self.sub_account)
        elif api_key or secret:
            raise ConfigError(
                f"moonship.markets.{context.market_name}: VALR needs both api_key and api_secret"
            )
        self.rest = self.session.rest(signer)
        self.info: MarketInfo | None = None
        self.feed = MarketFeed(
            self.pair,
            events,
            self._open_status,
            snapshot=partial(self.rest.orderbook, self.pair),
            silence_timeout=settings.silence_timeout,
            logger=self.logger,
            recorder=context.recorder,
            clock=context.clock,
        )
        self.account: AccountStream | None = None
        self._connected = False

    def _open_status(self) -> MarketStatus:
        return self.info.status if self.info is not None else MarketStatus.OPEN

    @classmethod
    def replay_parser(cls, context: ClientContext, events: MarketEvents, info: MarketInfo) -> FrameParser:
        feed = MarketFeed(context.symbol.upper(), events, lambda: info.status, clock=context.clock)
        return ReplayParser(feed, context.logger.getChild("replay"))

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        if self._connected:
            return
        info = await self.get_market_info()
        if self.rest.signer is not None:
            await self.session.server_time.ensure()
        self._connected = True
        self.events.status(MarketStatus.UNSYNCED, "connecting")
        await self.session.trade_stream(self.rest).add(self.pair, self.feed)
        if self.rest.signer is not None and not self.context.market_data_only:
            self.account = self.session.account(self.rest)
            await self.account.add(self.pair, self.events, info.base_asset, info.quote_asset)

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        if self.session.trade is not None:
            await self.session.trade.remove(self.pair, self.feed)
        if self.account is not None:
            await self.account.remove(self.events)
        self.events.status(MarketStatus.CLOSED)

    # ------------------------------------------------------------------ market data
    async def get_market_info(self) -> MarketInfo:
        status, pairs = await self.session.pairs(self.rest)
        pair = pairs.get(self.pair)
        if pair is None:
            raise ConfigError(
                f"moonship.markets.{self.context.market_name}.symbol: VALR has no pair {self.pair}"
            )
        self.info = parse_market_info(pair, status)
        return self.info

    async def get_ticker(self) -> Ticker:
        return parse_ticker(await self.rest.market_summary(self.pair), self.pair)

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        """The latest `limit` (at most 100, VALR's page) public trades, oldest first."""
        trades = [parse_trade(t, self.pair) for t in await self.rest.trades(self.pair, limit)]
        trades.reverse()
        return trades[-limit:] if limit > 0 else []

    # ------------------------------------------------------------------ orders
    def _account(self) -> AccountStream:
        if self.account is None:
            if self.rest.signer is None:
                raise AuthenticationError("VALR orders need moonship.valr.api_key and api_secret")
            self.account = self.session.account(self.rest)
        return self.account

    async def place_order(self, request: OrderRequest) -> Order:
        if request.account not in (None, "", self.sub_account):
            raise InvalidOrder(
                f"VALR: this market trades sub-account {self.sub_account!r}; use one market per sub-account",
                rule="account",
            )
        coid = check_client_order_id(request.client_order_id)
        account = self._account()
        known = account.current(coid)
        if known is not None:  # a retry
            if known.id:
                return known  # VALR has it
            try:  # an earlier attempt's answer was lost: VALR may have it, even closed already
                return await self.get_order(known)
            except OrderNotFound:
                self.logger.info("order %s is not at VALR: sending it again", coid)
        account.placing(request, self.pair, self.context.clock.now())
        kind, body = self._order_body(request)
        try:
            data = await self.rest.place(kind, body)
        except DuplicateClientOrderId:
            self.logger.info("order %s already at VALR: looking it up", coid)
            account.unconfirmed(coid)
            known = account.current(coid) or Order.from_request(
                request, self.pair, OrderStatus.UNKNOWN, self.context.clock.now()
            )
            return await self.get_order(known)
        except OrderStatusUnknown:
            account.unconfirmed(coid)  # stays tracked: its events or a lookup tell what happened
            raise
        except (ExchangeError, NetworkError):
            account.forget(coid)
            raise
        if not data.get("id"):
            account.forget(coid, str(data.get("orderId") or ""))
            raise error_for(201, data)
        return account.placed(coid, str(data["id"]))

    def _order_body(self, request: OrderRequest) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"side": request.side.value, "pair": self.pair}
        if request.type is OrderType.LIMIT:
            assert request.quantity is not None and request.price is not None
            kind = "limit"
            body |= {
                "quantity": fmt_decimal(request.quantity),
                "price": fmt_decimal(request.price),
                "postOnly": request.post_only,
                "timeInForce": request.time_in_force.value,
            }
        else:
            kind = "market"
            if request.quantity is not None:
                body["baseAmount"] = fmt_decimal(request.quantity)
            else:
                body["quoteAmount"] = fmt_decimal(request.quote_quantity or Decimal(0))
        body["customerOrderId"] = request.client_order_id
        if request.margin:
            body["allowMargin"] = True
        return kind, body

    async def cancel_order(self, order: Order) -> Order:
        account = self._account()
        order_id = order.id or account.known_id(order.client_order_id)
        try:
            await self.rest.cancel(self.pair, order_id=order_id, customer_order_id=order.client_order_id)
        except OrderNotFound:
            current = await self.get_order(order)  # OrderNotFound again if VALR has no such order
            if current.status.is_final:
                return current
            raise
        final = await account.wait_final(order.client_order_id, self.session.settings.cancel_wait)
        if final is not None:
            return final
        current = await self.get_order(order)
        if current.status.is_final:
            return current
        return replace(current, status=OrderStatus.CANCELLATION_PENDING)

    async def get_order(self, order: Order) -> Order:
        account = self._account()
        known = account.current(order.client_order_id) if order.client_order_id else None
        if known is not None and known.status.is_final:
            return known
        if order.client_order_id:
            account.track(order, self.pair)
        order_id = order.id or (known.id if known is not None else "")
        data = await self.rest.order_status(
            self.pair, order_id=order_id, customer_order_id=order.client_order_id
        )
        coid = str(data.get("customerOrderId") or order.client_order_id)
        account.apply_status(data)
        if account.missing_fills(coid):
            await account.fetch_fills(coid)
        current = account.current(coid)
        return current if current is not None else order_from_status(data, self.pair)

    async def get_open_orders(self) -> list[Order]:
        account = self._account()
        orders = []
        for data in await self.rest.open_orders():
            if data.get("currencyPair") != self.pair:
                continue
            known = account.current(str(data.get("customerOrderId") or ""))
            orders.append(known if known is not None else order_from_status(data, self.pair))
        return orders

    async def get_balances(self) -> dict[str, Balance]:
        return {b.asset: b for b in map(parse_balance, await self.rest.balances())}
