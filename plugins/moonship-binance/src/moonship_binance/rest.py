"""Typed Binance REST calls over one shared httpx client: signing, pacing, error mapping, parsing."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import orjson

from moonship_core import (
    ZERO,
    AuthenticationError,
    ExchangeError,
    Fill,
    InsufficientFunds,
    InvalidOrder,
    LiveClock,
    MarketClosed,
    MarketInfo,
    MarketStatus,
    NetworkError,
    Order,
    OrderNotFound,
    OrderStatus,
    OrderStatusUnknown,
    OrderType,
    PostOnlyRejected,
    RateLimited,
    RateLimiter,
    RequestTimeout,
    Side,
    TimeInForce,
    Trade,
    from_ms,
)
from moonship_core import Clock as CoreClock

from . import constants as c
from .auth import Clock, Credentials, encode, sign

Params = Sequence[tuple[str, str]]
_FILTER = re.compile(r"Filter failure: ([A-Z_]+)")
_UNKNOWN_CODES = frozenset({-1006, -1007})  # unexpected response / timeout: the order's fate is unknown
#: our sliding windows outlast Binance's fixed intervals by this much: a request counted by us when sent
#: is counted by Binance when it arrives, possibly in the next interval
LATENCY_MARGIN = 0.1
TIME_RESYNC = 1800.0  # seconds between server-time syncs (and on every -1021)


@dataclass(frozen=True)
class SymbolRules:
    """A symbol's trading rules from exchangeInfo."""

    info: MarketInfo
    #: MARKET_LOT_SIZE (step, min qty, max qty); step 0 means LOT_SIZE's step applies
    market_lot: tuple[Decimal, Decimal, Decimal] = (ZERO, ZERO, ZERO)
    order_types: frozenset[str] = frozenset()
    raw_status: str = "TRADING"


@dataclass
class _Window:
    limiter: RateLimiter
    header: str  # lower-case response header carrying the server's count


@dataclass
class Limits:
    """Request pacing shared by every Binance market of an engine: weight per IP, order counts per key,
    paced on `pacing` (the engine's clock)."""

    pacing: CoreClock = field(default_factory=LiveClock)
    weight: _Window = field(init=False)
    order_table: list[tuple[int, float, str]] = field(
        default_factory=lambda: [(n, s, f"x-mbx-order-count-{_suffix(s)}") for n, s in c.DEFAULT_ORDER_LIMITS]
    )
    orders: dict[str, list[_Window]] = field(default_factory=dict)
    configured: bool = False
    #: called for each request that waits for a window (the engine's metrics)
    on_wait: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        limiter = RateLimiter(*c.DEFAULT_WEIGHT_LIMIT, clock=self.pacing, on_wait=self.on_wait)
        self.weight = _Window(limiter, "x-mbx-used-weight-1m")

    def configure(self, rate_limits: Sequence[Mapping[str, Any]]) -> None:
        """Adopt exchangeInfo's `rateLimits` (once; later calls are ignored)."""
        if self.configured:
            return
        self.configured = True
        table: list[tuple[int, float, str]] = []
        for entry in rate_limits:
            interval = str(entry.get("interval", ""))
            num = int(entry.get("intervalNum", 1))
            seconds = float(c.INTERVAL_SECONDS.get(interval, 60) * num)
            suffix = f"{num}{c.INTERVAL_LETTER.get(interval, 'M')}".lower()
            limit = int(entry["limit"])
            kind = entry.get("rateLimitType")
            if kind == "REQUEST_WEIGHT":
                window = RateLimiter(limit, seconds + LATENCY_MARGIN, clock=self.pacing, on_wait=self.on_wait)
                self.weight = _Window(window, f"x-mbx-used-weight-{suffix}")
            elif kind == "ORDERS":
                table.append((limit, seconds + LATENCY_MARGIN, f"x-mbx-order-count-{suffix}"))
        if table:
            self.order_table = table
            self.orders.clear()

    def order_windows(self, api_key: str) -> list[_Window]:
        windows = self.orders.get(api_key)
        if windows is None:
            windows = self.orders[api_key] = [
                _Window(RateLimiter(n, s, clock=self.pacing, on_wait=self.on_wait), header)
                for n, s, header in self.order_table
            ]
        return windows


def _suffix(seconds: float) -> str:
    for letter, unit in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= unit and seconds % unit == 0:
            return f"{int(seconds // unit)}{letter}"
    return f"{int(seconds)}s"


class DuplicateOrder(InvalidOrder):
    """-2010 "Duplicate order sent.": an open order already has this client order id."""


def map_error(status: int, code: int | None, msg: str) -> ExchangeError:
    """The core error for a Binance error body (HTTP status, code, message)."""
    text = f"Binance {code}: {msg}" if code is not None else f"Binance HTTP {status}: {msg}"
    lowered = msg.lower()
    if code == -2010:
        if "insufficient balance" in lowered:
            return InsufficientFunds(text, code=code)
        if "immediately match and take" in lowered:
            return PostOnlyRejected(text, code=code)
        if "duplicate order" in lowered:
            return DuplicateOrder(text, rule="client_order_id", code=code)
        if "market is closed" in lowered:
            return MarketClosed(text, code=code)
        return InvalidOrder(text, rule="rejected", code=code)
    if code == -1013:
        match = _FILTER.search(msg)
        return InvalidOrder(text, rule=match[1].lower() if match else "filter", code=code)
    if code in (-2011, -2013, -2026):
        return OrderNotFound(text, code=code)
    if code in (-1022, -2014, -2015, -1002) or status in (401, 403):
        return AuthenticationError(text, code=code)
    if code == -1111:
        return InvalidOrder(text, rule="precision", code=code)
    if code == -1121:
        return InvalidOrder(text, rule="symbol", code=code)
    if code in (-1100, -1101, -1102, -1104, -1106, -1114, -1115, -1116, -1117, -1130):
        return InvalidOrder(text, rule="parameters", code=code)
    return ExchangeError(text, code=code)


class BinanceRest:
    """One engine's REST session (its hub's). Every call waits for its weight under the shared limits, signs
    when asked, adopts the server's usage counters from the response headers, and raises core errors."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        recv_window: int,
        clock: Clock,
        limits: Limits,
        logger: logging.Logger,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.recv_window = recv_window
        self.clock = clock
        self.limits = limits
        self.logger = logger
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            headers={"User-Agent": "moonship-binance"},
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ transport
    async def request(
        self,
        method: str,
        path: str,
        params: Params = (),
        *,
        weight: int = 1,
        creds: Credentials | None = None,
        signed: bool = False,
        order_coid: str | None = None,
        counts_order: bool = False,
    ) -> Any:
        """Send one request and return its decoded JSON body.

        `order_coid` marks a request whose effect on an order is uncertain when it fails in flight (5xx,
        -1007, timeout after sending): those raise OrderStatusUnknown. A -1021 re-syncs the clock and
        retries once (the server refused the request, so a retry cannot double it).
        """
        for attempt in (0, 1):
            try:
                return await self._send(method, path, params, weight, creds, signed, order_coid, counts_order)
            except ExchangeError as exc:
                if exc.code != -1021 or attempt:
                    raise
                self.logger.warning("Binance rejected the timestamp (-1021): re-syncing the clock")
                await self.sync_time()
        raise AssertionError("unreachable")

    async def _send(
        self,
        method: str,
        path: str,
        params: Params,
        weight: int,
        creds: Credentials | None,
        signed: bool,
        order_coid: str | None,
        counts_order: bool,
    ) -> Any:
        headers: dict[str, str] = {}
        if creds is not None:
            headers["X-MBX-APIKEY"] = creds.api_key
        if signed:
            if creds is None:
                raise AuthenticationError("Binance: this request needs api_key and api_secret")
            synced = self.clock.synced_at
            if synced is None or time.monotonic() - synced > TIME_RESYNC:
                await self.sync_time()
        await self.limits.weight.limiter.acquire(weight)
        windows = self.limits.order_windows(creds.api_key) if counts_order and creds else []
        for window in windows:
            await window.limiter.acquire(1)
        query = encode(params)
        if signed and creds is not None:  # stamped after pacing, so a wait cannot age the timestamp
            stamp = encode([("recvWindow", str(self.recv_window)), ("timestamp", str(self.clock.now_ms()))])
            query = f"{query}&{stamp}" if query else stamp
            query = f"{query}&signature={sign(creds.secret, query)}"
        url = f"{path}?{query}" if query else path
        content: bytes | None = None
        if method in ("POST", "PUT") and query:
            url, content = path, query.encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            response = await self._http.request(method, url, content=content, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached the server
            raise NetworkError(f"Binance {method} {path}: cannot connect: {exc!r}") from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            if order_coid is not None:
                raise OrderStatusUnknown(
                    f"Binance {method} {path}: no answer ({type(exc).__name__})", client_order_id=order_coid
                ) from exc
            if isinstance(exc, httpx.TimeoutException):
                raise RequestTimeout(f"Binance {method} {path}: timed out") from exc
            raise NetworkError(f"Binance {method} {path}: {exc!r}") from exc
        self._adopt_counts(response.headers, windows)
        status = response.status_code
        if status == 200:
            return orjson.loads(response.content)
        return self._fail(method, path, response, order_coid)

    def _adopt_counts(self, headers: httpx.Headers, windows: list[_Window]) -> None:
        used = headers.get(self.limits.weight.header)
        if used is not None and used.isdigit():
            self.limits.weight.limiter.sync(int(used))
        for window in windows:
            count = headers.get(window.header)
            if count is not None and count.isdigit():
                window.limiter.sync(int(count))

    def _fail(self, method: str, path: str, response: httpx.Response, order_coid: str | None) -> Any:
        status = response.status_code
        try:
            body = orjson.loads(response.content)
            code: int | None = int(body["code"])
            msg = str(body.get("msg", ""))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            code, msg = None, response.text[:200]
        if status in (418, 429):
            retry_after = _retry_after(response.headers.get("retry-after"))
            self.limits.weight.limiter.pause(retry_after)
            self.logger.warning(
                "Binance HTTP %s (%s): no request before %.0f s", status, msg or "rate limited", retry_after
            )
            raise RateLimited(f"Binance HTTP {status}: {msg}", retry_after=retry_after)
        if status >= 500 or code in _UNKNOWN_CODES:
            if order_coid is not None:
                raise OrderStatusUnknown(
                    f"Binance {method} {path}: HTTP {status} {msg}", client_order_id=order_coid
                )
            raise NetworkError(f"Binance {method} {path}: HTTP {status} {msg}")
        raise map_error(status, code, msg)

    async def sync_time(self) -> None:
        """Learn the offset between local time and Binance's server time."""
        sent = int(time.time() * 1000)
        body = await self._send(
            "GET", c.API + "/time", (), c.WEIGHTS[c.API + "/time"], None, False, None, False
        )
        self.clock.adopt(int(body["serverTime"]), sent, int(time.time() * 1000))
        self.logger.debug("Binance clock offset %d ms", self.clock.offset_ms)

    # ------------------------------------------------------------------ public
    async def exchange_info(self, symbol: str) -> SymbolRules:
        body = await self.request(
            "GET", c.API + "/exchangeInfo", [("symbol", symbol)], weight=c.WEIGHTS[c.API + "/exchangeInfo"]
        )
        self.limits.configure(body.get("rateLimits", ()))
        for entry in body["symbols"]:
            if entry["symbol"] == symbol:
                return parse_symbol(entry)
        raise InvalidOrder(f"Binance has no symbol {symbol}", rule="symbol")

    async def depth(self, symbol: str, limit: int) -> dict[str, Any]:
        """The raw snapshot (level texts stay strings: the book takes them as they are)."""
        result: dict[str, Any] = await self.request(
            "GET", c.API + "/depth", [("symbol", symbol), ("limit", str(limit))], weight=c.depth_weight(limit)
        )
        return result

    async def trades(self, symbol: str, limit: int) -> list[Trade]:
        rows = await self.request(
            "GET",
            c.API + "/trades",
            [("symbol", symbol), ("limit", str(limit))],
            weight=c.WEIGHTS[c.API + "/trades"],
        )
        return [
            Trade(
                str(r["id"]),
                symbol,
                Decimal(r["price"]),
                Decimal(r["qty"]),
                Side.SELL if r["isBuyerMaker"] else Side.BUY,
                from_ms(r["time"]),
            )
            for r in rows
        ]

    async def book_ticker(self, symbol: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "GET",
            c.API + "/ticker/bookTicker",
            [("symbol", symbol)],
            weight=c.WEIGHTS[c.API + "/ticker/bookTicker"],
        )
        return result

    async def last_price(self, symbol: str) -> Decimal:
        body = await self.request(
            "GET", c.API + "/ticker/price", [("symbol", symbol)], weight=c.WEIGHTS[c.API + "/ticker/price"]
        )
        return Decimal(body["price"])

    # ------------------------------------------------------------------ signed
    async def balances(self, creds: Credentials, *, margin: bool) -> list[tuple[str, Decimal, Decimal]]:
        """(asset, free, locked) of every asset of the spot (or cross-margin) account."""
        if margin:
            path = c.MARGIN_API + "/account"
            body = await self.request("GET", path, weight=c.WEIGHTS[path], creds=creds, signed=True)
            rows = body["userAssets"]
        else:
            path = c.API + "/account"
            body = await self.request(
                "GET", path, [("omitZeroBalances", "false")], weight=c.WEIGHTS[path], creds=creds, signed=True
            )
            rows = body["balances"]
        return [(r["asset"], Decimal(r["free"]), Decimal(r["locked"])) for r in rows]

    async def new_order(self, creds: Credentials, params: Params, coid: str, *, margin: bool) -> Any:
        path = (c.MARGIN_API if margin else c.API) + "/order"
        return await self.request(
            "POST",
            path,
            params,
            weight=c.WEIGHTS[path],
            creds=creds,
            signed=True,
            order_coid=coid,
            counts_order=True,
        )

    async def cancel_order(
        self, creds: Credentials, symbol: str, ref: Params, coid: str, *, margin: bool
    ) -> Any:
        path = (c.MARGIN_API if margin else c.API) + "/order"
        return await self.request(
            "DELETE",
            path,
            [("symbol", symbol), *ref],
            weight=c.WEIGHTS[path],
            creds=creds,
            signed=True,
            order_coid=coid,
        )

    async def query_order(self, creds: Credentials, symbol: str, ref: Params, *, margin: bool) -> Any:
        path = (c.MARGIN_API if margin else c.API) + "/order"
        weight = c.WEIGHTS[path] if margin else c.ORDER_QUERY_WEIGHT
        return await self.request(
            "GET", path, [("symbol", symbol), *ref], weight=weight, creds=creds, signed=True
        )

    async def open_orders(self, creds: Credentials, symbol: str, *, margin: bool) -> list[Any]:
        path = (c.MARGIN_API if margin else c.API) + "/openOrders"
        result: list[Any] = await self.request(
            "GET", path, [("symbol", symbol)], weight=c.WEIGHTS[path], creds=creds, signed=True
        )
        return result

    async def my_trades(self, creds: Credentials, symbol: str, order_id: str, *, margin: bool) -> list[Fill]:
        path = (c.MARGIN_API if margin else c.API) + "/myTrades"
        weight = c.WEIGHTS[path] if margin else c.MY_TRADES_BY_ORDER_WEIGHT
        rows = await self.request(
            "GET", path, [("symbol", symbol), ("orderId", order_id)], weight=weight, creds=creds, signed=True
        )
        return [
            Fill(
                str(r["id"]),
                Decimal(r["price"]),
                Decimal(r["qty"]),
                Decimal(r["commission"]),
                r["commissionAsset"] or "",
                bool(r["isMaker"]),
                timestamp=from_ms(r["time"]),
            )
            for r in rows
        ]


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


def parse_symbol(entry: Mapping[str, Any]) -> SymbolRules:
    """A SymbolRules from one exchangeInfo symbol object."""
    filters = {f["filterType"]: f for f in entry.get("filters", ())}
    price = filters.get("PRICE_FILTER", {})
    lot = filters.get("LOT_SIZE", {})
    market_lot = filters.get("MARKET_LOT_SIZE", {})
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    raw_status = str(entry.get("status", "TRADING"))
    info = MarketInfo(
        symbol=entry["symbol"],
        base_asset=entry["baseAsset"],
        quote_asset=entry["quoteAsset"],
        tick_size=Decimal(price.get("tickSize", "0")).normalize() or Decimal(1).scaleb(-8),
        lot_size=Decimal(lot.get("stepSize", "0")).normalize() or Decimal(1).scaleb(-8),
        min_quantity=Decimal(lot.get("minQty", "0")),
        min_notional=Decimal(notional.get("minNotional", "0")),
        status=c.SYMBOL_STATUS.get(raw_status, MarketStatus.CLOSED),
    )
    return SymbolRules(
        info,
        (
            Decimal(market_lot.get("stepSize", "0")),
            Decimal(market_lot.get("minQty", "0")),
            Decimal(market_lot.get("maxQty", "0")),
        ),
        frozenset(entry.get("orderTypes", ())),
        raw_status,
    )


def parse_order(body: Mapping[str, Any], fills: Sequence[Fill] = ()) -> Order:
    """An Order from a Binance order object (POST/GET/DELETE /order, openOrders) with the `fills` known."""
    kind = body.get("type", "LIMIT")
    tif = body.get("timeInForce") or "GTC"
    orig_qty = Decimal(body.get("origQty") or "0")
    quote_qty = Decimal(body.get("origQuoteOrderQty") or "0")
    price = Decimal(body.get("price") or "0")
    executed = Decimal(body.get("executedQty") or "0")
    status = c.ORDER_STATUS.get(body.get("status", ""), OrderStatus.UNKNOWN)
    if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and executed > 0:
        status = OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    created = body.get("time") or body.get("transactTime") or body.get("workingTime")
    updated = body.get("updateTime") or body.get("transactTime") or created
    return Order(
        id=str(body["orderId"]),
        client_order_id=body.get("origClientOrderId") or body["clientOrderId"],
        symbol=body["symbol"],
        side=Side(body.get("side", "BUY")),
        type=OrderType.MARKET if kind == "MARKET" else OrderType.LIMIT,
        status=status,
        quantity=orig_qty if orig_qty > 0 or quote_qty == 0 else None,
        quote_quantity=quote_qty if quote_qty > 0 else None,
        price=price if price > 0 else None,
        time_in_force=TimeInForce(tif) if tif in ("GTC", "IOC", "FOK") else TimeInForce.GTC,
        post_only=kind == "LIMIT_MAKER",
        filled_quantity=executed,
        filled_quote_quantity=Decimal(body.get("cummulativeQuoteQty") or "0"),
        fills=tuple(fills),
        created=from_ms(created) if created else from_ms(time.time() * 1000),
        updated=from_ms(updated) if updated else from_ms(time.time() * 1000),
        reason=body.get("expiryReason")
        or ("self-trade prevention" if body.get("status") == "EXPIRED_IN_MATCH" else None),
    )


def response_fills(body: Mapping[str, Any], fee_time: int | None = None) -> list[Fill]:
    """The fills of a FULL order response (`fills`: price, qty, commission, commissionAsset, tradeId)."""
    stamp = from_ms(fee_time or body.get("transactTime") or time.time() * 1000)
    return [
        Fill(
            str(f["tradeId"]),
            Decimal(f["price"]),
            Decimal(f["qty"]),
            Decimal(f["commission"]),
            f.get("commissionAsset") or "",
            False,
            timestamp=stamp,
        )
        for f in body.get("fills", ())
    ]
