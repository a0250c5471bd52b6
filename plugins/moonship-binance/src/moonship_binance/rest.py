"""Typed Binance REST calls on the venue session's HTTP client: pacing by the rate table, signing stamped by
the server clock, Retry-After and bans, error mapping by the error table."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx
import orjson

from moonship_core import (
    AuthenticationError,
    ExchangeError,
    Fill,
    InvalidOrder,
    NetworkError,
    OrderStatusUnknown,
    RateLimited,
    RateLimits,
    RequestTimeout,
    ServerClock,
    Trade,
    parse_retry_after,
)
from moonship_core import Clock as CoreClock

from . import constants as c
from .auth import Credentials, encode, sign
from .parse import SymbolRules, my_trade_fill, parse_symbol, rest_trade

Params = Sequence[tuple[str, str]]


class BinanceRest:
    """One engine's Binance REST calls. Every call waits for its weight under the shared RateLimits, signs
    when asked, adopts the server's usage counters from the response headers, and raises core errors."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        recv_window: int,
        limits: RateLimits,
        clock: CoreClock,
        logger: logging.Logger,
    ) -> None:
        self._http = http
        self.recv_window = recv_window
        self.limits = limits
        self.clock = clock
        self.logger = logger
        #: Binance's server time (signed requests and WebSocket API subscriptions are stamped with it)
        self.server_time = ServerClock(self._fetch_time, clock, max_age=c.TIME_RESYNC)
        self._limits_adopted = False

    # ------------------------------------------------------------------ transport
    async def request(
        self,
        method: str,
        path: str,
        params: Params = (),
        *,
        endpoint: str | None = None,
        creds: Credentials | None = None,
        signed: bool = False,
        order_coid: str | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON body. `endpoint` names its rate-table entry
        ("METHOD path" by default).

        `order_coid` marks a request whose effect on an order is uncertain when it fails in flight (5xx,
        -1007, timeout after sending): those raise OrderStatusUnknown. A -1021 re-syncs the clock and
        retries once (the server refused the request, so a retry cannot double it).
        """
        for attempt in (0, 1):
            try:
                return await self._send(
                    method, path, params, endpoint or f"{method} {path}", creds, signed, order_coid
                )
            except ExchangeError as exc:
                if exc.code != c.TIMESTAMP_REJECTED or attempt:
                    raise
                self.logger.warning("Binance rejected the timestamp (-1021): re-syncing the clock")
                self.server_time.invalidate()
        raise AssertionError("unreachable")

    async def _send(
        self,
        method: str,
        path: str,
        params: Params,
        endpoint: str,
        creds: Credentials | None,
        signed: bool,
        order_coid: str | None,
    ) -> Any:
        headers: dict[str, str] = {}
        account = creds.api_key if creds is not None else None
        if creds is not None:
            headers["X-MBX-APIKEY"] = creds.api_key
        if signed:
            if creds is None:
                raise AuthenticationError("Binance: this request needs api_key and api_secret")
            await self.server_time.ensure()
        await self.limits.acquire(endpoint, account=account)
        query = encode(params)
        if signed and creds is not None:  # stamped after pacing, so a wait cannot age the timestamp
            stamp = encode(
                [("recvWindow", str(self.recv_window)), ("timestamp", str(self.server_time.now_ms()))]
            )
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
        self.limits.observe(response.headers, account=account)
        status = response.status_code
        if status == 200:
            return orjson.loads(response.content)
        return self._fail(method, path, response, order_coid)

    def _fail(self, method: str, path: str, response: httpx.Response, order_coid: str | None) -> Any:
        status = response.status_code
        try:
            body = orjson.loads(response.content)
            code: int | None = int(body["code"])
            msg = str(body.get("msg", ""))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            code, msg = None, response.text[:200]
        if status in (418, 429):
            retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
            self.limits.refused(status, retry_after)
            self.logger.warning(
                "Binance HTTP %s (%s): no request before %.0f s", status, msg or "rate limited", retry_after
            )
            raise RateLimited(f"Binance HTTP {status}: {msg}", retry_after=retry_after)
        if status >= 500 or code in c.UNKNOWN_CODES:
            if order_coid is not None:
                raise OrderStatusUnknown(
                    f"Binance {method} {path}: HTTP {status} {msg}", client_order_id=order_coid
                )
            raise NetworkError(f"Binance {method} {path}: HTTP {status} {msg}")
        raise c.ERRORS.error(status, code, msg)

    async def _fetch_time(self) -> int:
        body = await self._send("GET", c.API + "/time", (), "GET /api/v3/time", None, False, None)
        return int(body["serverTime"])

    # ------------------------------------------------------------------ public
    async def exchange_info(self, symbol: str) -> SymbolRules:
        body = await self.request("GET", c.API + "/exchangeInfo", [("symbol", symbol)])
        self._adopt_limits(body.get("rateLimits", ()))
        for entry in body["symbols"]:
            if entry["symbol"] == symbol:
                return parse_symbol(entry)
        raise InvalidOrder(f"Binance has no symbol {symbol}", rule="symbol")

    def _adopt_limits(self, rate_limits: Sequence[Mapping[str, Any]]) -> None:
        """Adopt exchangeInfo's `rateLimits` (once)."""
        if self._limits_adopted:
            return
        self._limits_adopted = True
        pools = [
            c.pool(str(e["rateLimitType"]), int(e["limit"]), str(e["interval"]), int(e.get("intervalNum", 1)))
            for e in rate_limits
            if e.get("rateLimitType") in ("REQUEST_WEIGHT", "ORDERS")
        ]
        if pools:
            self.limits.configure([*pools, *c.SAPI_POOLS])

    async def depth(self, symbol: str, limit: int) -> dict[str, Any]:
        """The raw snapshot (level texts stay strings: the book takes them as they are)."""
        params = [("symbol", symbol), ("limit", str(limit))]
        result: dict[str, Any] = await self.request(
            "GET", c.API + "/depth", params, endpoint=c.depth_endpoint(limit)
        )
        return result

    async def trades(self, symbol: str, limit: int) -> list[Trade]:
        rows = await self.request("GET", c.API + "/trades", [("symbol", symbol), ("limit", str(limit))])
        return [rest_trade(symbol, r) for r in rows]

    async def book_ticker(self, symbol: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", c.API + "/ticker/bookTicker", [("symbol", symbol)])
        return result

    async def last_price(self, symbol: str) -> Decimal:
        body = await self.request("GET", c.API + "/ticker/price", [("symbol", symbol)])
        return Decimal(body["price"])

    # ------------------------------------------------------------------ signed
    async def balances(self, creds: Credentials, *, margin: bool) -> list[tuple[str, Decimal, Decimal]]:
        """(asset, free, locked) of every asset of the spot (or cross-margin) account."""
        if margin:
            body = await self.request("GET", c.MARGIN_API + "/account", creds=creds, signed=True)
            rows = body["userAssets"]
        else:
            body = await self.request(
                "GET", c.API + "/account", [("omitZeroBalances", "false")], creds=creds, signed=True
            )
            rows = body["balances"]
        return [(r["asset"], Decimal(r["free"]), Decimal(r["locked"])) for r in rows]

    async def new_order(self, creds: Credentials, params: Params, coid: str, *, margin: bool) -> Any:
        path = (c.MARGIN_API if margin else c.API) + "/order"
        return await self.request("POST", path, params, creds=creds, signed=True, order_coid=coid)

    async def cancel_order(
        self, creds: Credentials, symbol: str, ref: Params, coid: str, *, margin: bool
    ) -> Any:
        path = (c.MARGIN_API if margin else c.API) + "/order"
        return await self.request(
            "DELETE", path, [("symbol", symbol), *ref], creds=creds, signed=True, order_coid=coid
        )

    async def query_order(self, creds: Credentials, symbol: str, ref: Params, *, margin: bool) -> Any:
        path = (c.MARGIN_API if margin else c.API) + "/order"
        return await self.request("GET", path, [("symbol", symbol), *ref], creds=creds, signed=True)

    async def open_orders(self, creds: Credentials, symbol: str, *, margin: bool) -> list[Any]:
        path = (c.MARGIN_API if margin else c.API) + "/openOrders"
        result: list[Any] = await self.request("GET", path, [("symbol", symbol)], creds=creds, signed=True)
        return result

    async def my_trades(self, creds: Credentials, symbol: str, order_id: str, *, margin: bool) -> list[Fill]:
        path = (c.MARGIN_API if margin else c.API) + "/myTrades"
        rows = await self.request(
            "GET", path, [("symbol", symbol), ("orderId", order_id)], creds=creds, signed=True
        )
        return [my_trade_fill(r) for r in rows]
