"""Typed Luno REST calls on the venue session's HTTP client: Basic auth, form-encoded POSTs, pacing by the
rate table, Retry-After honoured, error answers mapped by the error table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx
import orjson

from moonship_core import (
    AuthenticationError,
    Clock,
    NetworkError,
    RateLimited,
    RateLimits,
    RequestTimeout,
    Side,
    Ticker,
    Trade,
    fmt_decimal,
    parse_retry_after,
)

from . import constants as c
from .auth import Credentials
from .parse import AccountBalance, LunoFill, LunoMarket, LunoOrder, book_levels, dec, public_trade, ticker

Params = Sequence[tuple[str, str]]


class LunoRest:
    """Luno's REST API for one set of credentials (or none: public calls only), on the HTTP client and rate
    limits its engine's Luno markets share."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: Credentials | None,
        limits: RateLimits,
        clock: Clock,
        logger: logging.Logger,
    ) -> None:
        self._http = http
        self.credentials = credentials
        self.limits = limits
        self.clock = clock
        self.logger = logger

    async def call(self, method: str, path: str, params: Params = (), *, private: bool = True) -> Any:
        """One request. A 429 pauses every call of this key for Retry-After (seconds or an HTTP-date, 1 s
        without one) and is retried (Luno did not process it), then raises RateLimited; a 5xx or a transport
        failure raises NetworkError (the call may have run)."""
        headers = {}
        account = self.credentials.key_id if self.credentials is not None else "public"
        if private:
            if self.credentials is None:
                raise AuthenticationError("luno: api_key and api_secret are required for this request")
            headers["Authorization"] = self.credentials.basic
        retry_after = 0.0
        for _ in range(c.RATE_LIMIT_ATTEMPTS):
            await self.limits.acquire(f"{method} {path}", account=account)
            try:
                if method == "GET":
                    response = await self._http.get(path, params=list(params), headers=headers)
                else:
                    response = await self._http.request(method, path, data=dict(params), headers=headers)
            except httpx.TimeoutException as exc:
                raise RequestTimeout(f"luno {method} {path}: timed out") from exc
            except httpx.HTTPError as exc:
                raise NetworkError(f"luno {method} {path}: {type(exc).__name__} {exc}") from exc
            try:
                body = orjson.loads(response.content) if response.content else None
            except orjson.JSONDecodeError:
                body = None
            status = response.status_code
            code = message = ""
            if isinstance(body, dict):
                code, message = str(body.get("error_code") or ""), str(body.get("error") or "")
            if status == 429 or code == c.RATE_LIMITED_CODE:
                retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
                self.limits.refused(429, retry_after)
                self.logger.warning("luno rate limit hit on %s: pausing %.1f s", path, retry_after)
                continue
            if status >= 500 or code == c.INTERNAL_CODE:
                raise NetworkError(f"luno {method} {path}: HTTP {status} {code} {message}".rstrip())
            if status >= 400 or code:
                raise c.ERRORS.error(status, code or None, message or f"HTTP {status}")
            return body
        raise RateLimited(f"luno {method} {path}: rate limited", retry_after=retry_after)

    # ------------------------------------------------------------------ market data
    async def markets(self) -> list[LunoMarket]:
        body = await self.call("GET", c.MARKETS, private=False)
        return [LunoMarket.parse(m) for m in body.get("markets") or ()]

    async def ticker(self, pair: str) -> Ticker:
        return ticker(pair, await self.call("GET", c.TICKER, [("pair", pair)], private=False))

    async def trades(self, pair: str, since: int | None = None) -> list[Trade]:
        """Public trades, newest first (Luno returns at most 100)."""
        params = [("pair", pair)] + ([("since", str(since))] if since is not None else [])
        body = await self.call("GET", c.TRADES, params, private=False)
        return [public_trade(pair, t) for t in body.get("trades") or ()]

    async def book_top(
        self, pair: str
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """(bids, asks): the top 100 price levels per side, aggregated (GET /api/1/orderbook_top)."""
        body = await self.call("GET", c.ORDERBOOK_TOP, [("pair", pair)], private=False)
        return book_levels(body.get("bids")), book_levels(body.get("asks"))

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
