"""Binance spot: base URLs, the rate-limit table, the error table and the enums the client maps."""

from __future__ import annotations

import re
from typing import Final

from moonship_core import (
    AuthenticationError,
    DuplicateClientOrderId,
    ErrorRule,
    ErrorTable,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    MarketStatus,
    NotSupported,
    OrderNotFound,
    OrderStatus,
    Pool,
    PostOnlyRejected,
    RateTable,
)

NAME: Final = "binance"

REST_URL: Final = "https://api.binance.com"
WS_URL: Final = "wss://stream.binance.com:9443"
WS_API_URL: Final = "wss://ws-api.binance.com:443/ws-api/v3"

TESTNET_REST_URL: Final = "https://testnet.binance.vision"
TESTNET_WS_URL: Final = "wss://stream.testnet.binance.vision"
TESTNET_WS_API_URL: Final = "wss://ws-api.testnet.binance.vision/ws-api/v3"

_FILTER = re.compile(r"Filter failure: ([A-Z_]+)")


def _filter_rule(message: str) -> str:
    match = _FILTER.search(message)
    return match[1].lower() if match else "filter"


API: Final = "/api/v3"
MARGIN_API: Final = "/sapi/v1/margin"

#: request weights (Binance's documented values) per pool: "weight" per IP and "orders" per API key (new
#: orders only) for /api; /sapi endpoints have their own limits, each marked IP or UID in Binance's docs.
#: GET /depth costs by its limit: see depth_endpoint. exchangeInfo's rateLimits replace the /api pools.
_W = "weight"
_SAPI_IP = "sapi_ip"
_SAPI_UID = "sapi_uid"
ENDPOINTS: Final[dict[str, dict[str, int]]] = {
    "GET /api/v3/time": {_W: 1},
    "GET /api/v3/exchangeInfo": {_W: 20},
    "GET /api/v3/depth 100": {_W: 5},
    "GET /api/v3/depth 500": {_W: 25},
    "GET /api/v3/depth 1000": {_W: 50},
    "GET /api/v3/depth 5000": {_W: 250},
    "GET /api/v3/trades": {_W: 25},
    "GET /api/v3/ticker/bookTicker": {_W: 2},
    "GET /api/v3/ticker/price": {_W: 2},
    "GET /api/v3/account": {_W: 20},
    "POST /api/v3/order": {_W: 1, "orders": 1},
    "DELETE /api/v3/order": {_W: 1},
    "GET /api/v3/order": {_W: 4},
    "GET /api/v3/openOrders": {_W: 6},
    "GET /api/v3/myTrades": {_W: 5},  # with orderId
    "POST /sapi/v1/margin/order": {_SAPI_UID: 6},
    "DELETE /sapi/v1/margin/order": {_SAPI_IP: 10},
    "GET /sapi/v1/margin/order": {_SAPI_IP: 10},
    "GET /sapi/v1/margin/openOrders": {_SAPI_IP: 10},
    "GET /sapi/v1/margin/myTrades": {_SAPI_IP: 10},
    "GET /sapi/v1/margin/account": {_SAPI_IP: 10},
}
#: /sapi's limits, not listed in exchangeInfo: 12,000 IP weight and 180,000 UID weight per minute (Binance
#: counts each endpoint on its own; one shared window per kind is the stricter reading)
SAPI_POOLS: Final = (
    Pool(_SAPI_IP, 12000, 60.0, header="x-sapi-used-ip-weight-1m"),
    Pool(_SAPI_UID, 180000, 60.0, per_account=True, header="x-sapi-used-uid-weight-1m"),
)
INTERVAL_SECONDS: Final = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
INTERVAL_LETTER: Final = {"SECOND": "s", "MINUTE": "m", "HOUR": "h", "DAY": "d"}


def pool(kind: str, limit: int, interval: str, num: int) -> Pool:
    """A Pool from one exchangeInfo rateLimits entry (REQUEST_WEIGHT or ORDERS), with its usage header."""
    suffix = f"{num}{INTERVAL_LETTER.get(interval, 'm')}"
    seconds = float(INTERVAL_SECONDS.get(interval, 60) * num)
    if kind == "ORDERS":
        return Pool("orders", limit, seconds, per_account=True, header=f"x-mbx-order-count-{suffix}")
    return Pool(_W, limit, seconds, header=f"x-mbx-used-weight-{suffix}")


#: used until exchangeInfo's rateLimits arrive
RATE_TABLE: Final = RateTable(
    pools=(
        pool("REQUEST_WEIGHT", 6000, "MINUTE", 1),
        pool("ORDERS", 50, "SECOND", 10),
        pool("ORDERS", 160000, "DAY", 1),
        *SAPI_POOLS,
    ),
    endpoints=ENDPOINTS,
    default={_W: 1},
)


def depth_endpoint(limit: int) -> str:
    """The rate-table entry of GET /depth for a snapshot of `limit` levels."""
    tier = next((t for t in (100, 500, 1000) if limit <= t), 5000)
    return f"GET /api/v3/depth {tier}"


#: our windows outlast Binance's fixed intervals by this much: a request counted by us when sent is counted
#: by Binance when it arrives, possibly in the next interval
LATENCY_MARGIN: Final = 0.1
#: seconds between server-time syncs (and on every -1021)
TIME_RESYNC: Final = 1800.0

#: Binance error answers -> the core taxonomy (first match wins)
ERRORS: Final = ErrorTable(
    "Binance",
    [
        ErrorRule(InsufficientFunds, code=-2010, message="insufficient balance"),
        ErrorRule(PostOnlyRejected, code=-2010, message="immediately match and take"),
        ErrorRule(DuplicateClientOrderId, code=-2010, message="duplicate order"),
        ErrorRule(MarketClosed, code=-2010, message="market is closed"),
        ErrorRule(NotSupported, code=-2010, message="not support", rule="order_type"),  # "not support(ed)"
        ErrorRule(InvalidOrder, code=-2010, rule="rejected"),
        ErrorRule(InvalidOrder, code=-1013, rule=_filter_rule),
        ErrorRule(OrderNotFound, code=(-2011, -2013, -2026)),
        ErrorRule(AuthenticationError, code=(-1022, -2014, -2015, -1002)),
        ErrorRule(AuthenticationError, status=401),  # 403 is a WAF block (rate or security), not the key
        ErrorRule(InvalidOrder, code=-1111, rule="precision"),
        ErrorRule(InvalidOrder, code=-1121, rule="symbol"),
        ErrorRule(NotSupported, code=-1116, rule="order_type"),
        ErrorRule(
            InvalidOrder,
            code=(-1100, -1101, -1102, -1104, -1106, -1114, -1115, -1117, -1130),
            rule="parameters",
        ),
    ],
)
#: codes after which an order's fate is unknown (unexpected response, timeout)
UNKNOWN_CODES: Final = frozenset({-1006, -1007})
#: the server rejected the request's timestamp: re-sync the clock and retry once
TIMESTAMP_REJECTED: Final = -1021

#: Binance order status -> Moonship order status (EXPIRED_IN_MATCH is self-trade prevention)
ORDER_STATUS: Final[dict[str, OrderStatus]] = {
    "NEW": OrderStatus.PENDING,
    "PENDING_NEW": OrderStatus.PENDING,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "PENDING_CANCEL": OrderStatus.CANCELLATION_PENDING,
    "CANCELED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}

#: exchangeInfo symbol status -> market status
SYMBOL_STATUS: Final[dict[str, MarketStatus]] = {
    "TRADING": MarketStatus.OPEN,
    "END_OF_DAY": MarketStatus.CLOSED,
    "HALT": MarketStatus.CLOSED,
    "BREAK": MarketStatus.CLOSED,
    "CANCEL_ONLY": MarketStatus.CLOSED,
}
