"""Luno on loopback: REST (`/api/1/...`, `/api/exchange/...`), the market stream (`/api/1/stream/PAIR`)
and the user stream (`/api/1/userstream`) on one port, served by uvicorn in the running event loop, with
fault switches.

    async with LunoSimulator() as sim:
        sim.exchange.add_market("XBTZAR", "XBT", "ZAR")
        sim.exchange.add_user(KEY, SECRET, {"XBT": "1", "ZAR": "100000"})
        ... sim.rest_url, sim.ws_url ...
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from moonship_core.testing import AsgiServer

from .. import kit
from ..kit.connection import Connection
from .engine import Exchange, Frame, LunoError, SimOrder, User, now_ms, text

_STATUS_MARKETS = {"ACTIVE": "ACTIVE", "POSTONLY": "POST_ONLY", "DISABLED": "SUSPENDED"}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _bool(value: str | None) -> bool:
    return (value or "").lower() == "true"


class Faults(kit.Faults):
    """The kit's switches (`rate_limited` counts every request; the order placements are postorder,
    marketorder and stoporder) and Luno's own."""

    def __init__(self) -> None:
        super().__init__()
        #: after a fail_after_execute 500, this many further order requests are answered 503 unexecuted (the
        #: exchange stays down through the client's own retries, so the outcome stays unknown to it)
        self.unavailable_after_execute = 0
        #: order requests answered 503 without being executed
        self.fail_before_execute = 0
        #: refuse user stream connections (they are closed right after the credentials)
        self.user_stream_down = False
        #: refuse market stream connections (closed right after the credentials)
        self.market_stream_down = False


def _ignore(text: str) -> None:
    """What a client sends on a stream after its credentials is not read."""


class LunoSimulator:
    """The exchange (`exchange`), its fault switches (`faults`) and the server in front of them."""

    def __init__(
        self,
        *,
        seed: int = 1,
        keepalive: float = 20.0,
        replay_window: float = 300.0,
        auth_timeout: float = 10.0,
        rest_limit: int = 300,
    ) -> None:
        self.exchange = Exchange(seed)
        self.faults = Faults()
        self.keepalive = keepalive
        self.replay_window = replay_window
        self.auth_timeout = auth_timeout
        self.rest_limit = rest_limit
        self.market_conns: dict[str, set[Connection]] = defaultdict(set)
        self.user_conns: dict[str, set[Connection]] = defaultdict(set)
        self._replay: dict[str, deque[tuple[float, str]]] = defaultdict(deque)
        self._calls: dict[str, deque[float]] = defaultdict(deque)
        #: counts by kind: "market_connects", "user_connects", "requests", path of each REST call
        self.stats: dict[str, int] = defaultdict(int)
        self.exchange.market_listeners.append(self._on_market)
        self.exchange.user_listeners.append(self._on_user)
        self.app = Starlette(routes=self._routes())
        self.server = AsgiServer(self.app, ws="websockets-sansio", ws_ping_interval=None)

    # ------------------------------------------------------------------ lifecycle
    @property
    def rest_url(self) -> str:
        return self.server.rest_url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        for conns in (*self.market_conns.values(), *self.user_conns.values()):
            for conn in conns:
                conn.close()
        await self.server.stop()

    async def __aenter__(self) -> LunoSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ fault switches
    def drop_market_streams(self, pair: str | None = None) -> None:
        """Close every market stream (of one pair)."""
        for key, conns in self.market_conns.items():
            if pair in (None, key):
                for conn in conns:
                    conn.close()

    def drop_user_streams(self) -> None:
        for conns in self.user_conns.values():
            for conn in conns:
                conn.close()

    def skip_sequence(self, pair: str) -> None:
        """The next update of `pair` jumps one sequence number (a lost frame, as the clients see it)."""
        self.exchange.market(pair).skip_next += 1

    def malformed_frame(self, pair: str) -> None:
        """Every open market stream of `pair` receives a frame that is not valid JSON."""
        for conn in self.market_conns[pair]:
            conn.send('{"sequence": "1", "create_update": {"order_id": ')

    def go_silent(self, pair: str) -> None:
        """Every open market stream of `pair` goes silent (no updates, no keepalives; pings are still
        answered) but stays open; a new connection is served as usual."""
        for conn in self.market_conns[pair]:
            conn.frozen = True

    def stale_user_streams(self) -> None:
        """Every open user stream goes silent (no messages, no keepalives) but stays open."""
        for conns in self.user_conns.values():
            for conn in conns:
                conn.frozen = True

    # ------------------------------------------------------------------ stream fan-out
    def _on_market(self, pair: str, frame: Frame) -> None:
        data = orjson.dumps(frame).decode()
        for conn in self.market_conns[pair]:
            conn.send(data)

    def _on_user(self, key_id: str, frame: Frame) -> None:
        data = orjson.dumps(frame).decode()
        now = time.monotonic()
        buffer = self._replay[key_id]
        buffer.append((now, data))
        while buffer and buffer[0][0] < now - self.replay_window:
            buffer.popleft()
        for conn in self.user_conns[key_id]:
            conn.send(data)

    def _connection(self, ws: WebSocket) -> Connection:
        """A stream: `""` keepalives in quiet periods; closed 1011 when it ends."""
        return Connection(ws, close_code=1011, keepalive=self.keepalive, keepalive_frame='""')

    async def _authenticate(self, ws: WebSocket) -> User | None:
        """The credentials frame Luno expects first on every websocket."""
        try:
            first = await asyncio.wait_for(ws.receive_text(), self.auth_timeout)
        except TimeoutError:
            await self._refuse(ws, "auth_timeout", "you took too long to provide credentials")
            return None
        except WebSocketDisconnect:
            return None
        try:
            creds = orjson.loads(first)
            user = self.exchange.authenticate(str(creds["api_key_id"]), str(creds["api_key_secret"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            user = None
        if user is None:
            await self._refuse(ws, "invalid_credentials", "invalid credentials")
        return user

    @staticmethod
    async def _refuse(ws: WebSocket, code: str, message: str) -> None:
        with contextlib.suppress(Exception):
            await ws.send_text(orjson.dumps({"error_code": code, "error": message}).decode())
            await ws.close(1000)

    async def _market_stream(self, ws: WebSocket) -> None:
        pair = ws.path_params["pair"]
        await ws.accept()
        if await self._authenticate(ws) is None:
            return
        if pair not in self.exchange.markets:
            await self._refuse(ws, "invalid_market", pair)
            return
        if self.faults.market_stream_down or self.faults.refuse_connections:
            await ws.close(1013)
            return
        self.stats["market_connects"] += 1
        conn = self._connection(ws)
        conn.send(orjson.dumps(self.exchange.snapshot(pair)).decode())
        self.market_conns[pair].add(conn)
        try:
            await conn.serve(_ignore)
        finally:
            self.market_conns[pair].discard(conn)

    async def _user_stream(self, ws: WebSocket) -> None:
        await ws.accept()
        user = await self._authenticate(ws)
        if user is None:
            return
        if self.faults.user_stream_down or self.faults.refuse_connections:
            await ws.close(1013)
            return
        self.stats["user_connects"] += 1
        conn = self._connection(ws)
        since = time.monotonic() - self.replay_window
        for at, data in self._replay[user.key_id]:
            if at >= since:
                conn.send(data)
        self.user_conns[user.key_id].add(conn)
        try:
            await conn.serve(_ignore)
        finally:
            self.user_conns[user.key_id].discard(conn)

    # ------------------------------------------------------------------ REST plumbing
    def _routes(self) -> list[Route | WebSocketRoute]:
        public: list[tuple[str, Callable[[Params], Any]]] = [
            ("/api/exchange/1/markets", self._markets),
            ("/api/1/ticker", self._ticker),
            ("/api/1/tickers", self._tickers),
            ("/api/1/orderbook_top", self._orderbook_top),
            ("/api/1/orderbook", self._orderbook),
            ("/api/1/trades", self._trades),
        ]
        private_get: list[tuple[str, Callable[[User, Params], Any]]] = [
            ("/api/1/balance", self._balance),
            ("/api/1/fee_info", self._fee_info),
            ("/api/1/send/networks", lambda user, params: {"networks": []}),
            ("/api/1/orders/{order_id}", self._order_v1),
            ("/api/exchange/2/orders/{order_id}", self._order_v2),
            ("/api/exchange/3/order", self._order_v3),
            ("/api/1/listorders", self._listorders_v1),
            ("/api/exchange/2/listorders", self._listorders_v2),
            ("/api/1/listtrades", self._listtrades),
        ]
        private_post: list[tuple[str, Callable[[User, Params], Any]]] = [
            ("/api/1/postorder", self._postorder),
            ("/api/1/marketorder", self._marketorder),
            ("/api/1/stoporder", self._stoporder),
        ]
        routes: list[Route | WebSocketRoute] = [
            WebSocketRoute("/api/1/stream/{pair}", self._market_stream),
            WebSocketRoute("/api/1/userstream", self._user_stream),
        ]
        routes += [Route(p, self._endpoint(lambda user, params, f=f: f(params), False)) for p, f in public]
        routes += [Route(p, self._endpoint(f, True)) for p, f in private_get]
        routes += [Route(p, self._endpoint(f, True, order=True), methods=["POST"]) for p, f in private_post]
        return routes

    def _endpoint(
        self, handler: Callable[[User, Params], Any], private: bool, *, order: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            self.stats["requests"] += 1
            self.stats[request.url.path] += 1
            user = self._basic_user(request)
            limited = self.faults.take("rate_limited") or (order and self.faults.take("orders_rate_limited"))
            if limited or not self._within_limit(user.key_id if user else "ip"):
                response = _json({"error": "Too many requests", "error_code": "ErrTooManyRequests"}, 429)
                if self.faults.retry_after is not None:
                    response.headers["Retry-After"] = self.faults.retry_after
                return response
            if private and user is None:
                return _json({"error": "Unauthorised", "error_code": "ErrUnauthorised"}, 401)
            if order and self.faults.take("fail_before_execute"):
                return _json({"error": "Service unavailable", "error_code": "ErrInternal"}, 503)
            params = Params(request)
            if request.method == "POST":
                params.add_form(await request.body())
            try:
                body = handler(user, params)  # type: ignore[arg-type]
            except LunoError as exc:
                return _json(exc.body(), exc.status)
            if order and self.faults.take("fail_after_execute"):
                self.faults.fail_before_execute += self.faults.unavailable_after_execute
                self.faults.unavailable_after_execute = 0
                return _json({"error": "Internal error", "error_code": "ErrInternal"}, 500)
            return _json(body)

        return endpoint

    def _basic_user(self, request: Request) -> User | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            key_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return self.exchange.authenticate(key_id, secret)

    def _within_limit(self, who: str) -> bool:
        now = time.monotonic()
        calls = self._calls[who]
        while calls and calls[0] <= now - 60:
            calls.popleft()
        if len(calls) >= self.rest_limit:
            return False
        calls.append(now)
        return True

    # ------------------------------------------------------------------ public endpoints
    def _markets(self, params: Params) -> Frame:
        wanted = params.getlist("pair")
        return {
            "markets": [
                {
                    "market_id": m.market_id,
                    "trading_status": _STATUS_MARKETS[m.status],
                    "base_currency": m.base,
                    "counter_currency": m.counter,
                    "min_volume": f"{m.min_volume:f}",
                    "max_volume": f"{m.max_volume:f}",
                    "volume_scale": m.volume_scale,
                    "min_price": f"{m.min_price:f}",
                    "max_price": f"{m.max_price:f}",
                    "price_scale": m.price_scale,
                    "fee_scale": 8,
                }
                for m in self.exchange.markets.values()
                if not wanted or m.market_id in wanted
            ]
        }

    def _ticker_of(self, pair: str) -> Frame:
        m = self.exchange.market(pair)
        bid, ask = m.best("BUY"), m.best("SELL")
        day_ago = now_ms() - 86_400_000
        return {
            "pair": m.market_id,
            "timestamp": now_ms(),
            "bid": m.price_text(bid) if bid is not None else "0",
            "ask": m.price_text(ask) if ask is not None else "0",
            "last_trade": m.trades[-1]["price"] if m.trades else "0",
            "rolling_24_hour_volume": text(
                sum((Decimal(t["volume"]) for t in m.trades if t["timestamp"] >= day_ago), Decimal(0))
            ),
            "status": m.status,
        }

    def _ticker(self, params: Params) -> Frame:
        return self._ticker_of(params.get("pair") or "")

    def _tickers(self, params: Params) -> Frame:
        wanted = params.getlist("pair") or list(self.exchange.markets)
        return {"tickers": [self._ticker_of(p) for p in wanted]}

    def _orderbook_top(self, params: Params) -> Frame:
        m = self.exchange.market(params.get("pair"))

        def side(name: str) -> list[Frame]:
            return [
                {"price": m.price_text(p), "volume": m.volume_text(v)} for p, v in m.levels(name)[:100]
            ]

        return {"timestamp": now_ms(), "bids": side("BUY"), "asks": side("SELL")}

    def _orderbook(self, params: Params) -> Frame:
        m = self.exchange.market(params.get("pair"))

        def side(name: str) -> list[Frame]:
            return [
                {"price": m.price_text(o.limit_price), "volume": m.volume_text(o.remaining)}
                for o in m.orders(name)
            ]

        return {"timestamp": now_ms(), "bids": side("BUY"), "asks": side("SELL")}

    def _trades(self, params: Params) -> Frame:
        m = self.exchange.market(params.get("pair"))
        since = params.number("since", now_ms() - 86_400_000)
        if since < now_ms() - 86_400_000 - 60_000:
            raise LunoError(400, "ErrInvalidArguments", "since may not be more than 24h ago")
        rows = [t for t in reversed(m.trades) if t["timestamp"] >= since]
        return {"trades": rows[:100]}

    # ------------------------------------------------------------------ private endpoints
    def _balance(self, user: User, params: Params) -> Frame:
        assets = params.getlist("assets")
        return {
            "balance": [
                {
                    "account_id": a.account_id,
                    "asset": a.asset,
                    "balance": text(a.balance),
                    "reserved": text(a.reserved),
                    "unconfirmed": "0.00",
                    "name": f"{a.asset} Account",
                }
                for a in user.accounts.values()
                if not assets or a.asset in assets
            ]
        }

    def _fee_info(self, user: User, params: Params) -> Frame:
        self.exchange.market(params.get("pair"))
        return {
            "maker_fee": f"{user.maker_fee:f}",
            "taker_fee": f"{user.taker_fee:f}",
            "thirty_day_volume": "0",
        }

    def _postorder(self, user: User, params: Params) -> Frame:
        order = self.exchange.post_limit(
            user,
            params.get("pair"),
            params.get("type"),
            params.get("volume"),
            params.get("price"),
            post_only=_bool(params.get("post_only")),
            time_in_force=params.get("time_in_force") or "GTC",
            client_order_id=params.get("client_order_id"),
        )
        return {"order_id": order.order_id}

    def _marketorder(self, user: User, params: Params) -> Frame:
        # Luno documents a BUY by `counter_volume` (what it spends) and a SELL by `base_volume` (luno-go
        # PostMarketOrderRequest); its answer to the other sizings is not documented: this one is ours
        side = params.get("type")
        if (side, params.get("base_volume") is not None) in (("BUY", True), ("SELL", False)):
            need = "counter_volume" if side == "BUY" else "base_volume"
            raise LunoError(400, "ErrInvalidArguments", f"A {side} market order is sized by {need}")
        order = self.exchange.post_market(
            user,
            params.get("pair"),
            params.get("type"),
            base_volume=params.get("base_volume"),
            counter_volume=params.get("counter_volume"),
            client_order_id=params.get("client_order_id"),
        )
        return {"order_id": order.order_id}

    def _stoporder(self, user: User, params: Params) -> Frame:
        self.exchange.stop(user, params.get("order_id"))
        return {"success": True}

    def _order_v1(self, user: User, params: Params) -> Frame:
        return self.exchange.find(user, params.path("order_id")).v1()

    def _order_v2(self, user: User, params: Params) -> Frame:
        return self.exchange.find(user, params.path("order_id")).v2()

    def _order_v3(self, user: User, params: Params) -> Frame:
        order_id, client_order_id = params.get("id"), params.get("client_order_id")
        if not (order_id or client_order_id):
            raise LunoError(400, "ErrInvalidArguments", "id or client_order_id is required")
        return self.exchange.find(user, order_id, client_order_id).v2()

    def _user_orders(self, user: User, params: Params) -> list[SimOrder]:
        pair = params.get("pair")
        before = params.number("created_before", 0)
        limit = min(params.number("limit", 100), 1000)
        rows = [
            o
            for o in reversed(self.exchange.orders.values())
            if o.user is user and (not pair or o.pair == pair) and (not before or o.created < before)
        ]
        return rows[: max(limit, 0)]

    def _listorders_v1(self, user: User, params: Params) -> Frame:
        state = params.get("state")
        rows = [
            o.v1()
            for o in self._user_orders(user, params)
            if not state or (o.status == "COMPLETE") == (state == "COMPLETE")
        ]
        return {"orders": rows or None}

    def _listorders_v2(self, user: User, params: Params) -> Frame:
        closed = params.get("closed")
        rows = [
            o.v2()
            for o in self._user_orders(user, params)
            if closed is None or (o.status == "COMPLETE") == _bool(closed)
        ]
        return {"orders": rows}

    def _listtrades(self, user: User, params: Params) -> Frame:
        pair = params.get("pair")
        self.exchange.market(pair)
        since, before = params.number("since", 0), params.number("before", 0)
        after_seq, before_seq = params.number("after_seq", 0), params.number("before_seq", 0)
        limit = min(max(params.number("limit", 100), 1), 1000)
        rows = [
            t
            for t in user.trades
            if t["pair"] == pair
            and t["timestamp"] >= since
            and (not before or t["timestamp"] < before)
            and t["sequence"] > after_seq
            and (not before_seq or t["sequence"] < before_seq)
        ]
        if _bool(params.get("sort_desc")):
            rows.reverse()
        return {"trades": rows[:limit] or None}


class Params:
    """Request parameters: the query string, a form body (POST) and path parameters."""

    def __init__(self, request: Request) -> None:
        self._items: list[tuple[str, str]] = list(request.query_params.multi_items())
        self._path = request.path_params

    def add_form(self, body: bytes) -> None:
        """An `application/x-www-form-urlencoded` body."""
        self._items += parse_qsl(body.decode(), keep_blank_values=True)

    def get(self, name: str) -> str | None:
        for key, value in self._items:
            if key == name:
                return value
        return None

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self._items if k == name]

    def number(self, name: str, default: int) -> int:
        value = self.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise LunoError(400, "ErrInvalidArguments", f"invalid {name}") from None

    def path(self, name: str) -> str:
        return str(self._path.get(name, ""))
