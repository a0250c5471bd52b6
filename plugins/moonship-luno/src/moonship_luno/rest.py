"""Typed Luno REST calls: Basic auth, form-encoded POSTs, pacing, 429 back-off and error mapping."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import orjson

from moonship_core import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    MarketInfo,
    MarketStatus,
    NetworkError,
    OrderNotFound,
    PostOnlyRejected,
    RateLimited,
    RateLimiter,
    RequestTimeout,
    Side,
    Ticker,
    Trade,
    fmt_decimal,
    from_ms,
)

from . import constants as c
from .auth import Credentials

ZERO = Decimal(0)
Params = Sequence[tuple[str, str]]


class ServerError(NetworkError):
    """Luno answered 5xx: the request may or may not have been carried out."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class DuplicateClientOrderId(ExchangeError):
    """409 ErrDuplicateClientOrderID: an order with this client_order_id already exists."""


#: error_code -> (exception class, InvalidOrder rule)
_ERRORS: dict[str, tuple[type[ExchangeError], str | None]] = {
    "ErrInsufficientFunds": (InsufficientFunds, None),
    "ErrInsufficientBalance": (InsufficientFunds, None),
    "ErrOrderCanceled": (PostOnlyRejected, "post_only"),
    "ErrPostOnlyNotAllowed": (InvalidOrder, "post_only"),
    "ErrPostOnlyMode": (MarketClosed, None),
    "ErrMarketUnavailable": (MarketClosed, None),
    "ErrUnderMaintenance": (MarketClosed, None),
    "ErrVolumeTooLow": (InvalidOrder, "min_quantity"),
    "ErrVolumeTooHigh": (InvalidOrder, "max_quantity"),
    "ErrPriceTooLow": (InvalidOrder, "min_price"),
    "ErrPriceTooHigh": (InvalidOrder, "max_price"),
    "ErrValueTooHigh": (InvalidOrder, "max_notional"),
    "ErrVolumeDenominationNotAllowed": (InvalidOrder, "lot_size"),
    "ErrCounterDenominationNotAllowed": (InvalidOrder, "quote_precision"),
    "ErrPriceDenominationNotAllowed": (InvalidOrder, "tick_size"),
    "ErrInvalidPrice": (InvalidOrder, "price"),
    "ErrInvalidVolume": (InvalidOrder, "quantity"),
    "ErrInvalidBaseVolume": (InvalidOrder, "quantity"),
    "ErrInvalidCounterVolume": (InvalidOrder, "quote_quantity"),
    "ErrInvalidOrderSide": (InvalidOrder, "side"),
    "ErrNotEnoughLiquidity": (InvalidOrder, "liquidity"),
    "ErrInvalidMarketPair": (InvalidOrder, "symbol"),
    "ErrInvalidClientOrderId": (InvalidOrder, "client_order_id"),
    "ErrInvalidArguments": (InvalidOrder, None),
    "ErrOrderNotFound": (OrderNotFound, None),
    "ErrCannotStopUnknownOrNonPendingOrder": (OrderNotFound, None),
    "ErrDuplicateClientOrderID": (DuplicateClientOrderId, None),
    "ErrUnauthorised": (AuthenticationError, None),
    "ErrApiKeyRevoked": (AuthenticationError, None),
    "ErrInsufficientPerms": (AuthenticationError, None),
}


def error_for(status: int, body: Any, retry_after: float | None = None) -> Exception:
    """The taxonomy's exception for a Luno error answer (keyed on `error_code`, then the HTTP status)."""
    code = message = ""
    if isinstance(body, dict):
        code = str(body.get("error_code") or "")
        message = str(body.get("error") or "")
    text = f"luno {status} {code}: {message}" if code else f"luno {status}: {message or 'error'}"
    if status == 429 or code == "ErrTooManyRequests":
        return RateLimited(text, retry_after=retry_after)
    if status >= 500 or code == "ErrInternal":
        return ServerError(text, status=status)
    known = _ERRORS.get(code)
    if known is not None:
        cls, rule = known
        if cls is PostOnlyRejected:
            return PostOnlyRejected(text, code=code)
        if issubclass(cls, InvalidOrder):
            return cls(text, rule=rule, code=code)
        return cls(text, code=code)
    if status in (401, 403):
        return AuthenticationError(text, code=code or status)
    if status == 404:
        return OrderNotFound(text, code=code or status)
    return ExchangeError(text, code=code or status)


def dec(value: Any) -> Decimal:
    """A Luno decimal string (or missing/empty: 0)."""
    if value is None or value == "":
        return ZERO
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"malformed decimal {value!r}") from None


def _side(value: str) -> Side:
    return Side.BUY if value in ("BID", "BUY") else Side.SELL


@dataclass(frozen=True, slots=True)
class LunoMarket:
    """One entry of /api/exchange/1/markets."""

    market_id: str
    base: str
    counter: str
    trading_status: str
    min_volume: Decimal
    max_volume: Decimal
    volume_scale: int
    min_price: Decimal
    max_price: Decimal
    price_scale: int

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> LunoMarket:
        return cls(
            raw["market_id"], raw["base_currency"], raw["counter_currency"], str(raw["trading_status"]),
            dec(raw.get("min_volume")), dec(raw.get("max_volume")), int(raw["volume_scale"]),
            dec(raw.get("min_price")), dec(raw.get("max_price")), int(raw["price_scale"]),
        )

    def info(self) -> MarketInfo:
        return MarketInfo(
            symbol=self.market_id,
            base_asset=self.base,
            quote_asset=self.counter,
            tick_size=Decimal(1).scaleb(-self.price_scale),
            lot_size=Decimal(1).scaleb(-self.volume_scale),
            min_quantity=self.min_volume,
            status=c.MARKET_STATUS.get(self.trading_status, MarketStatus.CLOSED),
        )


@dataclass(frozen=True, slots=True)
class LunoOrder:
    """An order as /api/exchange/2|3 describe it (amounts filled so far are cumulative)."""

    order_id: str
    client_order_id: str
    pair: str
    side: Side
    type: str  # LIMIT | MARKET | STOP_LIMIT
    status: str  # AWAITING | PENDING | COMPLETE
    limit_price: Decimal
    limit_volume: Decimal
    base: Decimal
    counter: Decimal
    fee_base: Decimal
    fee_counter: Decimal
    created: int
    expired: int
    completed: int
    time_in_force: str

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> LunoOrder:
        return cls(
            str(raw["order_id"]), str(raw.get("client_order_id") or ""), str(raw.get("pair") or ""),
            _side(str(raw.get("side") or raw.get("type"))), str(raw.get("type") or "LIMIT"),
            str(raw.get("status") or raw.get("state") or "PENDING"), dec(raw.get("limit_price")),
            dec(raw.get("limit_volume")), dec(raw.get("base")), dec(raw.get("counter")),
            dec(raw.get("fee_base")), dec(raw.get("fee_counter")), int(raw.get("creation_timestamp") or 0),
            int(raw.get("expiration_timestamp") or 0), int(raw.get("completed_timestamp") or 0),
            str(raw.get("time_in_force") or "GTC"),
        )


@dataclass(frozen=True, slots=True)
class LunoFill:
    """One of our trades, from /api/1/listtrades."""

    sequence: int
    order_id: str
    side: Side  # our order's side
    is_buy: bool  # the taker bought
    base: Decimal
    counter: Decimal
    fee_base: Decimal
    fee_counter: Decimal
    timestamp: int

    @property
    def is_maker(self) -> bool:
        return self.is_buy == (self.side is Side.SELL)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> LunoFill:
        return cls(
            int(raw["sequence"]), str(raw["order_id"]), _side(str(raw["type"])), bool(raw.get("is_buy")),
            dec(raw.get("base") or raw.get("volume")), dec(raw.get("counter")), dec(raw.get("fee_base")),
            dec(raw.get("fee_counter")), int(raw.get("timestamp") or 0),
        )


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account_id: str
    asset: str
    balance: Decimal
    reserved: Decimal

    @property
    def available(self) -> Decimal:
        return self.balance - self.reserved


class LunoRest:
    """Luno's REST API for one set of credentials, paced by the limiter its engine's Luno markets share."""

    def __init__(
        self,
        session: Callable[[], httpx.AsyncClient],
        base_url: str,
        credentials: Credentials | None,
        limiter: RateLimiter,
        logger: logging.Logger,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.limiter = limiter
        self.logger = logger

    async def call(self, method: str, path: str, params: Params = (), *, private: bool = True) -> Any:
        """One request; retried (paused) while Luno answers 429, then RateLimited."""
        headers = {}
        if private:
            if self.credentials is None:
                raise AuthenticationError("luno: api_key and api_secret are required for this request")
            headers["Authorization"] = self.credentials.basic
        url = self.base_url + path
        retry_after: float | None = None
        for attempt in range(c.RATE_LIMIT_RETRIES):
            await self.limiter.acquire()
            http = self.session()
            try:
                if method == "GET":
                    response = await http.get(url, params=list(params), headers=headers)
                else:
                    response = await http.request(method, url, data=dict(params), headers=headers)
            except httpx.TimeoutException as exc:
                raise RequestTimeout(f"luno {method} {path}: timed out") from exc
            except httpx.HTTPError as exc:
                raise NetworkError(f"luno {method} {path}: {type(exc).__name__} {exc}") from exc
            if response.status_code == 429:
                retry_after = _retry_after(response) or float(2**attempt)
                self.logger.warning("luno rate limit hit on %s: pausing %.1f s", path, retry_after)
                self.limiter.pause(retry_after)
                continue
            try:
                body = orjson.loads(response.content) if response.content else None
            except orjson.JSONDecodeError:
                body = None
            if response.status_code >= 400 or (isinstance(body, dict) and body.get("error_code")):
                raise error_for(response.status_code, body)
            return body
        raise RateLimited(f"luno {method} {path}: rate limited", retry_after=retry_after)

    # ------------------------------------------------------------------ market data
    async def markets(self) -> list[LunoMarket]:
        body = await self.call("GET", c.MARKETS, private=False)
        return [LunoMarket.parse(m) for m in body.get("markets") or ()]

    async def ticker(self, pair: str) -> Ticker:
        body = await self.call("GET", c.TICKER, [("pair", pair)], private=False)
        bid, ask, last = dec(body.get("bid")), dec(body.get("ask")), dec(body.get("last_trade"))
        return Ticker(pair, bid or None, ask or None, last or None, from_ms(body.get("timestamp") or 0))

    async def trades(self, pair: str, since: int | None = None) -> list[Trade]:
        """Public trades, newest first (Luno returns at most 100)."""
        params = [("pair", pair)] + ([("since", str(since))] if since is not None else [])
        body = await self.call("GET", c.TRADES, params, private=False)
        return [
            Trade(
                str(t["sequence"]), pair, dec(t["price"]), dec(t["volume"]),
                Side.BUY if t.get("is_buy") else Side.SELL, from_ms(t["timestamp"]),
            )
            for t in body.get("trades") or ()
        ]

    # ------------------------------------------------------------------ account
    async def balances(self, assets: Sequence[str] = ()) -> list[AccountBalance]:
        body = await self.call("GET", c.BALANCE, [("assets", a) for a in assets])
        return [
            AccountBalance(
                str(b["account_id"]), str(b["asset"]), dec(b.get("balance")), dec(b.get("reserved"))
            )
            for b in body.get("balance") or ()
        ]

    async def post_limit(
        self,
        pair: str,
        side: Side,
        volume: Decimal,
        price: Decimal,
        *,
        post_only: bool,
        time_in_force: str,
        client_order_id: str,
    ) -> str:
        params = [
            ("pair", pair),
            ("type", "BID" if side is Side.BUY else "ASK"),
            ("volume", fmt_decimal(volume)),
            ("price", fmt_decimal(price)),
            ("post_only", "true" if post_only else "false"),
            ("time_in_force", time_in_force),
            ("client_order_id", client_order_id),
        ]
        body = await self.call("POST", c.POST_ORDER, params)
        return str(body["order_id"])

    async def post_market(
        self,
        pair: str,
        side: Side,
        *,
        base_volume: Decimal | None = None,
        counter_volume: Decimal | None = None,
        client_order_id: str,
    ) -> str:
        params = [("pair", pair), ("type", side.value), ("client_order_id", client_order_id)]
        if base_volume is not None:
            params.append(("base_volume", fmt_decimal(base_volume)))
        if counter_volume is not None:
            params.append(("counter_volume", fmt_decimal(counter_volume)))
        body = await self.call("POST", c.MARKET_ORDER, params)
        return str(body["order_id"])

    async def stop_order(self, order_id: str) -> bool:
        body = await self.call("POST", c.STOP_ORDER, [("order_id", order_id)])
        return bool(body.get("success"))

    async def order(self, *, order_id: str = "", client_order_id: str = "") -> LunoOrder:
        params = [("id", order_id)] if order_id else [("client_order_id", client_order_id)]
        return LunoOrder.parse(await self.call("GET", c.ORDER, params))

    async def list_orders(self, pair: str, *, closed: bool = False, limit: int = 1000) -> list[LunoOrder]:
        params = [("pair", pair), ("closed", "true" if closed else "false"), ("limit", str(limit))]
        body = await self.call("GET", c.LIST_ORDERS, params)
        return [LunoOrder.parse(o) for o in body.get("orders") or ()]

    async def list_trades(
        self, pair: str, *, since: int | None = None, after_seq: int | None = None,
        limit: int = c.LIST_TRADES_PAGE,
    ) -> list[LunoFill]:
        """Our trades in `pair`, oldest first."""
        params = [("pair", pair), ("limit", str(limit))]
        if since is not None:
            params.append(("since", str(since)))
        if after_seq is not None:
            params.append(("after_seq", str(after_seq)))
        body = await self.call("GET", c.LIST_TRADES, params)
        return [LunoFill.parse(t) for t in body.get("trades") or ()]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
