"""VALR endpoints, paths and request-rate limits."""

from __future__ import annotations

from typing import Final

from moonship_core import (
    AuthenticationError,
    DuplicateClientOrderId,
    ErrorRule,
    ErrorTable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    Pool,
    PostOnlyRejected,
    RateTable,
)

REST_URL: Final = "https://api.valr.com"
WS_URL: Final = "wss://api.valr.com"
TRADE_WS_PATH: Final = "/ws/trade"
ACCOUNT_WS_PATH: Final = "/ws/account"

#: REST calls per minute per API key (signed routes), per IP (every route) and per IP for /v1/public/*
#: (docs mirror; exchanges.md 3.7)
KEY_LIMIT_PER_MIN: Final = 2000
IP_LIMIT_PER_MIN: Final = 1200
PUBLIC_LIMIT_PER_MIN: Final = 30

#: price levels per side in an aggregated book, REST and websocket (valrdotcom/valr-agent-skills
#: references/market-data.md: "Returns up to 40 price levels per side")
BOOK_DEPTH: Final = 40

#: rate-table entries: a public call, a signed call, and the routes with limits of their own
PUBLIC: Final = "public"
SIGNED: Final = "signed"
TIME: Final = "GET /v1/public/time"
STATUS: Final = "GET /v1/public/status"
PLACE: Final = "POST /v2/orders"
CANCEL: Final = "DELETE /v2/orders/order"


def rate_table(key_limit: int = KEY_LIMIT_PER_MIN, public_limit: int = PUBLIC_LIMIT_PER_MIN) -> RateTable:
    """VALR's request limits: per minute per key (`key_limit`), per IP (1200) and for /v1/public/*
    (`public_limit`); /v1/public/time and /status 20/s; order placement 400/s and cancels 450/s per key."""
    return RateTable(
        pools=(
            Pool("key", key_limit, 60.0, per_account=True),
            Pool("ip", IP_LIMIT_PER_MIN, 60.0),
            Pool("public", public_limit, 60.0),
            Pool("clock", 20, 1.0),
            Pool("place", 400, 1.0, per_account=True),
            Pool("cancel", 450, 1.0, per_account=True),
        ),
        endpoints={
            PUBLIC: {"public": 1, "ip": 1},
            TIME: {"clock": 1, "ip": 1},
            STATUS: {"clock": 1, "ip": 1},
            PLACE: {"key": 1, "ip": 1, "place": 1},
            CANCEL: {"key": 1, "ip": 1, "cancel": 1},
        },
        default={"key": 1, "ip": 1},
    )

#: VALR error codes (HTTP 400 / v2 201 bodies) the client maps onto moonship's errors
CODE_UNKNOWN_ORDER: Final = -1
CODE_INSUFFICIENT_FUNDS: Final = -6
CODE_POST_ONLY: Final = -19
CODE_MIN_SIZE: Final = -12007
CODE_DUPLICATE_CUSTOMER_ORDER_ID: Final = -11502
#: HTTP 401 `{"code": -11254, "message": "Request has expired"}`: X-VALR-TIMESTAMP too far from server time
CODE_REQUEST_EXPIRED: Final = -11254


class StaleTimestamp(AuthenticationError):
    """VALR refused the request's timestamp (clock skew): nothing was executed."""


def _min_rule(message: str) -> str:
    lowered = message.lower()
    return "min_notional" if "quote" in lowered or "value" in lowered else "min_quantity"


#: VALR's error answers onto the taxonomy, first match wins (codes, else the message: VALR's wording varies)
ERRORS: Final = ErrorTable(
    "VALR",
    [
        ErrorRule(StaleTimestamp, code=CODE_REQUEST_EXPIRED),
        ErrorRule(StaleTimestamp, status=401, message="expired"),
        ErrorRule(StaleTimestamp, status=401, message="timestamp"),
        ErrorRule(AuthenticationError, status=401),
        ErrorRule(AuthenticationError, status=403),
        ErrorRule(OrderNotFound, status=404),
        ErrorRule(OrderNotFound, code=CODE_UNKNOWN_ORDER),
        ErrorRule(OrderNotFound, message="could not find"),
        ErrorRule(OrderNotFound, message="not found"),
        ErrorRule(InsufficientFunds, code=CODE_INSUFFICIENT_FUNDS),
        ErrorRule(InsufficientFunds, message="insufficient"),
        ErrorRule(PostOnlyRejected, code=CODE_POST_ONLY),
        *(ErrorRule(PostOnlyRejected, message=m) for m in ("postonly", "post-only", "post only")),
        ErrorRule(DuplicateClientOrderId, code=CODE_DUPLICATE_CUSTOMER_ORDER_ID),
        ErrorRule(DuplicateClientOrderId, message="duplicate"),
        ErrorRule(InvalidOrder, code=CODE_MIN_SIZE, rule=_min_rule),
        ErrorRule(InvalidOrder, message="minimum", rule=_min_rule),
        ErrorRule(InvalidOrder, status=400),
        ErrorRule(InvalidOrder, status=201),  # v2's synchronous order failure
    ],
)
