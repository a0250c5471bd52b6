"""Binance spot: base URLs, request weights, default rate limits and the enums the client maps."""

from __future__ import annotations

from typing import Final

from moonship_core import MarketStatus, OrderStatus

NAME: Final = "binance"

REST_URL: Final = "https://api.binance.com"
WS_URL: Final = "wss://stream.binance.com:9443"
WS_API_URL: Final = "wss://ws-api.binance.com:443/ws-api/v3"

TESTNET_REST_URL: Final = "https://testnet.binance.vision"
TESTNET_WS_URL: Final = "wss://stream.testnet.binance.vision"
TESTNET_WS_API_URL: Final = "wss://ws-api.testnet.binance.vision/ws-api/v3"

API: Final = "/api/v3"
MARGIN_API: Final = "/sapi/v1/margin"

#: request weight of each REST call (Binance's documented values; depth depends on the limit)
WEIGHTS: Final[dict[str, int]] = {
    "/api/v3/time": 1,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/trades": 25,
    "/api/v3/ticker/bookTicker": 2,
    "/api/v3/ticker/price": 2,
    "/api/v3/account": 20,
    "/api/v3/order": 1,  # POST/DELETE; GET costs 4 (see order_weight)
    "/api/v3/openOrders": 6,
    "/api/v3/myTrades": 20,
    "/sapi/v1/margin/order": 6,
    "/sapi/v1/margin/openOrders": 10,
    "/sapi/v1/margin/myTrades": 10,
    "/sapi/v1/margin/account": 10,
}
ORDER_QUERY_WEIGHT: Final = 4
MY_TRADES_BY_ORDER_WEIGHT: Final = 5


def depth_weight(limit: int) -> int:
    """Weight of GET /depth for a snapshot of `limit` levels."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


#: used until exchangeInfo's rateLimits arrive: (limit, seconds)
DEFAULT_WEIGHT_LIMIT: Final = (6000, 60.0)
DEFAULT_ORDER_LIMITS: Final = ((50, 10.0), (160000, 86400.0))
INTERVAL_SECONDS: Final = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
INTERVAL_LETTER: Final = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}

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
