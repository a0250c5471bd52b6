"""The simulated Binance spot exchange's state: symbols with filters, accounts with balances, a price-time
matching engine per symbol, public trades, depth update ids, and the user-stream events Binance sends.

Everything here is synchronous and transport-free; `server.py` puts Binance's REST and websocket wire
format around it. Errors are raised as `SimError(code, msg, http_status)`, exactly Binance's.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from ..kit.book import BookSide

D = Decimal
ZERO = D(0)
EIGHT = D("0.00000001")
CENT, LOT, FEE = D("0.01"), D("0.00001"), D("0.001")
ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET")
#: why an order expired (enums.md "Expiry Reasons", user-data-stream.md "Order Expiry Reason")
EXPIRY = {
    "MARKET": "INSUFFICIENT_LIQUIDITY",
    "IOC": "UNFILLED_IOC_QUANTITY_EXPIRED",
    "FOK": "UNFILLED_FOK_ORDER_EXPIRED",
}
COID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.:/_-")


class SimError(Exception):
    """A Binance error answer: `{"code": code, "msg": msg}` with HTTP `status`."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def now_ms() -> int:
    return int(time.time() * 1000)


def text(value: Decimal, places: int = 8) -> str:
    """Binance's fixed-decimal text ("0.01000000")."""
    return f"{value.quantize(D(1).scaleb(-places), ROUND_DOWN):f}"


@dataclass
class SymbolSpec:
    symbol: str
    base: str
    quote: str
    tick: Decimal = CENT
    step: Decimal = LOT
    min_qty: Decimal = LOT
    max_qty: Decimal = Decimal(9000)
    min_price: Decimal = CENT
    max_price: Decimal = Decimal(1000000)
    min_notional: Decimal = Decimal(5)
    market_step: Decimal = ZERO
    market_min: Decimal = ZERO
    market_max: Decimal = Decimal(100)
    status: str = "TRADING"

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "status": self.status,
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": text(self.min_price),
                    "maxPrice": text(self.max_price),
                    "tickSize": text(self.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": text(self.min_qty),
                    "maxQty": text(self.max_qty),
                    "stepSize": text(self.step),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": text(self.market_min),
                    "maxQty": text(self.market_max),
                    "stepSize": text(self.market_step),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": text(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            ],
            "permissions": [],
            "permissionSets": [["SPOT", "MARGIN"]],
            "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE"],
        }


@dataclass
class SimOrder:
    order_id: int
    coid: str
    symbol: str
    side: str  # BUY | SELL
    type: str  # LIMIT | LIMIT_MAKER | MARKET
    tif: str  # GTC | IOC | FOK ("GTC" for LIMIT_MAKER and MARKET, as Binance reports)
    price: Decimal
    qty: Decimal  # 0 for a market order by quote
    quote_qty: Decimal
    account: Account | None  # None: the simulator's anonymous liquidity
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    time: int = field(default_factory=now_ms)
    update_time: int = 0
    locked: Decimal = ZERO  # funds still held for the order
    expiry_reason: str | None = None
    fills: list[dict[str, Any]] = field(default_factory=list)  # FULL response fills of the taker part

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def to_json(self, *, query: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.coid,
            "price": text(self.price),
            "origQty": text(self.qty),
            "executedQty": text(self.executed),
            "origQuoteOrderQty": text(self.quote_qty),
            "cummulativeQuoteQty": text(self.cum_quote),
            "status": self.status,
            "timeInForce": self.tif,
            "type": self.type,
            "side": self.side,
            "workingTime": self.time,
            "selfTradePreventionMode": "NONE",
        }
        if query:
            body.update(
                stopPrice="0.00000000",
                icebergQty="0.00000000",
                time=self.time,
                updateTime=self.update_time or self.time,
                isWorking=self.is_open or self.status == "FILLED",
            )
        if self.expiry_reason:
            body["expiryReason"] = self.expiry_reason
        return body


@dataclass
class Account:
    api_key: str
    secret: str
    balances: dict[str, list[Decimal]] = field(default_factory=dict)  # asset -> [free, locked]
    maker_rate: Decimal = FEE
    taker_rate: Decimal = FEE
    orders: dict[int, SimOrder] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)  # myTrades rows
    changed: set[str] = field(default_factory=set)  # assets changed by the current operation

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, [ZERO, ZERO])[0]

    def add(self, asset: str, free: Decimal = ZERO, locked: Decimal = ZERO) -> None:
        entry = self.balances.setdefault(asset, [ZERO, ZERO])
        entry[0] += free
        entry[1] += locked
        self.changed.add(asset)


def _price(order: SimOrder) -> Decimal:
    return order.price


class SymbolState:
    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        self.bids: BookSide[SimOrder] = BookSide(True, _price)
        self.asks: BookSide[SimOrder] = BookSide(False, _price)
        self.update_id = 1000
        self.pending: dict[tuple[str, Decimal], None] = {}  # changed levels since the last diff
        self.first_pending = 0
        self.trade_ids = itertools.count(1)
        self.trades: deque[dict[str, Any]] = deque(maxlen=1000)  # /trades rows, oldest first
        self.last_price: Decimal | None = None

    def touch(self, side: str, price: Decimal) -> None:
        self.update_id += 1
        if not self.pending:
            self.first_pending = self.update_id
        self.pending[(side, price)] = None

    def book_side(self, side: str) -> BookSide[SimOrder]:
        return self.bids if side == "b" else self.asks

    def depth(self, limit: int) -> dict[str, Any]:
        return {
            "lastUpdateId": self.update_id,
            "bids": [[text(p), text(self.bids.quantity(p))] for p in self.bids.prices()[:limit]],
            "asks": [[text(p), text(self.asks.quantity(p))] for p in self.asks.prices()[:limit]],
        }

    def take_diff(self) -> dict[str, Any] | None:
        """The depthUpdate event covering every change since the last one (None if nothing changed)."""
        if not self.pending:
            return None
        bids, asks = [], []
        for side, price in self.pending:
            level = [text(price), text(self.book_side(side).quantity(price))]
            (bids if side == "b" else asks).append(level)
        self.pending = {}
        return {
            "e": "depthUpdate",
            "E": now_ms(),
            "s": self.spec.symbol,
            "U": self.first_pending,
            "u": self.update_id,
            "b": bids,
            "a": asks,
        }


Listener = Callable[..., None]


class Exchange:
    """Symbols, accounts and matching. Listeners: `on_trade(symbol, event)`, `on_user(account, event)`."""

    def __init__(self) -> None:
        self.symbols: dict[str, SymbolState] = {}
        self.accounts: dict[str, Account] = {}
        self.margin_accounts: dict[str, Account] = {}
        self.order_ids = itertools.count(1)
        self.execution_ids = itertools.count(1)
        self.on_trade: Listener = lambda *a: None
        self.on_user: Listener = lambda *a: None
        self.clock_offset_ms = 0

    def server_time(self) -> int:
        return now_ms() + self.clock_offset_ms

    # ------------------------------------------------------------------ set-up
    def add_symbol(self, spec: SymbolSpec) -> SymbolState:
        state = self.symbols[spec.symbol] = SymbolState(spec)
        return state

    def add_account(self, api_key: str, secret: str, balances: dict[str, str] | None = None) -> Account:
        account = self.accounts[api_key] = Account(api_key, secret)
        margin = self.margin_accounts[api_key] = Account(api_key, secret)
        for asset, amount in (balances or {}).items():
            account.add(asset, D(amount))
            margin.add(asset, D(amount))
        account.changed.clear()
        margin.changed.clear()
        return account

    def symbol(self, symbol: str) -> SymbolState:
        state = self.symbols.get(symbol)
        if state is None:
            raise SimError(-1121, "Invalid symbol.")
        return state

    # ------------------------------------------------------------------ anonymous liquidity
    def set_level(self, symbol: str, side: str, price: Decimal | str, qty: Decimal | str) -> None:
        """Set the anonymous quantity resting at one level (`side` "b" or "a"; 0 removes it)."""
        state = self.symbol(symbol)
        price, qty = D(price), D(qty)
        book = state.book_side(side)
        for order in list(book.levels.get(price, ())):
            if order.account is None:
                book.remove(order)
        if qty > 0:
            book.add(
                SimOrder(
                    0, "", symbol, "BUY" if side == "b" else "SELL", "LIMIT", "GTC", price, qty, ZERO, None
                )
            )
        state.touch(side, price)

    def take(self, symbol: str, side: str, qty: Decimal | str, limit: Decimal | str | None = None) -> None:
        """An anonymous taker order: `side` BUY or SELL `qty`, up to `limit` (market if None)."""
        state = self.symbol(symbol)
        taker = SimOrder(
            0,
            "",
            symbol,
            side,
            "LIMIT" if limit else "MARKET",
            "IOC",
            D(limit) if limit else ZERO,
            D(qty),
            ZERO,
            None,
        )
        self._match(state, taker, None if limit is None else D(limit))

    # ------------------------------------------------------------------ orders
    def place(self, account: Account, symbol: str, p: dict[str, str]) -> SimOrder:
        """Validate and execute a new order as POST /api/v3/order does (params `p` as received)."""
        state = self.symbol(symbol)
        spec = state.spec
        side = p.get("side", "")
        kind = p.get("type", "")
        if side not in ("BUY", "SELL"):
            raise SimError(-1100, "Illegal characters found in parameter 'side'; legal range is 'BUY, SELL'.")
        if not kind:
            raise SimError(-1102, "Mandatory parameter 'type' was not sent, was empty/null, or malformed.")
        if kind not in ORDER_TYPES:
            raise SimError(-1116, "Invalid orderType.")
        tif = p.get("timeInForce")
        if kind == "LIMIT":
            if not tif:
                raise SimError(
                    -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."
                )
            if tif not in ("GTC", "IOC", "FOK"):
                raise SimError(-1115, "Invalid timeInForce.")
        elif tif:
            raise SimError(-1114, "TimeInForce parameter sent when not required.")
        price = self._decimal(p, "price", required=kind != "MARKET")
        if kind == "MARKET" and "price" in p:
            raise SimError(-1106, "Parameter 'price' sent when not required.")
        qty = self._decimal(p, "quantity", required=False)
        quote = self._decimal(p, "quoteOrderQty", required=False)
        if (kind != "MARKET" or quote is None) and qty is None:
            raise SimError(
                -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."
            )
        if kind != "MARKET" and quote is not None:
            raise SimError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        if qty is not None and quote is not None:
            raise SimError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        coid = p.get("newClientOrderId") or f"sim{next(self.order_ids)}x{now_ms()}"
        if len(coid) > 36 or not set(coid) <= COID_CHARS:
            raise SimError(
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        if any(o.coid == coid and o.is_open for o in account.orders.values()):
            raise SimError(-2010, "Duplicate order sent.")
        if spec.status != "TRADING":
            raise SimError(-2010, "Market is closed.")
        self._check_filters(state, kind, side, price, qty, quote)
        order = SimOrder(
            next(self.order_ids),
            coid,
            symbol,
            side,
            kind,
            tif or "GTC",
            price or ZERO,
            qty or ZERO,
            quote or ZERO,
            account,
        )
        opposite = state.asks if side == "BUY" else state.bids
        if kind == "LIMIT_MAKER" and opposite.crosses(opposite.best(), price):
            raise SimError(-2010, "Order would immediately match and take.")
        self._reserve(state, order)
        account.orders[order.order_id] = order
        self._report(order, "NEW")
        if kind == "LIMIT" and tif == "FOK" and self._available(opposite, price) < order.qty:
            order.expiry_reason = EXPIRY["FOK"]
            self._close(order, "EXPIRED")
        else:
            order.fills = self._match(state, order, price)
            if order.is_open:
                if kind == "MARKET" or tif in ("IOC", "FOK"):
                    order.expiry_reason = EXPIRY["MARKET" if kind == "MARKET" else str(tif)]
                    self._close(order, "EXPIRED")
                else:
                    (state.bids if side == "BUY" else state.asks).add(order)
                    state.touch("b" if side == "BUY" else "a", price or ZERO)
        self._positions(account)
        return order

    def cancel(self, account: Account, symbol: str, p: dict[str, str]) -> SimOrder:
        order = self._find(account, symbol, p)
        if order is None or not order.is_open:
            raise SimError(-2011, "Unknown order sent.")
        state = self.symbol(symbol)
        book = state.bids if order.side == "BUY" else state.asks
        book.remove(order)
        state.touch("b" if order.side == "BUY" else "a", order.price)
        self._close(order, "CANCELED", cancel_coid=p.get("newClientOrderId") or f"cancel{now_ms()}")
        self._positions(account)
        return order

    def query(self, account: Account, symbol: str, p: dict[str, str]) -> SimOrder:
        self.symbol(symbol)
        order = self._find(account, symbol, p)
        if order is None:
            raise SimError(-2013, "Order does not exist.")
        return order

    def _find(self, account: Account, symbol: str, p: dict[str, str]) -> SimOrder | None:
        if p.get("orderId"):
            try:
                found = account.orders.get(int(p["orderId"]))
            except ValueError:
                raise SimError(-1100, "Illegal characters found in parameter 'orderId'.") from None
            return found if found is not None and found.symbol == symbol else None
        coid = p.get("origClientOrderId")
        if not coid:
            raise SimError(
                -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        matches = [o for o in account.orders.values() if o.coid == coid and o.symbol == symbol]
        return matches[-1] if matches else None

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _decimal(p: dict[str, str], name: str, *, required: bool) -> Decimal | None:
        raw = p.get(name)
        if raw is None or raw == "":
            if required:
                raise SimError(
                    -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
            return None
        try:
            value = D(raw)
        except ArithmeticError:
            raise SimError(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is "
                "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
            ) from None
        if not value.is_finite() or value <= 0 or "e" in raw.lower():
            raise SimError(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is "
                "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
            )
        if -value.as_tuple().exponent > 8:  # type: ignore[operator]
            raise SimError(-1111, f"Parameter '{name}' has too much precision.")
        return value

    def _check_filters(
        self,
        state: SymbolState,
        kind: str,
        side: str,
        price: Decimal | None,
        qty: Decimal | None,
        quote: Decimal | None,
    ) -> None:
        spec = state.spec
        if price is not None and (price < spec.min_price or price > spec.max_price or price % spec.tick != 0):
            raise SimError(-1013, "Filter failure: PRICE_FILTER")
        if qty is not None:
            if kind == "MARKET" and spec.market_step > 0:
                if qty < spec.market_min or qty > spec.market_max or qty % spec.market_step != 0:
                    raise SimError(-1013, "Filter failure: MARKET_LOT_SIZE")
            elif qty < spec.min_qty or qty > spec.max_qty or qty % spec.step != 0:
                raise SimError(-1013, "Filter failure: LOT_SIZE")
        if quote is not None:
            notional = quote
        else:
            ref = price
            if ref is None:
                ref = (state.asks if side == "BUY" else state.bids).best() or state.last_price
            notional = (ref or ZERO) * (qty or ZERO)
        if notional < spec.min_notional:
            raise SimError(-1013, "Filter failure: NOTIONAL")

    @staticmethod
    def _available(side: BookSide[SimOrder], limit: Decimal | None) -> Decimal:
        total = ZERO
        for price in side.prices():
            if not side.crosses(price, limit):
                break
            total += side.quantity(price)
        return total

    def _reserve(self, state: SymbolState, order: SimOrder) -> None:
        """Lock what the order may spend; -2010 when the account cannot cover it."""
        account = order.account
        assert account is not None
        spec = state.spec
        if order.type != "MARKET":
            asset, need = (
                (spec.quote, order.price * order.qty) if order.side == "BUY" else (spec.base, order.qty)
            )
        elif order.side == "BUY":
            asset = spec.quote
            need = order.quote_qty if order.quote_qty else self._cost(state.asks, order.qty)
        else:
            asset = spec.base
            need = order.qty if order.qty else self._qty_for(state.bids, order.quote_qty, spec.step)
        if account.free(asset) < need:
            raise SimError(-2010, "Account has insufficient balance for requested action.")
        account.add(asset, -need, need)
        order.locked = need

    @staticmethod
    def _cost(side: BookSide[SimOrder], qty: Decimal) -> Decimal:
        cost = ZERO
        for price in side.prices():
            take = min(qty, side.quantity(price))
            cost += take * price
            qty -= take
            if not qty:
                break
        return cost

    @staticmethod
    def _qty_for(side: BookSide[SimOrder], quote: Decimal, step: Decimal) -> Decimal:
        qty = ZERO
        for price in side.prices():
            take = min(side.quantity(price), (quote / price // step) * step)
            qty += take
            quote -= take * price
            if take <= 0 or quote <= 0:
                break
        return qty

    def _match(self, state: SymbolState, taker: SimOrder, limit: Decimal | None) -> list[dict[str, Any]]:
        spec = state.spec
        book = state.asks if taker.side == "BUY" else state.bids
        fills: list[dict[str, Any]] = []
        while True:
            best = book.best()
            if not book.crosses(best, limit) or best is None:
                break
            maker = book.levels[best][0]
            if taker.quote_qty:  # market order by quote amount: as much as the rest buys, to the lot step
                room = ((taker.quote_qty - taker.cum_quote) / best // spec.step) * spec.step
            else:
                room = taker.remaining
            qty = min(room, maker.remaining)
            if qty <= 0:
                break
            tid = next(state.trade_ids)
            stamp = now_ms()
            self._fill(state, maker, best, qty, tid, stamp, maker=True)
            fills.append(self._fill(state, taker, best, qty, tid, stamp, maker=False))
            if not maker.remaining:
                book.remove(maker)
                maker.status = "FILLED"
            state.touch("a" if taker.side == "BUY" else "b", best)
            buyer_maker = taker.side == "SELL"
            row = {
                "id": tid,
                "price": text(best),
                "qty": text(qty),
                "quoteQty": text(best * qty),
                "time": stamp,
                "isBuyerMaker": buyer_maker,
                "isBestMatch": True,
            }
            state.trades.append(row)
            state.last_price = best
            self.on_trade(
                spec.symbol,
                {
                    "e": "trade",
                    "E": stamp,
                    "s": spec.symbol,
                    "t": tid,
                    "p": text(best),
                    "q": text(qty),
                    "T": stamp,
                    "m": buyer_maker,
                    "M": True,
                },
            )
            if not taker.is_open:
                break
        return fills

    def _fill(
        self,
        state: SymbolState,
        order: SimOrder,
        price: Decimal,
        qty: Decimal,
        tid: int,
        stamp: int,
        *,
        maker: bool,
    ) -> dict[str, Any]:
        spec = state.spec
        order.executed += qty
        order.cum_quote += price * qty
        order.update_time = stamp
        if order.quote_qty:  # by quote amount: done when the rest is worth less than one lot here
            full = order.quote_qty - order.cum_quote < price * spec.step
        else:
            full = order.remaining <= 0
        order.status = "FILLED" if full else "PARTIALLY_FILLED"
        account = order.account
        commission, asset = ZERO, spec.base if order.side == "BUY" else spec.quote
        if account is not None:
            rate = account.maker_rate if maker else account.taker_rate
            if order.side == "BUY":
                spend = price * qty
                release = order.price * qty if order.type != "MARKET" else spend
                if order.type == "MARKET" and not order.quote_qty:
                    release = min(spend, order.locked)
                commission = (qty * rate).quantize(EIGHT)
                account.add(spec.quote, release - spend, -release)
                account.add(spec.base, qty - commission)
            else:
                spend = qty
                commission = (price * qty * rate).quantize(EIGHT)
                account.add(spec.base, ZERO, -spend)
                account.add(spec.quote, price * qty - commission)
                release = spend
            order.locked -= release
            if order.status == "FILLED" and order.locked:  # a buy filled below its limit: give back the rest
                account.add(spec.quote if order.side == "BUY" else spec.base, order.locked, -order.locked)
                order.locked = ZERO
            account.trades.append(
                {
                    "symbol": spec.symbol,
                    "id": tid,
                    "orderId": order.order_id,
                    "orderListId": -1,
                    "price": text(price),
                    "qty": text(qty),
                    "quoteQty": text(price * qty),
                    "commission": text(commission),
                    "commissionAsset": asset,
                    "time": stamp,
                    "isBuyer": order.side == "BUY",
                    "isMaker": maker,
                    "isBestMatch": True,
                }
            )
            self._report(
                order,
                "TRADE",
                last_qty=qty,
                last_price=price,
                commission=commission,
                commission_asset=asset,
                trade_id=tid,
                maker=maker,
            )
            if maker:
                self._positions(account)
        return {
            "price": text(price),
            "qty": text(qty),
            "commission": text(commission),
            "commissionAsset": asset,
            "tradeId": tid,
        }

    def _close(self, order: SimOrder, status: str, cancel_coid: str = "") -> None:
        order.status = status
        order.update_time = now_ms()
        account = order.account
        if account is not None and order.locked:
            spec = self.symbols[order.symbol].spec
            asset = spec.quote if order.side == "BUY" else spec.base
            account.add(asset, order.locked, -order.locked)
            order.locked = ZERO
        if status in ("CANCELED", "EXPIRED"):
            self._report(order, status, cancel_coid=cancel_coid)

    def _report(
        self,
        order: SimOrder,
        execution: str,
        *,
        last_qty: Decimal = ZERO,
        last_price: Decimal = ZERO,
        commission: Decimal = ZERO,
        commission_asset: str | None = None,
        trade_id: int = -1,
        maker: bool = False,
        cancel_coid: str = "",
    ) -> None:
        if order.account is None:
            return
        stamp = order.update_time or order.time
        event = {
            "e": "executionReport",
            "E": now_ms(),
            "s": order.symbol,
            "c": cancel_coid or order.coid,
            "S": order.side,
            "o": order.type,
            "f": order.tif,
            "q": text(order.qty),
            "p": text(order.price),
            "P": "0.00000000",
            "F": "0.00000000",
            "g": -1,
            "C": order.coid if cancel_coid else "",
            "x": execution,
            "X": order.status,
            "r": "NONE",
            "i": order.order_id,
            "l": text(last_qty),
            "z": text(order.executed),
            "L": text(last_price),
            "n": text(commission),
            "N": commission_asset,
            "T": stamp,
            "t": trade_id,
            "I": next(self.execution_ids),
            "w": order.is_open and order.tif == "GTC" and order.type != "MARKET",
            "m": maker,
            "M": False,
            "O": order.time,
            "Z": text(order.cum_quote),
            "Y": text(last_price * last_qty),
            "Q": text(order.quote_qty),
            "W": order.time,
            "V": "NONE",
        }
        if order.expiry_reason and execution == "EXPIRED":
            event["eR"] = order.expiry_reason
        self.on_user(order.account, event)

    def _positions(self, account: Account) -> None:
        if not account.changed:
            return
        assets = sorted(account.changed)
        account.changed.clear()
        self.on_user(
            account,
            {
                "e": "outboundAccountPosition",
                "E": now_ms(),
                "u": now_ms(),
                "B": [
                    {"a": a, "f": text(account.balances[a][0]), "l": text(account.balances[a][1])}
                    for a in assets
                ],
            },
        )
