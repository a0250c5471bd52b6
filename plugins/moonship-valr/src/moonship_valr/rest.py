"""VALR REST: signed requests, error mapping onto moonship's taxonomy (constants.ERRORS), typed calls."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson

from moonship_core import (
    AuthenticationError,
    Clock,
    ExchangeError,
    InvalidOrder,
    NetworkError,
    OrderNotFound,
    OrderStatusUnknown,
    RateLimited,
    RateLimits,
    RequestTimeout,
    parse_retry_after,
)

from . import constants as c
from .auth import Signer
from .constants import StaleTimestamp
from .parse import server_time_ms

log = logging.getLogger("moonship.valr")

_COID = re.compile(r"[A-Za-z0-9-]{1,50}")


def check_client_order_id(coid: str) -> str:
    """VALR's customerOrderId rule: alphanumeric and dashes, at most 50 characters."""
    if not _COID.fullmatch(coid):
        raise InvalidOrder(
            f"client order id {coid!r}: VALR allows 1-50 letters, digits and dashes", rule="client_order_id"
        )
    return coid


def error_for(status: int, body: Any, *, text: str = "") -> ExchangeError:
    """The moonship error for a VALR failure: 400 `{code, message}` or v2's 201 `{orderId, code, message}`
    (codes sometimes arrive as strings)."""
    code: int | str | None = None
    message = text
    if isinstance(body, Mapping):
        raw = body.get("code")
        message = str(body.get("message") or text)
        try:
            code = int(raw) if raw is not None else None
        except (TypeError, ValueError):
            code = raw
    return c.ERRORS.error(status, code, message)


class ValrRest:
    """REST calls of one VALR account (or of none: public calls only), paced by shared rate limiters."""

    def __init__(
        self,
        http: Callable[[], httpx.AsyncClient],
        base_url: str,
        signer: Signer | None,
        limits: RateLimits,
        clock: Clock,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.limits = limits
        self.clock = clock

    # ------------------------------------------------------------------ transport
    async def request(
        self,
        verb: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        signed: bool = True,
        sub_account: str | None = None,
        order_id_for_unknown: str | None = None,
        ok: tuple[int, ...] = (200, 201, 202),
        endpoint: str | None = None,
    ) -> Any:
        """Send one request and return its parsed JSON (None for an empty body).

        `order_id_for_unknown`: the request places an order with this customerOrderId, so a lost answer
        (timeout, 5xx, dropped connection after sending) raises OrderStatusUnknown instead of NetworkError.
        `endpoint`: its rate-table entry (a public or a signed call by default).
        """
        endpoint = endpoint or (c.SIGNED if signed else c.PUBLIC)
        account = self.signer.api_key if signed and self.signer is not None else None
        if params:
            path = f"{path}?{urlencode({k: v for k, v in params.items() if v is not None})}"
        content = orjson.dumps(body) if body is not None else b""
        for attempt in range(3):
            headers = {"Content-Type": "application/json"} if body is not None else {}
            if signed and self.signer is None:
                raise AuthenticationError(f"VALR {verb} {path.split('?')[0]} needs an API key and secret")
            await self.limits.acquire(endpoint, account=account)
            if signed:
                assert self.signer is not None
                headers.update(self.signer.headers(verb, path, content, sub_account))
            try:
                response = await self.http().request(
                    verb, self.base_url + path, content=content, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise NetworkError(f"VALR {verb} {path}: cannot connect: {exc!r}") from exc
            except httpx.TimeoutException as exc:
                if order_id_for_unknown is not None:
                    raise OrderStatusUnknown(
                        f"VALR {verb} {path}: no answer in time", client_order_id=order_id_for_unknown
                    ) from exc
                raise RequestTimeout(f"VALR {verb} {path}: no answer in time") from exc
            except httpx.HTTPError as exc:
                if order_id_for_unknown is not None:
                    raise OrderStatusUnknown(
                        f"VALR {verb} {path}: {exc!r}", client_order_id=order_id_for_unknown
                    ) from exc
                raise NetworkError(f"VALR {verb} {path}: {exc!r}") from exc
            status = response.status_code
            data = _json(response.content)
            if status in ok:
                return data
            if status == 429:
                retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
                self.limits.refused(status, retry_after)
                if verb == "GET" and attempt < 2:
                    log.warning("VALR rate limit hit on %s: pausing %.1f s", path.split("?")[0], retry_after)
                    continue
                raise RateLimited(f"VALR {verb} {path}: rate limited", retry_after=retry_after)
            if status >= 500:
                if order_id_for_unknown is not None:
                    raise OrderStatusUnknown(
                        f"VALR {verb} {path}: HTTP {status}", client_order_id=order_id_for_unknown
                    )
                raise NetworkError(f"VALR {verb} {path}: HTTP {status}")
            error = error_for(status, data, text=response.text[:200])
            if isinstance(error, StaleTimestamp) and attempt == 0 and self.signer is not None:
                log.warning("VALR refused our timestamp: resynchronising the clock")
                self.signer.server_time.invalidate()
                await self.signer.server_time.ensure()
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    async def server_time(self) -> int:
        """VALR's clock in epoch ms (X-VALR-TIMESTAMP, in ms, must be close to it)."""
        return server_time_ms(await self.request("GET", "/v1/public/time", signed=False, endpoint=c.TIME))

    # ------------------------------------------------------------------ public
    async def status(self) -> str:
        data = await self.request("GET", "/v1/public/status", signed=False, endpoint=c.STATUS)
        return str(data.get("status", ""))

    async def pairs(self) -> list[dict[str, Any]]:
        data = await self.request("GET", "/v1/public/pairs", signed=False)
        return list(data)

    async def market_summary(self, pair: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/v1/public/{pair}/marketsummary", signed=False))

    async def orderbook(self, pair: str) -> dict[str, Any]:
        """The aggregated book (top 40 per side) with its `SequenceNumber` (the signed twin when we have a
        key: it has the key's limit)."""
        if self.signer is not None:
            return dict(await self.request("GET", f"/v1/marketdata/{pair}/orderbook"))
        return dict(await self.request("GET", f"/v1/public/{pair}/orderbook", signed=False))

    async def trades(self, pair: str, limit: int = 100) -> list[dict[str, Any]]:
        """Recent public trades, newest first (the signed twin when we have a key: it has the key's limit)."""
        params = {"limit": min(max(limit, 1), 100)}
        if self.signer is not None:
            return list(await self.request("GET", f"/v1/marketdata/{pair}/tradehistory", params=params))
        return list(await self.request("GET", f"/v1/public/{pair}/trades", params=params, signed=False))

    # ------------------------------------------------------------------ account
    async def balances(self, sub_account: str | None = None) -> list[dict[str, Any]]:
        params = {"excludeZeroBalances": "false"}
        return list(await self.request("GET", "/v1/account/balances", params=params, sub_account=sub_account))

    async def account_trades(
        self, pair: str, limit: int = 100, sub_account: str | None = None
    ) -> list[dict[str, Any]]:
        """Our recent fills in `pair`, newest first."""
        params = {"limit": min(max(limit, 1), 100)}
        return list(
            await self.request(
                "GET", f"/v1/account/{pair}/tradehistory", params=params, sub_account=sub_account
            )
        )

    async def open_orders(self, sub_account: str | None = None) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/v1/orders/open", sub_account=sub_account))

    async def order_status(
        self, pair: str, *, order_id: str = "", customer_order_id: str = "", sub_account: str | None = None
    ) -> dict[str, Any]:
        """An order's status: the closed-order summary when it exists, else the open-order status."""
        kind, key = ("orderid", order_id) if order_id else ("customerorderid", customer_order_id)
        key = quote(key, safe="")
        try:
            return dict(
                await self.request("GET", f"/v1/orders/history/summary/{kind}/{key}", sub_account=sub_account)
            )
        except OrderNotFound:
            return dict(await self.request("GET", f"/v1/orders/{pair}/{kind}/{key}", sub_account=sub_account))

    async def place(self, kind: str, body: dict[str, Any], sub_account: str | None = None) -> dict[str, Any]:
        """POST /v2/orders/{kind} (limit | market): `{"id"}` when placed, or v2's synchronous failure
        `{"orderId", "code", "message"}` (a 400 `{code, message}` raises)."""
        data = await self.request(
            "POST",
            f"/v2/orders/{kind}",
            body=body,
            sub_account=sub_account,
            order_id_for_unknown=str(body["customerOrderId"]),
            endpoint=c.PLACE,
        )
        return dict(data) if isinstance(data, Mapping) else {}

    async def cancel(
        self, pair: str, *, order_id: str = "", customer_order_id: str = "", sub_account: str | None = None
    ) -> None:
        body = {"orderId": order_id} if order_id else {"customerOrderId": customer_order_id}
        body["pair"] = pair
        await self.request(
            "DELETE", "/v2/orders/order", body=body, sub_account=sub_account, endpoint=c.CANCEL
        )


def _json(content: bytes) -> Any:
    if not content:
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
