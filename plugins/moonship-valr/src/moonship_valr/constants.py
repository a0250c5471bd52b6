"""VALR endpoints, paths and request-rate limits."""

from __future__ import annotations

from typing import Final

REST_URL: Final = "https://api.valr.com"
WS_URL: Final = "wss://api.valr.com"
TRADE_WS_PATH: Final = "/ws/trade"
ACCOUNT_WS_PATH: Final = "/ws/account"

#: REST calls per minute per API key (signed routes) and per IP for /v1/public/* (docs mirror)
KEY_LIMIT_PER_MIN: Final = 2000
PUBLIC_LIMIT_PER_MIN: Final = 30

#: VALR error codes (HTTP 400 / v2 201 bodies) the client maps onto moonship's errors
CODE_UNKNOWN_ORDER: Final = -1
CODE_INSUFFICIENT_FUNDS: Final = -6
CODE_POST_ONLY: Final = -19
CODE_MIN_SIZE: Final = -12007
CODE_DUPLICATE_CUSTOMER_ORDER_ID: Final = -11502
#: HTTP 401 `{"code": -11254, "message": "Request has expired"}`: X-VALR-TIMESTAMP too far from server time
CODE_REQUEST_EXPIRED: Final = -11254
