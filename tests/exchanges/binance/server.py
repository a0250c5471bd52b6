"""Loopback Binance spot: REST (/api/v3, /sapi/v1/margin), market streams (/stream, /ws) and the WebSocket
API (/ws-api/v3) on one 127.0.0.1 port, speaking Binance's wire format, with the fault switches tests use.

    async with BinanceSim() as sim:
        sim.exchange.set_level("BTCUSDT", "a", "30000.01", "1.5")
        ... client with rest_url=sim.rest_url, ws_url=sim.ws_url, ws_api_url=sim.ws_api_url ...
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from moonship_core.testing import AsgiServer

from .. import kit
from ..kit.connection import Connection
from .engine import Account, Exchange, SimError, SimOrder, SymbolSpec, now_ms

KEY = "sim-binance-key-0001"
SECRET = "sim-binance-secret-0001"
MAKER_KEY = "sim-binance-key-0002"
MAKER_SECRET = "sim-binance-secret-0002"

#: a request arriving this soon after a 429 was sent before its sender read it: another 429, not a ban
#: (Binance bans for "failing to back off after receiving 429s", rest-api.md "IP Limits")
IN_FLIGHT = 0.5
Handler = Callable[[dict[str, str], Account | None], Awaitable[Any]]
NONE, KEYED, SIGNED = "NONE", "USER_STREAM", "SIGNED"


@dataclass
class Faults(kit.Faults):
    """The kit's switches (`fail_after_execute`: a 503 after a new order executed) and Binance's own:
    path-keyed faults apply to the next requests of that path, once each."""

    #: path -> seconds to hold the answer after executing (past the client's timeout)
    delay_after: dict[str, deque[float]] = field(default_factory=dict)
    #: path -> HTTP status (5xx) to answer after executing
    error_after: dict[str, deque[int]] = field(default_factory=dict)
    #: answer every WebSocket API subscribe with this error code (None: normal)
    subscribe_error: int | None = None

    def delay(self, path: str, seconds: float, times: int = 1) -> None:
        self.delay_after.setdefault(path, deque()).extend([seconds] * times)

    def fail(self, path: str, status: int = 503, times: int = 1) -> None:
        self.error_after.setdefault(path, deque()).extend([status] * times)


class _Conn(Connection):
    """One websocket (market stream or WebSocket API)."""

    def __init__(self, ws: WebSocket, kind: str) -> None:
        super().__init__(ws, close_code=1001)
        self.kind = kind
        self.opened = time.monotonic()
        self.streams: set[str] = set()
        self.combined = False
        self.subscriptions: dict[int, Account] = {}  # WebSocket API: subscription id -> account
        self.sub_ids = itertools.count(0)
        #: a stalled feed: no stream events, though the socket stays open (pings and control still answered)
        self.silent = False


class _Window:
    """A counter over fixed intervals of `seconds` (Binance resets its counters at each interval's start)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.start = 0.0
        self.used = 0

    def expire(self, now: float) -> None:
        start = now - now % self.seconds
        if start != self.start:
            self.start, self.used = start, 0

    def add(self, now: float, amount: int) -> None:
        self.expire(now)
        self.used += amount

    def wait(self, now: float, amount: int) -> float:
        """Seconds until the counter resets."""
        return self.start + self.seconds - now


def _interval(seconds: float) -> tuple[str, int, str]:
    """(interval, intervalNum, header suffix) for a window length."""
    for name, unit, letter in (("DAY", 86400, "D"), ("MINUTE", 60, "M"), ("SECOND", 1, "S")):
        if seconds >= unit and seconds % unit == 0:
            num = int(seconds // unit)
            return name, num, f"{num}{letter}"
    return "SECOND", max(1, int(seconds)), f"{max(1, int(seconds))}S"


class BinanceSim:
    """The simulator: an Exchange behind Binance's REST, stream and WebSocket API endpoints."""

    def __init__(
        self,
        *,
        symbols: tuple[SymbolSpec, ...] | None = None,
        balances: dict[str, str] | None = None,
        weight_limit: int = 6000,
        weight_seconds: float = 60,
        orders_per_10s: int = 50,
        orders_per_day: int = 160000,
        ban_seconds: float = 120,
        depth_interval: float = 0.01,
        max_connection_age: float | None = None,
        ping_interval: float = 20,
        ping_timeout: float = 60,
        sapi_ip_limit: int = 12000,
        sapi_uid_limit: int = 180000,
    ) -> None:
        self.exchange = Exchange()
        for spec in symbols or (SymbolSpec("BTCUSDT", "BTC", "USDT"), SymbolSpec("ETHUSDT", "ETH", "USDT")):
            self.exchange.add_symbol(spec)
        self.exchange.add_account(KEY, SECRET, balances or {"BTC": "10", "USDT": "100000", "ETH": "100"})
        self.exchange.add_account(
            MAKER_KEY, MAKER_SECRET, {"BTC": "1000", "USDT": "100000000", "ETH": "1000"}
        )
        self.exchange.on_trade = self._on_trade
        self.exchange.on_user = self._on_user
        self.faults = Faults()
        self.weight = _Window(weight_limit, weight_seconds)
        #: /sapi limits, apart from /api's: every IP-limited endpoint has its own 12,000 weight per minute and
        #: every UID-limited one its own 180,000 per account; breaking them is a 429, never a 418 ban
        self.sapi_ip_limit = sapi_ip_limit
        self.sapi_uid_limit = sapi_uid_limit
        #: ("METHOD path", "IP" or the API key) -> that endpoint's window
        self.sapi_windows: dict[tuple[str, str], _Window] = {}
        self.order_limits = ((orders_per_10s, 10.0), (orders_per_day, 86400.0))
        self.order_windows: dict[str, list[_Window]] = {}
        self.ban_seconds = ban_seconds
        self.retry_until = 0.0
        self.refused_at = 0.0
        self.banned_until = 0.0
        self.depth_interval = depth_interval
        self.max_connection_age = max_connection_age
        #: Binance pings every 20 s and drops a connection that has not answered within a minute
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.conns: set[_Conn] = set()
        #: every REST request as (method, path, params) and websocket connections opened, for assertions
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.stream_connects = 0
        self.api_connects = 0
        self.depth_requests = 0
        self.rest_url = self.ws_url = self.ws_api_url = ""
        self._server: AsgiServer | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.app = Starlette(routes=self._routes())

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> BinanceSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, port: int = 0) -> None:
        self._server = AsgiServer(
            self.app, port, ws="websockets-sansio", ws_ping_interval=self.ping_interval,
            ws_ping_timeout=self.ping_timeout,
        )
        await self._server.start()
        self.rest_url = self._server.rest_url
        self.ws_url = self._server.ws_url
        self.ws_api_url = f"{self._server.ws_url}/ws-api/v3"
        self._flusher = asyncio.create_task(self._flush_depth())

    async def stop(self) -> None:
        for conn in list(self.conns):
            conn.close()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._server is not None:
            await self._server.stop()

    def settings(self, **extra: Any) -> dict[str, Any]:
        """A `moonship.binance` section pointing at this simulator with the test account's keys."""
        return {
            "api_key": KEY,
            "api_secret": SECRET,
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "ws_api_url": self.ws_api_url,
            **extra,
        }

    # ------------------------------------------------------------------ fault switches
    def drop_connections(self, kind: str | None = None) -> None:
        """Close every market-stream ("stream") and/or WebSocket API ("api") connection."""
        for conn in list(self.conns):
            if kind is None or conn.kind == kind:
                conn.close()

    def skip_update_ids(self, symbol: str, count: int = 5) -> None:
        """Let the depth stream of `symbol` jump `count` update ids (the client must see a gap)."""
        state = self.exchange.symbol(symbol)
        self._publish_diff(state.spec.symbol)
        state.update_id += count

    def send_malformed(self, kind: str = "stream") -> None:
        for conn in list(self.conns):
            if conn.kind == kind:
                conn.send('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","U":')

    def go_silent(self, kind: str = "stream") -> None:
        """Stall every open connection of `kind`: it stays open and answers pings and control requests, but
        carries no more events (new connections are healthy). The book keeps changing behind it."""
        for conn in self.conns:
            if conn.kind == kind:
                conn.silent = True

    def server_shutdown(self) -> None:
        """Announce maintenance on every connection, as Binance does before closing them."""
        event = {"e": "serverShutdown", "E": now_ms()}
        for conn in list(self.conns):
            if conn.kind == "api":
                message: dict[str, Any] = {"event": event}
            elif conn.combined:
                message = {"stream": "!serverShutdown", "data": event}
            else:
                message = event
            conn.send(orjson.dumps(message).decode())

    # ------------------------------------------------------------------ streams
    def subscribers(self, stream: str) -> bool:
        return any(stream in conn.streams for conn in self.conns)

    def publish(self, stream: str, data: dict[str, Any]) -> None:
        raw = combined = None
        for conn in self.conns:
            if stream in conn.streams and not conn.silent:
                if conn.combined:
                    combined = combined or orjson.dumps({"stream": stream, "data": data}).decode()
                    conn.send(combined)
                else:
                    raw = raw or orjson.dumps(data).decode()
                    conn.send(raw)

    def _on_trade(self, symbol: str, event: dict[str, Any]) -> None:
        self.publish(f"{symbol.lower()}@trade", event)

    def _on_user(self, account: Account, event: dict[str, Any]) -> None:
        for conn in self.conns:
            for sub_id, subscribed in conn.subscriptions.items():
                if subscribed is account:
                    conn.send(orjson.dumps({"subscriptionId": sub_id, "event": event}).decode())

    def _publish_diff(self, symbol: str) -> None:
        diff = self.exchange.symbols[symbol].take_diff()
        if diff is not None:
            low = symbol.lower()
            self.publish(f"{low}@depth@100ms", diff)
            self.publish(f"{low}@depth", diff)

    async def _flush_depth(self) -> None:
        while True:
            await asyncio.sleep(self.depth_interval)
            for symbol in self.exchange.symbols:
                self._publish_diff(symbol)

    async def _serve_ws(self, conn: _Conn, on_text: Callable[[_Conn, str], None]) -> None:
        self.conns.add(conn)
        age = (
            asyncio.get_running_loop().call_later(self.max_connection_age, conn.close)
            if self.max_connection_age
            else None
        )
        try:
            await conn.serve(lambda text: on_text(conn, text))
        finally:
            if age is not None:
                age.cancel()
            self.conns.discard(conn)

    async def _stream_ws(self, ws: WebSocket) -> None:
        if self.faults.refuse_connections:
            await ws.close()  # before the upgrade: HTTP 403
            return
        await ws.accept()
        self.stream_connects += 1
        conn = _Conn(ws, "stream")
        path = ws.url.path
        if path == "/stream":
            conn.combined = True
            streams = ws.query_params.get("streams", "")
            conn.streams = {s for s in streams.split("/") if s}
        elif path.startswith("/ws/"):
            conn.streams = {path[4:]}
        await self._serve_ws(conn, self._stream_control)

    def _stream_control(self, conn: _Conn, message: str) -> None:
        try:
            req = orjson.loads(message)
            method, rid = req["method"], req.get("id")
            params = req.get("params", [])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            conn.send(orjson.dumps({"code": 3, "msg": "Invalid JSON: expected a JSON object"}).decode())
            return
        result: Any = None
        if method == "SUBSCRIBE":
            conn.streams.update(params)
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(conn.streams)
        elif method == "SET_PROPERTY" and params[:1] == ["combined"]:
            conn.combined = bool(params[1])
        elif method == "GET_PROPERTY" and params[:1] == ["combined"]:
            result = conn.combined
        else:
            conn.send(
                orjson.dumps(
                    {"code": 2, "msg": f"Invalid request: unknown method {method}", "id": rid}
                ).decode()
            )
            return
        conn.send(orjson.dumps({"result": result, "id": rid}).decode())

    # ------------------------------------------------------------------ WebSocket API
    async def _api_ws(self, ws: WebSocket) -> None:
        if self.faults.refuse_connections:
            await ws.close()
            return
        await ws.accept()
        self.api_connects += 1
        await self._serve_ws(_Conn(ws, "api"), self._api_request)

    def _api_request(self, conn: _Conn, message: str) -> None:
        try:
            req = orjson.loads(message)
            rid, method, params = req.get("id"), req["method"], req.get("params") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            conn.send(
                orjson.dumps(
                    {"id": None, "status": 400, "error": {"code": -1000, "msg": "Malformed request."}}
                ).decode()
            )
            return
        try:
            result = self._api_call(conn, method, params)
        except SimError as exc:
            answer = {"id": rid, "status": exc.status, "error": {"code": exc.code, "msg": exc.msg}}
        else:
            answer = {"id": rid, "status": 200, "result": result}
        answer["rateLimits"] = [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight.limit,
                "count": self.weight.used,
            }
        ]
        conn.send(orjson.dumps(answer).decode())

    def _api_call(self, conn: _Conn, method: str, params: dict[str, Any]) -> Any:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.exchange.server_time()}
        if method == "userDataStream.subscribe.signature":
            if self.faults.subscribe_error is not None:
                raise SimError(self.faults.subscribe_error, "Subscription refused by the simulator.")
            account = self.exchange.accounts.get(str(params.get("apiKey", "")))
            if account is None:
                raise SimError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
            payload = ws_payload(params)
            expected = hmac.new(account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if str(params.get("signature", "")).lower() != expected:
                raise SimError(-1022, "Signature for this request is not valid.")
            self._check_time({k: str(v) for k, v in params.items()})
            if account in conn.subscriptions.values():
                raise SimError(-2035, "User Data Stream subscription already active.")
            sub_id = next(conn.sub_ids)
            conn.subscriptions[sub_id] = account
            return {"subscriptionId": sub_id}
        if method == "userDataStream.unsubscribe":
            sub_id = params.get("subscriptionId")
            if sub_id is None:
                conn.subscriptions.clear()
            elif conn.subscriptions.pop(int(sub_id), None) is None:
                raise SimError(-2036, "User Data Stream subscription not active.")
            return {}
        if method == "session.subscriptions":
            return [{"subscriptionId": i} for i in conn.subscriptions]
        raise SimError(-1000, f"Unknown method {method!r}.")

    # ------------------------------------------------------------------ REST plumbing
    def _routes(self) -> list[Any]:
        api, margin = "/api/v3", "/sapi/v1/margin"
        table: list[tuple[str, str, Handler, int, str, bool]] = [
            ("GET", api + "/ping", self._ping, 1, NONE, False),
            ("GET", api + "/time", self._time, 1, NONE, False),
            ("GET", api + "/exchangeInfo", self._exchange_info, 20, NONE, False),
            ("GET", api + "/depth", self._depth, 5, NONE, False),
            ("GET", api + "/trades", self._trades, 25, NONE, False),
            ("GET", api + "/aggTrades", self._agg_trades, 4, NONE, False),
            ("GET", api + "/ticker/bookTicker", self._book_ticker, 2, NONE, False),
            ("GET", api + "/ticker/price", self._price, 2, NONE, False),
            ("GET", api + "/ticker/24hr", self._ticker_24h, 2, NONE, False),
            ("GET", api + "/account", self._account, 20, SIGNED, False),
            ("POST", api + "/order", self._new_order, 1, SIGNED, True),
            ("POST", api + "/order/test", self._test_order, 1, SIGNED, False),
            ("GET", api + "/order", self._query_order, 4, SIGNED, False),
            ("DELETE", api + "/order", self._cancel_order, 1, SIGNED, False),
            ("GET", api + "/openOrders", self._open_orders, 6, SIGNED, False),
            ("GET", api + "/allOrders", self._all_orders, 20, SIGNED, False),
            ("GET", api + "/myTrades", self._my_trades, 20, SIGNED, False),
            ("GET", margin + "/account", self._margin_account, 10, SIGNED, False),
            ("POST", margin + "/order", self._margin_new_order, 6, SIGNED, False),  # UID weight
            ("GET", margin + "/order", self._margin_query_order, 10, SIGNED, False),
            ("DELETE", margin + "/order", self._margin_cancel_order, 10, SIGNED, False),
            ("GET", margin + "/openOrders", self._margin_open_orders, 10, SIGNED, False),
            ("GET", margin + "/myTrades", self._margin_my_trades, 10, SIGNED, False),
        ]
        by_path: dict[str, dict[str, tuple[Handler, int, str, bool]]] = {}
        for method, path, handler, weight, security, order in table:
            by_path.setdefault(path, {})[method] = (handler, weight, security, order)
        routes: list[Any] = [
            Route(path, self._endpoint(path, methods), methods=list(methods))
            for path, methods in by_path.items()
        ]
        routes += [
            WebSocketRoute("/stream", self._stream_ws),
            WebSocketRoute("/ws", self._stream_ws),
            WebSocketRoute("/ws/{stream}", self._stream_ws),
            WebSocketRoute("/ws-api/v3", self._api_ws),
        ]
        return routes

    def _endpoint(self, path: str, methods: dict[str, tuple[Handler, int, str, bool]]) -> Any:
        async def endpoint(request: Request) -> Response:
            handler, weight, security, is_order = methods[request.method]
            raw_query = urlsplit(str(request.url)).query
            raw_body = (await request.body()).decode()
            params = dict(parse_qsl(raw_body, keep_blank_values=True))
            params.update(parse_qsl(raw_query, keep_blank_values=True))  # the query copy wins
            self.requests.append((request.method, path, params))
            if path.endswith("/depth"):
                self.depth_requests += 1
            weight = _request_weight(request.method, path, params, weight)
            headers: dict[str, str] = {}
            try:
                if self.faults.take("rate_limited") or (is_order and self.faults.take("orders_rate_limited")):
                    headers["Retry-After"] = self.faults.retry_after or "1"
                    raise SimError(-1003, "Too many requests; use the websocket for live updates.", 429)
                sapi = path.startswith("/sapi/")
                if not sapi:
                    self._spend_weight(weight, headers)
                account = self._authenticate(request, security, params, raw_query, raw_body)
                if sapi:
                    self._spend_sapi_weight(
                        f"{request.method} {path}", request.method == "POST", account, weight, headers
                    )
                if is_order and account is not None:
                    self._count_order(account, headers)
                body = await handler(params, account)
                status = 200
            except SimError as exc:
                body, status = {"code": exc.code, "msg": exc.msg}, exc.status
                if exc.status in (418, 429):
                    headers["Retry-After"] = headers.get("Retry-After", "1")
            else:
                delays = self.faults.delay_after.get(path)
                if delays:
                    await asyncio.sleep(delays.popleft())
                errors = self.faults.error_after.get(path)
                if errors or (is_order and self.faults.take("fail_after_execute")):
                    body, status = (
                        {
                            "code": -1001,
                            "msg": "Internal error; unable to process your request. "
                            "Please try your request again.",
                        },
                        errors.popleft() if errors else 503,
                    )
            return Response(orjson.dumps(body), status, headers, media_type="application/json;charset=UTF-8")

        return endpoint

    def _spend_weight(self, weight: int, headers: dict[str, str]) -> None:
        now = time.monotonic()
        _, _, suffix = _interval(self.weight.seconds)
        self.weight.expire(now)
        headers[f"X-MBX-USED-WEIGHT-{suffix}"] = str(self.weight.used)
        if now < self.banned_until:
            headers["Retry-After"] = str(math.ceil(self.banned_until - now))
            raise SimError(-1003, _banned_until(now_ms() + int((self.banned_until - now) * 1000)), 418)
        if now < self.retry_until and now - self.refused_at > IN_FLIGHT:  # did not back off: auto-ban
            self.banned_until = now + self.ban_seconds
            headers["Retry-After"] = str(math.ceil(self.ban_seconds))
            raise SimError(-1003, _banned_until(now_ms() + int(self.ban_seconds * 1000)), 418)
        if now < self.retry_until or self.weight.used + weight > self.weight.limit:
            if now >= self.retry_until:
                self.retry_until, self.refused_at = now + self.weight.wait(now, weight), now
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_until - now)))
            interval, num, _ = _interval(self.weight.seconds)
            raise SimError(
                -1003,
                f"Too much request weight used; current limit is {self.weight.limit} request weight per "
                f"{num} {interval}. Please use WebSocket Streams for live updates to avoid polling the API.",
                429,
            )
        self.weight.add(now, weight)
        headers[f"X-MBX-USED-WEIGHT-{suffix}"] = str(self.weight.used)

    def sapi_used(self, endpoint: str, api_key: str | None = None) -> int:
        """The weight `endpoint` ("METHOD path") used this minute: per IP, or per account if `api_key`."""
        window = self.sapi_windows.get((endpoint, api_key or "IP"))
        if window is None:
            return 0
        window.expire(time.monotonic())
        return window.used

    def _spend_sapi_weight(
        self, endpoint: str, per_uid: bool, account: Account | None, weight: int, headers: dict[str, str]
    ) -> None:
        """Charge a /sapi request to its endpoint's IP window, or to the account's UID window of it (margin
        new order)."""
        now = time.monotonic()
        if per_uid and account is not None:
            key, limit, header = (endpoint, account.api_key), self.sapi_uid_limit, "X-SAPI-USED-UID-WEIGHT-1M"
        else:
            key, limit, header = (endpoint, "IP"), self.sapi_ip_limit, "X-SAPI-USED-IP-WEIGHT-1M"
        window = self.sapi_windows.setdefault(key, _Window(limit, 60))
        window.expire(now)
        if window.used + weight > window.limit:
            headers[header] = str(window.used)
            headers["Retry-After"] = str(max(1, math.ceil(window.wait(now, weight))))
            message = f"Too much request weight used; current limit is {window.limit} per 1 MINUTE."
            raise SimError(-1003, message, 429)
        window.add(now, weight)
        headers[header] = str(window.used)

    def _count_order(self, account: Account, headers: dict[str, str]) -> None:
        now = time.monotonic()
        windows = self.order_windows.setdefault(
            account.api_key, [_Window(n, s) for n, s in self.order_limits]
        )
        for window in windows:
            window.expire(now)
            if window.used + 1 > window.limit:
                name, num, _ = _interval(window.seconds)
                raise SimError(
                    -1015,
                    f"Too many new orders; current limit is {window.limit} orders per {num} {name}.",
                    429,
                )
        for window in windows:
            window.add(now, 1)
            headers[f"X-MBX-ORDER-COUNT-{_interval(window.seconds)[2]}"] = str(window.used)

    def _authenticate(
        self, request: Request, security: str, params: dict[str, str], raw_query: str, raw_body: str
    ) -> Account | None:
        if security == NONE:
            return None
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise SimError(-2014, "API-key format invalid.", 401)
        account = self.exchange.accounts.get(key)
        if account is None:
            raise SimError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if security != SIGNED:
            return account
        signature = params.get("signature")
        if not signature:
            raise SimError(
                -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        payload = _without_signature(raw_query) + _without_signature(raw_body)
        expected = hmac.new(account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.lower(), expected):
            raise SimError(-1022, "Signature for this request is not valid.")
        self._check_time(params)
        return account

    def _check_time(self, params: dict[str, str]) -> None:
        try:
            stamp = int(params["timestamp"])
        except (KeyError, ValueError):
            raise SimError(
                -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            ) from None
        window = float(params.get("recvWindow") or 5000)
        if window > 60000:
            raise SimError(-1131, "recvWindow must be less than 60000")
        server = self.exchange.server_time()
        if stamp >= server + 1000:
            raise SimError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server - stamp > window:
            raise SimError(-1021, "Timestamp for this request is outside of the recvWindow.")

    # ------------------------------------------------------------------ REST handlers
    async def _ping(self, p: dict[str, str], a: Account | None) -> Any:
        return {}

    async def _time(self, p: dict[str, str], a: Account | None) -> Any:
        return {"serverTime": self.exchange.server_time()}

    async def _exchange_info(self, p: dict[str, str], a: Account | None) -> Any:
        if "symbol" in p:
            names = [p["symbol"]]
        elif "symbols" in p:
            names = orjson.loads(p["symbols"])
        else:
            names = list(self.exchange.symbols)
        symbols = [self.exchange.symbol(n).spec.to_json() for n in names]
        interval, num, _ = _interval(self.weight.seconds)
        limits = [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": interval,
                "intervalNum": num,
                "limit": self.weight.limit,
            }
        ]
        for limit, seconds in self.order_limits:
            interval, num, _ = _interval(seconds)
            limits.append(
                {"rateLimitType": "ORDERS", "interval": interval, "intervalNum": num, "limit": limit}
            )
        limits.append(
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}
        )
        return {
            "timezone": "UTC",
            "serverTime": self.exchange.server_time(),
            "rateLimits": limits,
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _symbol(self, p: dict[str, str]) -> str:
        symbol = p.get("symbol")
        if not symbol:
            raise SimError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        self.exchange.symbol(symbol)
        return symbol

    async def _depth(self, p: dict[str, str], a: Account | None) -> Any:
        limit = min(int(p.get("limit") or 100), 5000)
        return self.exchange.symbol(self._symbol(p)).depth(limit)

    async def _trades(self, p: dict[str, str], a: Account | None) -> Any:
        limit = min(int(p.get("limit") or 500), 1000)
        rows = list(self.exchange.symbol(self._symbol(p)).trades)
        return rows[-limit:] if limit else []

    async def _agg_trades(self, p: dict[str, str], a: Account | None) -> Any:
        rows = await self._trades(p, a)
        return [
            {
                "a": r["id"],
                "p": r["price"],
                "q": r["qty"],
                "f": r["id"],
                "l": r["id"],
                "T": r["time"],
                "m": r["isBuyerMaker"],
                "M": True,
            }
            for r in rows
        ]

    async def _book_ticker(self, p: dict[str, str], a: Account | None) -> Any:
        state = self.exchange.symbol(self._symbol(p))
        bid, ask = state.bids.best(), state.asks.best()
        return {
            "symbol": state.spec.symbol,
            "bidPrice": _t(bid),
            "bidQty": _t(state.bids.quantity(bid) if bid else None),
            "askPrice": _t(ask),
            "askQty": _t(state.asks.quantity(ask) if ask else None),
        }

    async def _price(self, p: dict[str, str], a: Account | None) -> Any:
        state = self.exchange.symbol(self._symbol(p))
        return {"symbol": state.spec.symbol, "price": _t(state.last_price)}

    async def _ticker_24h(self, p: dict[str, str], a: Account | None) -> Any:
        state = self.exchange.symbol(self._symbol(p))
        book = await self._book_ticker(p, a)
        trades = list(state.trades)
        prices = [Decimal(r["price"]) for r in trades] or [Decimal(0)]
        volume = sum((Decimal(r["qty"]) for r in trades), Decimal(0))
        quote = sum((Decimal(r["quoteQty"]) for r in trades), Decimal(0))
        stamp = now_ms()
        return {
            **book,
            "priceChange": _t(prices[-1] - prices[0]),
            "priceChangePercent": "0.000",
            "weightedAvgPrice": _t(quote / volume if volume else Decimal(0)),
            "prevClosePrice": _t(prices[0]),
            "lastPrice": _t(prices[-1]),
            "lastQty": trades[-1]["qty"] if trades else "0.00000000",
            "openPrice": _t(prices[0]),
            "highPrice": _t(max(prices)),
            "lowPrice": _t(min(prices)),
            "volume": _t(volume),
            "quoteVolume": _t(quote),
            "openTime": stamp - 86400000,
            "closeTime": stamp,
            "firstId": trades[0]["id"] if trades else -1,
            "lastId": trades[-1]["id"] if trades else -1,
            "count": len(trades),
        }

    async def _account(self, p: dict[str, str], a: Account | None) -> Any:
        assert a is not None
        omit = p.get("omitZeroBalances") == "true"
        balances = [
            {"asset": k, "free": _t(v[0]), "locked": _t(v[1])}
            for k, v in sorted(a.balances.items())
            if not (omit and not v[0] and not v[1])
        ]
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": _t(a.maker_rate),
                "taker": _t(a.taker_rate),
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": now_ms(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    def _order_response(self, order: SimOrder, p: dict[str, str]) -> Any:
        kind = p.get("newOrderRespType") or "FULL"
        ack = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.coid,
            "transactTime": order.time,
        }
        if kind == "ACK":
            return ack
        body = {**ack, **order.to_json(query=False)}
        if kind == "FULL":
            body["fills"] = order.fills
        return body

    async def _new_order(self, p: dict[str, str], a: Account | None) -> Any:
        assert a is not None
        order = self.exchange.place(a, self._symbol(p), p)
        return self._order_response(order, p)

    async def _test_order(self, p: dict[str, str], a: Account | None) -> Any:
        return {}

    async def _query_order(self, p: dict[str, str], a: Account | None) -> Any:
        assert a is not None
        return self.exchange.query(a, self._symbol(p), p).to_json()

    async def _cancel_order(self, p: dict[str, str], a: Account | None) -> Any:
        assert a is not None
        order = self.exchange.cancel(a, self._symbol(p), p)
        body = order.to_json(query=False)
        body["origClientOrderId"] = order.coid
        body["clientOrderId"] = p.get("newClientOrderId") or f"cancel{order.order_id}"
        body["transactTime"] = now_ms()
        return body

    async def _open_orders(self, p: dict[str, str], a: Account | None) -> Any:
        assert a is not None
        symbol = p.get("symbol")
        return [
            o.to_json() for o in a.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)
        ]

    async def _all_orders(self, p: dict[str, str], a: Account | None) -> Any:
        assert a is not None
        symbol = self._symbol(p)
        return [o.to_json() for o in a.orders.values() if o.symbol == symbol]

    async def _my_trades(self, p: dict[str, str], a: Account | None) -> Any:
        assert a is not None
        symbol = self._symbol(p)
        order_id = p.get("orderId")
        return [
            t
            for t in a.trades
            if t["symbol"] == symbol and (order_id is None or str(t["orderId"]) == order_id)
        ]

    # cross margin: the same engine over each key's margin account
    def _margin(self, a: Account | None) -> Account:
        assert a is not None
        return self.exchange.margin_accounts[a.api_key]

    async def _margin_account(self, p: dict[str, str], a: Account | None) -> Any:
        m = self._margin(a)
        assets = [
            {
                "asset": k,
                "free": _t(v[0]),
                "locked": _t(v[1]),
                "borrowed": "0.00000000",
                "interest": "0.00000000",
                "netAsset": _t(v[0] + v[1]),
            }
            for k, v in sorted(m.balances.items())
        ]
        return {
            "borrowEnabled": True,
            "marginLevel": "999.00000000",
            "tradeEnabled": True,
            "transferEnabled": True,
            "userAssets": assets,
        }

    async def _margin_new_order(self, p: dict[str, str], a: Account | None) -> Any:
        if p.get("isIsolated", "FALSE").upper() == "TRUE":
            raise SimError(-3052, "This isolated margin pair is not enabled in the simulator.")
        order = self.exchange.place(self._margin(a), self._symbol(p), p)
        body = self._order_response(order, p)
        body["isIsolated"] = False
        return body

    async def _margin_query_order(self, p: dict[str, str], a: Account | None) -> Any:
        return {**self.exchange.query(self._margin(a), self._symbol(p), p).to_json(), "isIsolated": False}

    async def _margin_cancel_order(self, p: dict[str, str], a: Account | None) -> Any:
        return {**await self._cancel_order(p, self._margin(a)), "isIsolated": False}

    async def _margin_open_orders(self, p: dict[str, str], a: Account | None) -> Any:
        return await self._open_orders(p, self._margin(a))

    async def _margin_my_trades(self, p: dict[str, str], a: Account | None) -> Any:
        return await self._my_trades(p, self._margin(a))


def ws_payload(params: dict[str, Any]) -> str:
    """What a WebSocket API request signs: every param but `signature`, sorted by name, `k=v` joined by `&`
    (web-socket-api.md, "SIGNED request example (HMAC)")."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")


def _t(value: Decimal | None) -> str:
    return f"{(value or Decimal(0)).quantize(Decimal('0.00000001')):f}"


def _without_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if not part.startswith("signature=")) if raw else ""


def _request_weight(method: str, path: str, params: dict[str, str], weight: int) -> int:
    """The weights rest-api.md makes depend on the parameters; `weight` otherwise."""
    if path == "/api/v3/depth":
        limit = int(params.get("limit") or 100)
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    if path == "/api/v3/myTrades" and params.get("orderId"):
        return 5
    if method == "GET" and path == "/api/v3/openOrders" and not params.get("symbol"):
        return 80
    return weight


def _banned_until(stamp_ms: int) -> str:
    return (
        f"Way too much request weight used; IP banned until {stamp_ms}. Please use WebSocket Streams for "
        "live updates to avoid bans."
    )
