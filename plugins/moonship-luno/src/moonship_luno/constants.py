"""Luno endpoints, limits and the vocabularies the client maps."""

from __future__ import annotations

from typing import Final

from moonship_core import MarketStatus

REST_URL: Final = "https://api.luno.com"
WS_URL: Final = "wss://ws.luno.com"

# REST paths (appended to the configured rest_url)
MARKETS: Final = "/api/exchange/1/markets"
TICKER: Final = "/api/1/ticker"
TRADES: Final = "/api/1/trades"
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

#: REST calls per minute per user, shared by every Luno market of the engine
RATE_LIMIT: Final = 300
#: the limit is enforced over windows this long (300/min becomes 25 per 5 s: paced, small bursts)
PACE_WINDOW: Final = 5.0
#: attempts at a request Luno answered 429
RATE_LIMIT_RETRIES: Final = 3
#: extra attempts at an order request whose outcome is unknown (same client_order_id: never doubles)
ORDER_RETRIES: Final = 2
REQUEST_TIMEOUT: Final = 10.0
#: a stream silent this long (no update, no keepalive) is dead: reconnect
STALE_TIMEOUT: Final = 60.0
#: Luno replays this much of the user stream after a reconnect; longer outages reconcile through REST
REPLAY_WINDOW: Final = 300.0
PING_INTERVAL: Final = 20.0
MAX_FRAME: Final = 64 * 1024 * 1024  # a busy market's snapshot lists every order
LIST_TRADES_PAGE: Final = 1000
#: trades pages read at most per reconciliation
LIST_TRADES_PAGES: Final = 20

#: trading_status of /api/exchange/1/markets and status of the stream and ticker
MARKET_STATUS: Final[dict[str, MarketStatus]] = {
    "ACTIVE": MarketStatus.OPEN,
    "POST_ONLY": MarketStatus.OPEN_POST_ONLY,
    "POSTONLY": MarketStatus.OPEN_POST_ONLY,
}
