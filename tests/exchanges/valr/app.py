"""The simulated VALR: REST (v1/v2), the trade socket and the account socket on one Starlette app, with
VALR's wire format, signature and timestamp checks, and fault switches."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .. import kit
from ..kit.connection import Connection
from .matching import Account, Exchange, PairSpec, Rejected, SimOrder, SimTrade, fmt, iso_now

TRADE_EVENTS = ("AGGREGATED_ORDERBOOK_UPDATE", "NEW_TRADE", "MARKET_SUMMARY_UPDATE")


def valr_signature(secret: str, timestamp: str, verb: str, path: str, body: bytes, sub_account: str) -> str:
    """HMAC-SHA512(secret, timestamp + VERB + path + body + subaccountId), lowercase hex (VALR's scheme)."""
    message = (timestamp + verb.upper() + path).encode() + body + sub_account.encode()
    return hmac.new(secret.encode(), message, hashlib.sha512).hexdigest()


def default_pairs() -> list[PairSpec]:
    return [
        PairSpec("BTCZAR", "BTC", "ZAR", Decimal("1"), 8, Decimal("0.0001"), Decimal("10")),
        PairSpec("ETHZAR", "ETH", "ZAR", Decimal("1"), 8, Decimal("0.001"), Decimal("10")),
    ]


@dataclass
class Faults(kit.Faults):
    """The kit's switches (`rate_limited` counts signed requests, with x-valr-ratelimited) and VALR's own."""

    #: PINGs get no PONG
    ignore_pings: bool = False
    #: the trade socket sends no market data (PONGs still flow)
    stale_feed: bool = False
    #: the next N signed requests (and websocket upgrades) are refused as expired (HTTP 401, nothing executed)
    stale_timestamp_next: int = 0
    #: how v2 order placement reports a refusal: "400" {code, message} or "201" {orderId, code, message}
    v2_failure_form: str = "400"
    #: NEW_ACCOUNT_TRADE is not sent (fills are only in the REST trade history)
    drop_account_trades: bool = False
    #: added to the REST books' SequenceNumber: VALR's docs do not say the REST and websocket books number
    #: from one counter, so a client must also work when they do not (any offset, negative included)
    rest_sequence_offset: int = 0


#: VALR's answer to a signed request whose X-VALR-TIMESTAMP is too far from server time (HTTP 401; the
#: docs give no body, this one is what the real exchange was observed to send)
EXPIRED = {"code": -11254, "message": "Request has expired"}


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers, media_type="application/json")


class _Conn(Connection):
    """One websocket connection and its subscriptions."""

    def __init__(self, ws: WebSocket, account: Account | None) -> None:
        super().__init__(ws)
        self.account = account
        self.subs: dict[str, set[str] | None] = {}  # event -> pairs (None: all)
        #: stalled (go_silent): open, answers PINGs, carries no events
        self.silent = False

    def wants(self, event: str, pair: str) -> bool:
        if self.silent or event not in self.subs:
            return False
        pairs = self.subs[event]
        return pairs is None or pair in pairs


class ValrSimulator:
    """The simulated exchange: `exchange` holds the state, `faults` the switches, `app` the ASGI app."""

    def __init__(
        self,
        pairs: list[PairSpec] | None = None,
        *,
        timestamp_window_ms: int = 60_000,
        clock_skew_ms: int = 0,
    ) -> None:
        self.exchange = Exchange(pairs or default_pairs())
        self.exchange.listeners.append(self._on_event)
        self.faults = Faults()
        self.status = "online"
        #: a signed request is refused when |server time - X-VALR-TIMESTAMP| exceeds this (ms)
        self.timestamp_window_ms = timestamp_window_ms
        #: server time = real time + this (ms; negative: the server runs behind)
        self.clock_skew_ms = clock_skew_ms
        self.rate_limit_per_min = 2000
        self.secrets: dict[str, str] = {}
        self.trade_conns: set[_Conn] = set()
        self.account_conns: set[_Conn] = set()
        #: every REST request as (verb, path without query)
        self.requests: list[tuple[str, str]] = []
        self.connections = {"trade": 0, "account": 0}
        self.refused = 0  # websocket upgrades refused
        self.pings = {"trade": 0, "account": 0}
        self._minute: dict[str, tuple[int, int]] = {}  # api key -> (minute, count)
        self.app = Starlette(routes=self._routes())

    # ------------------------------------------------------------------ set-up
    def add_key(self, api_key: str, secret: str) -> None:
        self.secrets[api_key] = secret

    def account(self, api_key: str, sub_account: str = "") -> Account:
        return self.exchange.account(f"{api_key}/{sub_account}")

    def fund(self, api_key: str, currency: str, amount: Decimal | str, sub_account: str = "") -> None:
        account = self.account(api_key, sub_account)
        account.move(currency, Decimal(amount))
        self._on_event("balance", {"account": account, "currency": currency})

    def server_ms(self) -> int:
        """The simulated exchange's clock in epoch ms (real time plus `clock_skew_ms`)."""
        return int(time.time() * 1000) + self.clock_skew_ms

    # ------------------------------------------------------------------ faults acting on sockets
    async def drop_connections(self, kind: str | None = None) -> None:
        """Close every websocket (of `kind`: "trade" or "account")."""
        conns = [
            *(self.trade_conns if kind in (None, "trade") else ()),
            *(self.account_conns if kind in (None, "account") else ()),
        ]
        for conn in conns:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.ws.close(1011)

    def go_silent(self) -> None:
        """Stall every open trade socket: it stays open and answers PINGs, but carries no more events (new
        connections are healthy). The books keep changing behind it."""
        for conn in self.trade_conns:
            conn.silent = True

    def send_malformed(self) -> None:
        """A frame that is not JSON and a book with a broken level on every trade socket."""
        for conn in self.trade_conns:
            conn.send("{not json")
            for pair in self.exchange.pairs:
                if conn.wants("AGGREGATED_ORDERBOOK_UPDATE", pair):
                    self.exchange.books[pair].changed()
                    book = self.exchange.books[pair].wire()
                    book["Bids"] = [{"side": "buy", "quantity": "x", "price": "1,0", "currencyPair": pair}]
                    conn.send(self._frame("AGGREGATED_ORDERBOOK_UPDATE", pair, book))

    def publish_book(self, pair: str) -> None:
        """Send the current book again (e.g. after a fault)."""
        self._on_event("book", {"pair": self.exchange.pairs[pair]})

    # ------------------------------------------------------------------ exchange events -> wire
    @staticmethod
    def _frame(kind: str, pair: str | None, data: Any) -> str:
        msg: dict[str, Any] = {"type": kind}
        if pair is not None:
            msg["currencyPairSymbol"] = pair
        msg["data"] = data
        return orjson.dumps(msg).decode()

    def _account_conns(self, account: Account) -> list[_Conn]:
        return [c for c in self.account_conns if c.account is account]

    def _on_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "book":
            pair: PairSpec = payload["pair"]
            if self.faults.stale_feed:
                return
            targets = [c for c in self.trade_conns if c.wants("AGGREGATED_ORDERBOOK_UPDATE", pair.symbol)]
            if targets:
                text = self._frame(
                    "AGGREGATED_ORDERBOOK_UPDATE", pair.symbol, self.exchange.books[pair.symbol].wire()
                )
                for conn in targets:
                    conn.send(text)
        elif kind == "trade":
            self._on_trade(payload["trade"])
        elif kind == "order":
            order: SimOrder = payload["order"]
            conns = self._account_conns(order.account)
            if conns:
                status = self._frame("ORDER_STATUS_UPDATE", None, order.update_wire())
                opened = self._frame(
                    "OPEN_ORDERS_UPDATE",
                    None,
                    [o.open_wire(ws=True) for o in self.exchange.open_orders(order.account)],
                )
                processed = None
                if order.status == "Placed" and not order.executed:
                    processed = self._frame(
                        "ORDER_PROCESSED", None, {"orderId": order.id, "success": True, "failureReason": ""}
                    )
                for conn in conns:
                    if processed is not None:
                        conn.send(processed)
                    if "ORDER_STATUS_UPDATE" in conn.subs:
                        conn.send(status)
                    conn.send(opened)
        elif kind == "failed":
            order = payload["order"]
            for conn in self._account_conns(order.account):
                conn.send(
                    self._frame("FAILED_ORDER", None, {"orderId": order.id, "message": order.failed_reason})
                )
        elif kind == "balance":
            account: Account = payload["account"]
            conns = self._account_conns(account)
            if conns:
                text = self._frame(
                    "BALANCE_UPDATE", None, self._balance_wire(account, payload["currency"], True)
                )
                for conn in conns:
                    conn.send(text)

    def _on_trade(self, trade: SimTrade) -> None:
        symbol = trade.pair.symbol
        if not self.faults.stale_feed:
            public = self._frame("NEW_TRADE", symbol, trade.public_wire(ws=True))
            summary = self._frame("MARKET_SUMMARY_UPDATE", symbol, self._summary(symbol, ws=True))
            for conn in self.trade_conns:
                if conn.wants("NEW_TRADE", symbol):
                    conn.send(public)
                if conn.wants("MARKET_SUMMARY_UPDATE", symbol):
                    conn.send(summary)
        if self.faults.drop_account_trades:
            return
        for order in (trade.maker, trade.taker):
            if order.account.house:
                continue
            text = self._frame("NEW_ACCOUNT_TRADE", symbol, trade.account_wire(order, ws=True))
            for conn in self._account_conns(order.account):
                conn.send(text)

    def _summary(self, symbol: str, ws: bool = False) -> dict[str, Any]:
        book = self.exchange.books[symbol]
        s = self.exchange.summaries[symbol]
        last = s.get("last", Decimal(0))
        opened = s.get("open", last)
        change = (last - opened) / opened * 100 if opened else Decimal(0)
        data = {
            "currencyPairSymbol" if ws else "currencyPair": symbol,
            "askPrice": fmt(book.asks.best() or Decimal(0)),
            "bidPrice": fmt(book.bids.best() or Decimal(0)),
            "lastTradedPrice": fmt(last),
            "previousClosePrice": fmt(opened),
            "baseVolume": fmt(s.get("base_volume", Decimal(0))),
            "quoteVolume": fmt(s.get("quote_volume", Decimal(0))),
            "highPrice": fmt(s.get("high", last)),
            "lowPrice": fmt(s.get("low", last)),
            "created": iso_now(),
            "changeFromPrevious": f"{change:.2f}",
            "markPrice": fmt(last),
        }
        return data

    @staticmethod
    def _balance_wire(account: Account, currency: str, ws: bool) -> dict[str, Any]:
        available = account.available.get(currency, Decimal(0))
        reserved = account.reserved.get(currency, Decimal(0))
        cur: Any = {"shortName": currency, "longName": currency, "decimalPlaces": 8} if ws else currency
        return {
            "currency": cur,
            "available": fmt(available),
            "reserved": fmt(reserved),
            "total": fmt(available + reserved),
            "updatedAt": account.updated.get(currency, iso_now()),
            "lendReserved": "0",
            ("borrowCollateralReserved" if ws else "borrowReserved"): "0",
            "borrowedAmount": "0",
            "totalInReference": fmt(available + reserved),
            "totalInReferenceWeighted": fmt(available + reserved),
            "referenceCurrency": "USDC",
        }

    # ------------------------------------------------------------------ authentication
    def _verify(
        self,
        api_key: str | None,
        timestamp: str | None,
        signature: str | None,
        verb: str,
        path: str,
        body: bytes,
        sub_account: str,
    ) -> Account:
        if not api_key or not timestamp or not signature:
            raise HttpError(
                403, {"code": -11, "message": "API key, signature and timestamp headers are required"}
            )
        secret = self.secrets.get(api_key)
        if secret is None:
            raise HttpError(401, {"code": -11, "message": "Invalid API key"})
        try:
            ts = int(timestamp)  # epoch milliseconds
        except ValueError:
            raise HttpError(401, {"message": "Invalid request timestamp"}) from None
        if self.faults.stale_timestamp_next > 0 or abs(self.server_ms() - ts) > self.timestamp_window_ms:
            self.faults.stale_timestamp_next = max(0, self.faults.stale_timestamp_next - 1)
            raise HttpError(401, dict(EXPIRED))
        expected = valr_signature(secret, timestamp, verb, path, body, sub_account)
        if not hmac.compare_digest(expected, signature):
            raise HttpError(401, {"message": "Request has an invalid signature"})
        return self.account(api_key, sub_account)

    def _rate_limit(self, api_key: str, placing: bool) -> None:
        minute = int(time.time() // 60)
        start, count = self._minute.get(api_key, (minute, 0))
        count = count + 1 if start == minute else 1
        self._minute[api_key] = (minute, count)
        limited = self.faults.take("rate_limited") or (placing and self.faults.take("orders_rate_limited"))
        if limited or count > self.rate_limit_per_min:
            headers = {"x-valr-ratelimited": "true"}
            if self.faults.retry_after is not None:
                headers["Retry-After"] = self.faults.retry_after
            raise HttpError(429, {"message": "Rate limit exceeded"}, headers)

    # ------------------------------------------------------------------ REST
    def _routes(self) -> list[Any]:
        def public(fn: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                self.requests.append((request.method, request.url.path))
                try:
                    result = await fn(request)
                except HttpError as exc:
                    return _json(exc.body, exc.status, exc.headers)
                return result if isinstance(result, Response) else _json(result)

            return endpoint

        def signed(
            fn: Callable[[Request, Account, bytes], Awaitable[Any]],
        ) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                self.requests.append((request.method, request.url.path))
                body = await request.body()
                path = request.scope["raw_path"].decode()
                if request.scope["query_string"]:
                    path += "?" + request.scope["query_string"].decode()
                h = request.headers
                try:
                    account = self._verify(
                        h.get("x-valr-api-key"),
                        h.get("x-valr-timestamp"),
                        h.get("x-valr-signature"),
                        request.method,
                        path,
                        body,
                        h.get("x-valr-sub-account-id", ""),
                    )
                    placing = request.method == "POST" and "/orders/" in request.url.path
                    self._rate_limit(h["x-valr-api-key"], placing)
                    result = await fn(request, account, body)
                except HttpError as exc:
                    return _json(exc.body, exc.status, exc.headers)
                return result if isinstance(result, Response) else _json(result)

            return endpoint

        return [
            Route("/v1/public/time", public(self._time)),
            Route("/v1/public/status", public(self._status)),
            Route("/v1/public/pairs", public(self._pairs)),
            Route("/v1/public/marketsummary", public(self._summaries)),
            Route("/v1/public/{pair}/marketsummary", public(self._pair_summary)),
            Route("/v1/public/{pair}/orderbook", public(self._orderbook)),
            Route("/v1/public/{pair}/trades", public(self._trades)),
            Route("/v1/marketdata/{pair}/orderbook", signed(lambda r, a, b: self._orderbook(r))),
            Route("/v1/marketdata/{pair}/tradehistory", signed(lambda r, a, b: self._trades(r))),
            Route("/v1/account/balances", signed(self._balances)),
            Route("/v1/account/fees/trade", signed(self._fees)),
            Route("/v1/account/{pair}/tradehistory", signed(self._account_trades)),
            Route("/v1/orders/limit", signed(self._place_v1("limit")), methods=["POST"]),
            Route("/v1/orders/market", signed(self._place_v1("market")), methods=["POST"]),
            Route("/v2/orders/limit", signed(self._place_v2("limit")), methods=["POST"]),
            Route("/v2/orders/market", signed(self._place_v2("market")), methods=["POST"]),
            Route("/v1/orders/order", signed(self._cancel(202)), methods=["DELETE"]),
            Route("/v2/orders/order", signed(self._cancel(200)), methods=["DELETE"]),
            Route("/v1/orders/open", signed(self._open_orders)),
            Route("/v1/orders/history/summary/{kind}/{key}", signed(self._order_summary)),
            Route("/v1/orders/{pair}/{kind}/{key}", signed(self._order_status)),
            WebSocketRoute("/ws/trade", self._trade_socket),
            WebSocketRoute("/ws/account", self._account_socket),
        ]

    async def _time(self, request: Request) -> Any:
        """VALR's server time: `epochTime` in whole SECONDS, `time` ISO-8601 UTC with milliseconds."""
        ms = self.server_ms()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
        return {"epochTime": ms // 1000, "time": stamp}

    async def _status(self, request: Request) -> Any:
        return {"status": self.status}

    async def _pairs(self, request: Request) -> Any:
        return [p.wire() for p in self.exchange.pairs.values()]

    def _pair(self, request: Request) -> str:
        pair = str(request.path_params["pair"]).upper()
        if pair not in self.exchange.pairs:
            raise HttpError(400, {"code": -11, "message": f"Invalid currency pair: {pair}"})
        return pair

    async def _summaries(self, request: Request) -> Any:
        return [self._summary(p) for p in self.exchange.pairs]

    async def _pair_summary(self, request: Request) -> Any:
        return self._summary(self._pair(request))

    async def _orderbook(self, request: Request) -> Any:
        wire = self.exchange.books[self._pair(request)].wire()
        sequence = wire["SequenceNumber"]
        assert isinstance(sequence, int)
        wire["SequenceNumber"] = sequence + self.faults.rest_sequence_offset
        return wire

    async def _trades(self, request: Request) -> Any:
        pair = self._pair(request)
        limit = min(int(request.query_params.get("limit", "100")), 100)
        trades = list(reversed(self.exchange.trades[pair]))
        before = request.query_params.get("beforeId")
        if before:
            ids = [t.id for t in trades]
            trades = trades[ids.index(before) + 1 :] if before in ids else []
        return [t.public_wire() for t in trades[:limit]]

    async def _balances(self, request: Request, account: Account, body: bytes) -> Any:
        currencies = sorted(set(account.available) | set(account.reserved))
        rows = [self._balance_wire(account, c, False) for c in currencies]
        if request.query_params.get("excludeZeroBalances") == "true":
            rows = [r for r in rows if r["total"] != "0"]
        return rows

    async def _fees(self, request: Request, account: Account, body: bytes) -> Any:
        return [
            {
                "currencyPair": p.symbol,
                "makerPercentage": fmt(p.maker_fee * 100),
                "takerPercentage": fmt(p.taker_fee * 100),
            }
            for p in self.exchange.pairs.values()
        ]

    async def _account_trades(self, request: Request, account: Account, body: bytes) -> Any:
        pair = self._pair(request)
        limit = min(int(request.query_params.get("limit", "100")), 100)
        trades = [
            t for t in reversed(self.exchange.account_trades.get(account.name, ())) if t.pair.symbol == pair
        ]
        rows = []
        for trade in trades[:limit]:
            for order in (trade.taker, trade.maker):  # a self-trade shows both sides
                if order.account is account:
                    rows.append(trade.account_wire(order))
        return rows

    @staticmethod
    def _parse_order(body: bytes, kind: str) -> dict[str, Any]:
        try:
            data = orjson.loads(body)
            if not isinstance(data, dict):
                raise ValueError
            out: dict[str, Any] = {
                "symbol": str(data["pair"]).upper(),
                "side": str(data["side"]),
                "customer_order_id": str(data.get("customerOrderId") or ""),
            }
            if kind == "limit":
                out |= {
                    "quantity": Decimal(str(data["quantity"])),
                    "price": Decimal(str(data["price"])),
                    "post_only": bool(data.get("postOnly", False)),
                    "time_in_force": str(data.get("timeInForce", "GTC")),
                }
            elif "baseAmount" in data:
                out["quantity"] = Decimal(str(data["baseAmount"]))
            else:
                out["quote_amount"] = Decimal(str(data["quoteAmount"]))
        except (ValueError, KeyError, TypeError, InvalidOperation, orjson.JSONDecodeError):
            raise HttpError(400, {"code": -113, "message": "Invalid JSON payload"}) from None
        coid = out["customer_order_id"]
        if coid and (len(coid) > 50 or not coid.replace("-", "").isalnum()):
            raise HttpError(400, {"code": -113, "message": "Invalid customerOrderId"})
        return out

    def _place_v2(self, kind: str) -> Callable[[Request, Account, bytes], Awaitable[Any]]:
        async def place(request: Request, account: Account, body: bytes) -> Any:
            args = self._parse_order(body, kind)
            form = self.faults.v2_failure_form
            try:
                order = self.exchange.place(account, kind=kind, keep_failed=form == "201", **args)
            except Rejected as exc:
                failed: SimOrder | None = getattr(exc, "order", None)
                if failed is not None:
                    return _json({"orderId": failed.id, "code": exc.code, "message": exc.message}, 201)
                raise HttpError(400, {"code": exc.code, "message": exc.message}) from None
            if self.faults.take("fail_after_execute"):
                return _json({"message": "An unexpected error occurred"}, 500)
            return _json({"id": order.id}, 201)

        return place

    def _place_v1(self, kind: str) -> Callable[[Request, Account, bytes], Awaitable[Any]]:
        async def place(request: Request, account: Account, body: bytes) -> Any:
            args = self._parse_order(body, kind)
            try:
                order = self.exchange.place(account, kind=kind, keep_failed=True, **args)
            except Rejected as exc:
                failed: SimOrder | None = getattr(exc, "order", None)
                if failed is None:
                    raise HttpError(400, {"code": exc.code, "message": exc.message}) from None
                order = failed
            return _json({"id": order.id}, 202)

        return place

    def _cancel(self, status: int) -> Callable[[Request, Account, bytes], Awaitable[Any]]:
        async def cancel(request: Request, account: Account, body: bytes) -> Any:
            try:
                data = orjson.loads(body)
                pair = str(data["pair"]).upper()
                order_id, coid = str(data.get("orderId") or ""), str(data.get("customerOrderId") or "")
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                raise HttpError(400, {"code": -113, "message": "Invalid JSON payload"}) from None
            if bool(order_id) == bool(coid):
                raise HttpError(
                    400, {"code": -113, "message": "Specify exactly one of orderId or customerOrderId"}
                )
            try:
                self.exchange.cancel(account, pair, order_id=order_id, customer_order_id=coid)
            except Rejected as exc:
                raise HttpError(400, {"code": exc.code, "message": exc.message}) from None
            return _json({"id": str(uuid.uuid4())} if status == 200 else None, status)

        return cancel

    async def _open_orders(self, request: Request, account: Account, body: bytes) -> Any:
        return [o.open_wire() for o in self.exchange.open_orders(account)]

    def _lookup(self, account: Account, kind: str, key: str) -> SimOrder:
        if kind == "orderid":
            order = self.exchange.find(account, order_id=key)
        elif kind == "customerorderid":
            order = self.exchange.find(account, customer_order_id=key)
        else:
            raise HttpError(404, {"message": "Not found"})
        if order is None:
            raise HttpError(400, {"code": -1, "message": "Invalid Order. "})
        return order

    async def _order_summary(self, request: Request, account: Account, body: bytes) -> Any:
        order = self._lookup(account, request.path_params["kind"], request.path_params["key"])
        if order.is_open:  # the summary exists only once the order is closed
            raise HttpError(400, {"code": -1, "message": "Invalid Order. "})
        return order.summary_wire()

    async def _order_status(self, request: Request, account: Account, body: bytes) -> Any:
        self._pair(request)
        return self._lookup(account, request.path_params["kind"], request.path_params["key"]).status_wire()

    # ------------------------------------------------------------------ websockets
    async def _serve(
        self, kind: str, conn: _Conn, conns: set[_Conn], on_text: Callable[[_Conn, Any], None]
    ) -> None:
        def received(text: str) -> None:
            try:
                msg = orjson.loads(text)
            except orjson.JSONDecodeError:
                return
            if not isinstance(msg, dict):
                return
            if msg.get("type") == "PING":
                self.pings[kind] += 1
                if not self.faults.ignore_pings:
                    conn.send('{"type":"PONG"}')
                return
            on_text(conn, msg)

        conns.add(conn)
        try:
            await conn.serve(received)
        finally:
            conns.discard(conn)

    def _ws_account(self, ws: WebSocket, path: str, required: bool) -> Account | None:
        h = ws.headers
        if not required and not h.get("x-valr-api-key"):
            return None
        return self._verify(
            h.get("x-valr-api-key"),
            h.get("x-valr-timestamp"),
            h.get("x-valr-signature"),
            "GET",
            path,
            b"",
            h.get("x-valr-sub-account-id", ""),
        )

    async def _admit(self, ws: WebSocket, kind: str, *, required: bool) -> tuple[bool, Account | None]:
        """Check a socket's signature (and the refuse-connections fault); accept it or close it."""
        try:
            account = self._ws_account(ws, f"/ws/{kind}", required=required)
            if self.faults.refuse_connections:
                raise HttpError(503, {})
        except HttpError as exc:
            self.refused += 1
            if "websocket.http.response" in ws.scope.get("extensions", {}):
                # the upgrade is answered like a REST refusal: status and JSON body (e.g. 401 expired)
                await ws.send_denial_response(_json(exc.body, exc.status, exc.headers))
            else:
                await ws.close(1008)
            return False, None
        await ws.accept()
        self.connections[kind] += 1
        return True, account

    async def _trade_socket(self, ws: WebSocket) -> None:
        admitted, account = await self._admit(ws, "trade", required=False)
        if admitted:
            conn = _Conn(ws, account)
            if account is not None:  # a signed trade socket is told so too (clients wait for it)
                conn.send('{"type":"AUTHENTICATED"}')
            await self._serve("trade", conn, self.trade_conns, self._on_trade_message)

    def _on_trade_message(self, conn: _Conn, msg: dict[str, Any]) -> None:
        if msg.get("type") != "SUBSCRIBE":
            return
        for sub in msg.get("subscriptions") or ():
            event = sub.get("event")
            if event not in TRADE_EVENTS:
                continue
            pairs = sub.get("pairs")
            if pairs is not None and not pairs:
                conn.subs.pop(event, None)
                continue
            before = conn.subs.get(event, set())
            conn.subs[event] = None if pairs is None else {str(p).upper() for p in pairs}
            if event == "AGGREGATED_ORDERBOOK_UPDATE" and not self.faults.stale_feed:
                for pair in self.exchange.pairs:
                    if conn.wants(event, pair) and (before is not None and pair not in before):
                        conn.send(self._frame(event, pair, self.exchange.books[pair].wire()))

    async def _account_socket(self, ws: WebSocket) -> None:
        admitted, account = await self._admit(ws, "account", required=True)
        if not admitted:
            return
        conn = _Conn(ws, account)
        conn.send('{"type":"AUTHENTICATED"}')
        await self._serve("account", conn, self.account_conns, self._on_account_message)

    def _on_account_message(self, conn: _Conn, msg: dict[str, Any]) -> None:
        if msg.get("type") == "SUBSCRIBE":
            for sub in msg.get("subscriptions") or ():
                if sub.get("event") == "ORDER_STATUS_UPDATE":
                    conn.subs["ORDER_STATUS_UPDATE"] = None
