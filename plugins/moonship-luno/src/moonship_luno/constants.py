"""Luno: endpoints, the rate-limit table, the error table and the vocabularies the client maps."""

from __future__ import annotations

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
    OrderNotFound,
    Pool,
    PostOnlyRejected,
    RateTable,
)

NAME: Final = "luno"

REST_URL: Final = "https://api.luno.com"
WS_URL: Final = "wss://ws.luno.com"

# REST paths (appended to the configured rest_url)
MARKETS: Final = "/api/exchange/1/markets"
TICKER: Final = "/api/1/ticker"
TRADES: Final = "/api/1/trades"
ORDERBOOK_TOP: Final = "/api/1/orderbook_top"
BALANCE: Final = "/api/1/balance"
POST_ORDER: Final = "/api/1/postorder"
MARKET_ORDER: Final = "/api/1/marketorder"
STOP_ORDER: Final = "/api/1/stoporder"
ORDER: Final = "/api/exchange/3/order"
LIST_ORDERS: Final = "/api/exchange/2/listorders"
LIST_TRADES: Final = "/api/1/listtrades"

# websocket paths (appended to the configured ws_url)
MARKET_STREAM: Final = "/api/1/stream/{pair}"
USER_STREAM: Final = "/api/1/userstream"

#: Luno's documented limit: REST calls a minute per user (luno-go paces one call per 200 ms)
RATE_LIMIT: Final = 300
_CALLS = "calls"
#: the minute's calls are also spread over windows this long, so a burst cannot spend a minute's calls
_PACE_WINDOW = 5.0


def rate_table(per_minute: int = RATE_LIMIT) -> RateTable:
    """Every call costs 1 in a per-API-key pool ("public" for calls without a key) of `per_minute` calls a
    minute, paced over 5 s windows."""
    paced = max(1, round(per_minute * _PACE_WINDOW / 60))
    return RateTable(
        pools=(
            Pool(_CALLS, per_minute, 60.0, per_account=True),
            Pool(_CALLS, paced, _PACE_WINDOW, per_account=True),
        ),
        endpoints={},
        default={_CALLS: 1},
    )


#: attempts at a call Luno answered 429 (a 429 call was not processed: luno-api-node, Luno's docs)
RATE_LIMIT_ATTEMPTS: Final = 3
#: our windows outlast Luno's by this much (a call we count when sent, Luno counts when it arrives)
LATENCY_MARGIN: Final = 0.1
#: extra attempts at an order request whose outcome is unknown (same client_order_id: never doubles)
ORDER_RETRIES: Final = 2
#: Luno replays this much of the user stream after a reconnect; longer outages reconcile through REST
REPLAY_WINDOW: Final = 300.0
#: a user stream silent this long (no message, no keepalive) is recycled (luno-go's read deadline)
USER_SILENCE_TIMEOUT: Final = 60.0
LIST_TRADES_PAGE: Final = 1000
#: trades pages read at most per reconciliation
LIST_TRADES_PAGES: Final = 20

#: Luno's error_code -> the core taxonomy (first match wins; 429 and 5xx are handled before the table)
ERRORS: Final = ErrorTable(
    "luno",
    [
        ErrorRule(InsufficientFunds, code=("ErrInsufficientFunds", "ErrInsufficientBalance")),
        ErrorRule(PostOnlyRejected, code="ErrOrderCanceled"),
        ErrorRule(InvalidOrder, code="ErrPostOnlyNotAllowed", rule="post_only"),
        ErrorRule(MarketClosed, code=("ErrPostOnlyMode", "ErrMarketUnavailable", "ErrUnderMaintenance")),
        ErrorRule(InvalidOrder, code="ErrVolumeTooLow", rule="min_quantity"),
        ErrorRule(InvalidOrder, code="ErrVolumeTooHigh", rule="max_quantity"),
        ErrorRule(InvalidOrder, code="ErrPriceTooLow", rule="min_price"),
        ErrorRule(InvalidOrder, code="ErrPriceTooHigh", rule="max_price"),
        ErrorRule(InvalidOrder, code="ErrValueTooHigh", rule="max_notional"),
        ErrorRule(InvalidOrder, code="ErrVolumeDenominationNotAllowed", rule="lot_size"),
        ErrorRule(InvalidOrder, code="ErrCounterDenominationNotAllowed", rule="quote_precision"),
        ErrorRule(InvalidOrder, code="ErrPriceDenominationNotAllowed", rule="tick_size"),
        ErrorRule(InvalidOrder, code="ErrInvalidPrice", rule="price"),
        ErrorRule(InvalidOrder, code=("ErrInvalidVolume", "ErrInvalidBaseVolume"), rule="quantity"),
        ErrorRule(InvalidOrder, code="ErrInvalidCounterVolume", rule="quote_quantity"),
        ErrorRule(InvalidOrder, code="ErrInvalidOrderSide", rule="side"),
        ErrorRule(InvalidOrder, code="ErrNotEnoughLiquidity", rule="liquidity"),
        ErrorRule(InvalidOrder, code="ErrInvalidMarketPair", rule="symbol"),
        ErrorRule(InvalidOrder, code="ErrInvalidClientOrderId", rule="client_order_id"),
        ErrorRule(InvalidOrder, code="ErrInvalidArguments", rule="parameters"),
        ErrorRule(OrderNotFound, code=("ErrOrderNotFound", "ErrCannotStopUnknownOrNonPendingOrder")),
        ErrorRule(DuplicateClientOrderId, code="ErrDuplicateClientOrderID"),
        ErrorRule(DuplicateClientOrderId, status=409),
        ErrorRule(AuthenticationError, code=("ErrUnauthorised", "ErrApiKeyRevoked", "ErrInsufficientPerms")),
        ErrorRule(AuthenticationError, status=401),
        ErrorRule(AuthenticationError, status=403),
        ErrorRule(OrderNotFound, status=404),
    ],
)
#: error codes that mean "too many requests" / "try later: the call may have run" whatever the HTTP status
RATE_LIMITED_CODE: Final = "ErrTooManyRequests"
INTERNAL_CODE: Final = "ErrInternal"

#: trading_status of /api/exchange/1/markets and status of the stream and ticker
MARKET_STATUS: Final[dict[str, MarketStatus]] = {
    "ACTIVE": MarketStatus.OPEN,
    "POST_ONLY": MarketStatus.OPEN_POST_ONLY,
    "POSTONLY": MarketStatus.OPEN_POST_ONLY,
}
