"""The simulator's matching engine: price-time priority books, balances with reservations, VALR's order
statuses and fee currency rule. Pure and synchronous; the app turns its events into VALR's wire messages."""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from ..kit.book import BookSide

ZERO = Decimal(0)
FEE_STEP = Decimal("1e-8")


def iso_now() -> str:
    """VALR's time format: ISO-8601 UTC with milliseconds and Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fmt(value: Decimal) -> str:
    """Decimal text as VALR sends it (no exponent, no trailing zeros)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class Rejected(Exception):
    """An order VALR refuses: `code` and `message` as VALR sends them."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class PairSpec:
    symbol: str
    base: str
    quote: str
    tick: Decimal
    base_decimals: int
    min_base: Decimal
    min_quote: Decimal
    maker_fee: Decimal = Decimal("-0.0001")  # negative: a maker reward
    taker_fee: Decimal = Decimal("0.001")
    active: bool = True

    def wire(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "baseCurrency": self.base,
            "quoteCurrency": self.quote,
            "shortName": f"{self.base}/{self.quote}",
            "active": self.active,
            "minBaseAmount": fmt(self.min_base),
            "maxBaseAmount": "100",
            "minQuoteAmount": fmt(self.min_quote),
            "maxQuoteAmount": "100000000",
            "tickSize": fmt(self.tick),
            "baseDecimalPlaces": str(self.base_decimals),
            "marginTradingAllowed": False,
            "currencyPairType": "SPOT",
        }


@dataclass
class Account:
    """Balances of one API key (and sub-account); `house` accounts (background participants) are unlimited."""

    name: str
    house: bool = False
    available: dict[str, Decimal] = field(default_factory=dict)
    reserved: dict[str, Decimal] = field(default_factory=dict)
    updated: dict[str, str] = field(default_factory=dict)  # currency -> time of its last change

    def free(self, currency: str) -> Decimal:
        return self.available.get(currency, ZERO)

    def move(self, currency: str, available: Decimal = ZERO, reserved: Decimal = ZERO) -> None:
        self.available[currency] = self.available.get(currency, ZERO) + available
        self.reserved[currency] = self.reserved.get(currency, ZERO) + reserved
        self.updated[currency] = iso_now()


@dataclass
class SimOrder:
    id: str
    customer_order_id: str
    account: Account
    pair: PairSpec
    side: str  # "buy" | "sell"
    type: str  # "limit" | "post-only limit" | "market"
    price: Decimal | None
    quantity: Decimal | None  # base quantity (None: a market order by quote amount)
    quote_amount: Decimal | None
    time_in_force: str
    remaining: Decimal
    seq: int
    status: str = "Placed"
    failed_reason: str = ""
    created: str = field(default_factory=iso_now)
    updated: str = field(default_factory=iso_now)
    executed: Decimal = ZERO
    executed_quote: Decimal = ZERO
    fee: Decimal = ZERO
    fee_currency: str = ""
    reserve_asset: str = ""
    reserve_left: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status in ("Placed", "Active", "Partially Filled")

    def status_wire(self) -> dict[str, object]:
        """ORDER_STATUS_UPDATE / GET /v1/orders/{pair}/orderid/{id}."""
        return {
            "orderId": self.id,
            "orderStatusType": self.status,
            "currencyPair": self.pair.symbol,
            "originalPrice": fmt(self.price) if self.price is not None else "0",
            "remainingQuantity": fmt(self.remaining),
            "originalQuantity": fmt(self.quantity if self.quantity is not None else self.executed),
            "orderSide": self.side,
            "orderType": self.type,
            "failedReason": self.failed_reason,
            "orderUpdatedAt": self.updated,
            "orderCreatedAt": self.created,
            "customerOrderId": self.customer_order_id,
            "timeInForce": self.time_in_force,
        }

    def update_wire(self) -> dict[str, object]:
        """ORDER_STATUS_UPDATE: the status without timeInForce, plus what executed so far."""
        avg = self.executed_quote / self.executed if self.executed else ZERO
        wire = self.status_wire()
        del wire["timeInForce"]
        return wire | {
            "executedPrice": fmt(avg),
            "executedQuantity": fmt(self.executed),
            "executedFee": fmt(self.fee),
        }

    def summary_wire(self) -> dict[str, object]:
        """GET /v1/orders/history/summary/..."""
        avg = self.executed_quote / self.executed if self.executed else ZERO
        return self.status_wire() | {
            "averagePrice": fmt(avg),
            "total": fmt(self.executed_quote),
            "totalFee": fmt(self.fee),
            "feeCurrency": self.fee_currency,
        }

    def open_wire(self, ws: bool = False) -> dict[str, object]:
        """GET /v1/orders/open, or an OPEN_ORDERS_UPDATE entry (`ws`: the remainder is `quantity`)."""
        filled = (self.executed / self.quantity * 100) if self.quantity else ZERO
        return {
            "orderId": self.id,
            "side": self.side,
            ("quantity" if ws else "remainingQuantity"): fmt(self.remaining),
            "price": fmt(self.price or ZERO),
            "currencyPair": self.pair.symbol,
            "createdAt": self.created,
            "originalQuantity": fmt(self.quantity or ZERO),
            "filledPercentage": f"{filled:.2f}",
            "updatedAt": self.updated,
            "status": self.status,
            "type": self.type,
            "timeInForce": self.time_in_force,
            "customerOrderId": self.customer_order_id,
        }


@dataclass
class SimTrade:
    id: str
    pair: PairSpec
    price: Decimal
    quantity: Decimal
    taker_side: str
    traded_at: str
    sequence: int
    maker: SimOrder
    taker: SimOrder
    maker_fee: Decimal
    maker_fee_currency: str
    taker_fee: Decimal
    taker_fee_currency: str

    def public_wire(self, ws: bool = False) -> dict[str, object]:
        """GET /v1/public/{pair}/trades, or NEW_TRADE (`ws`: without sequenceId and quoteVolume)."""
        if ws:
            return {
                "price": fmt(self.price),
                "quantity": fmt(self.quantity),
                "currencyPair": self.pair.symbol,
                "tradedAt": self.traded_at,
                "takerSide": self.taker_side,
                "id": self.id,
            }
        return {
            "price": fmt(self.price),
            "quantity": fmt(self.quantity),
            "currencyPair": self.pair.symbol,
            "tradedAt": self.traded_at,
            "takerSide": self.taker_side,
            "sequenceId": self.sequence,
            "id": self.id,
            "quoteVolume": fmt(self.price * self.quantity),
        }

    def account_wire(self, order: SimOrder, ws: bool = False) -> dict[str, object]:
        """GET /v1/account/{pair}/tradehistory, or NEW_ACCOUNT_TRADE (`ws`: without sequenceId), for the
        owner of `order`."""
        maker = order is self.maker
        fee = self.maker_fee if maker else self.taker_fee
        currency = self.maker_fee_currency if maker else self.taker_fee_currency
        wire: dict[str, object] = {
            "price": fmt(self.price),
            "quantity": fmt(self.quantity),
            "currencyPair": self.pair.symbol,
            "tradedAt": self.traded_at,
            "side": order.side,
            "sequenceId": self.sequence,
            "id": self.id,
            "orderId": order.id,
        }
        if ws:
            del wire["sequenceId"]
        if fee < 0:
            wire |= {"makerReward": fmt(-fee), "makerRewardCurrency": currency}
        else:
            wire |= {"fee": fmt(fee), "feeCurrency": currency}
        return wire


def _price(order: SimOrder) -> Decimal:
    assert order.price is not None
    return order.price


class Book:
    def __init__(self, pair: PairSpec) -> None:
        self.pair = pair
        self.bids: BookSide[SimOrder] = BookSide(True, _price)
        self.asks: BookSide[SimOrder] = BookSide(False, _price)
        self.sequence = 0
        self.last_change = iso_now()

    def side(self, side: str) -> BookSide[SimOrder]:
        return self.bids if side == "buy" else self.asks

    def changed(self) -> None:
        self.sequence += 1
        self.last_change = iso_now()

    def wire(self, depth: int = 40) -> dict[str, object]:
        """The aggregated book as VALR sends it (PascalCase keys)."""
        symbol = self.pair.symbol

        def levels(side: BookSide[SimOrder], name: str) -> list[dict[str, object]]:
            return [
                {"side": name, "quantity": fmt(q), "price": fmt(p), "currencyPair": symbol, "orderCount": n}
                for p, q, n in side.aggregated(depth)
            ]

        return {
            "Asks": levels(self.asks, "sell"),
            "Bids": levels(self.bids, "buy"),
            "LastChange": self.last_change,
            "SequenceNumber": self.sequence,
        }


Listener = Callable[[str, dict[str, object]], None]


class Exchange:
    """Every pair, book, account and order of the simulated VALR.

    `listener(kind, payload)` hears: ("book", {pair}), ("trade", {trade}), ("order", {order}),
    ("balance", {account, currency}), ("failed", {order}).
    """

    def __init__(self, pairs: list[PairSpec]) -> None:
        self.pairs = {p.symbol: p for p in pairs}
        self.books = {p.symbol: Book(p) for p in pairs}
        self.orders: dict[str, SimOrder] = {}
        self.trades: dict[str, deque[SimTrade]] = {p.symbol: deque(maxlen=2000) for p in pairs}
        self.account_trades: dict[str, deque[SimTrade]] = {}  # account name -> its trades
        self.accounts: dict[str, Account] = {}
        self.listeners: list[Listener] = []
        self._seq = itertools.count(1)
        self._trade_seq = itertools.count(1_000_000)
        self.summaries: dict[str, dict[str, Decimal]] = {p.symbol: {} for p in pairs}

    def account(self, name: str, *, house: bool = False) -> Account:
        account = self.accounts.get(name)
        if account is None:
            account = self.accounts[name] = Account(name, house)
        return account

    def _emit(self, kind: str, **payload: object) -> None:
        for listener in self.listeners:
            listener(kind, payload)

    def _balance(self, account: Account, *currencies: str) -> None:
        if not account.house:
            for currency in dict.fromkeys(currencies):
                self._emit("balance", account=account, currency=currency)

    # ------------------------------------------------------------------ placing
    def place(
        self,
        account: Account,
        symbol: str,
        side: str,
        *,
        kind: str,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        quote_amount: Decimal | None = None,
        post_only: bool = False,
        time_in_force: str = "GTC",
        customer_order_id: str = "",
        keep_failed: bool = False,
    ) -> SimOrder:
        """Validate, reserve, match and rest (or expire) one order. Raises Rejected; with `keep_failed`
        a refusal found after validation leaves a Failed order behind (v2's 201 form, v1's async form)
        and is raised with it as `order`."""
        pair = self.pairs.get(symbol)
        if pair is None:
            raise Rejected(-11, f"Invalid currency pair: {symbol}")
        side = side.lower()
        if side not in ("buy", "sell"):
            raise Rejected(-113, "Invalid side")
        if time_in_force not in ("GTC", "IOC", "FOK"):
            raise Rejected(-113, "Invalid time in force")
        if customer_order_id and any(
            o.customer_order_id == customer_order_id and o.account is account and o.is_open
            for o in self.orders.values()
        ):
            raise Rejected(-11502, "Duplicate customer order id's are not allowed")
        step = Decimal(1).scaleb(-pair.base_decimals)
        if quantity is not None:
            if quantity <= 0:
                raise Rejected(-113, "Invalid quantity")
            quantity = quantity.quantize(step, ROUND_DOWN)
        if kind == "limit":
            if price is None or price <= 0 or price % pair.tick:
                raise Rejected(-113, f"Invalid price: must be a multiple of {fmt(pair.tick)}")
            if quantity is None:
                raise Rejected(-113, "Invalid quantity")
            if quantity < pair.min_base or quantity * price < pair.min_quote:
                raise Rejected(-12007, "Minimum order size not met")
        elif (quantity is not None and quantity < pair.min_base) or (
            quote_amount is not None and quote_amount < pair.min_quote
        ):
            raise Rejected(-12007, "Minimum order size not met")
        order = SimOrder(
            id=str(uuid.uuid4()),
            customer_order_id=customer_order_id,
            account=account,
            pair=pair,
            side=side,
            type=("post-only limit" if post_only else "limit") if kind == "limit" else "market",
            price=price if kind == "limit" else None,
            quantity=quantity,
            quote_amount=quote_amount,
            time_in_force=time_in_force if kind == "limit" else "IOC",
            remaining=quantity if quantity is not None else ZERO,
            seq=next(self._seq),
        )
        book = self.books[symbol]
        try:
            self._check(order, book)
        except Rejected as exc:
            if keep_failed:
                order.status, order.failed_reason = "Failed", exc.message
                self.orders[order.id] = order
                self._emit("order", order=order)
                self._emit("failed", order=order)
                exc.order = order  # type: ignore[attr-defined]
            raise
        self.orders[order.id] = order
        self._reserve(order, book)
        self._emit("order", order=order)
        self._match(order, book)
        return order

    def _check(self, order: SimOrder, book: Book) -> None:
        opposite = book.side("sell" if order.side == "buy" else "buy")
        best = opposite.best()
        price = order.price
        if order.type == "post-only limit" and best is not None and price is not None:
            crosses = price >= best if order.side == "buy" else price <= best
            if crosses:
                raise Rejected(-19, "postOnly order would have matched immediately")
        if order.account.house:
            return
        pair = order.pair
        if order.side == "buy":
            need = self._buy_cost(order, opposite)
            if need > order.account.free(pair.quote):
                raise Rejected(-6, "Insufficient Balance")
        else:
            need = order.quantity if order.quantity is not None else self._base_for_quote(order, opposite)
            if need * (1 + max(pair.maker_fee, ZERO)) > order.account.free(pair.base):
                raise Rejected(-6, "Insufficient Balance")

    def _buy_cost(self, order: SimOrder, asks: BookSide[SimOrder]) -> Decimal:
        pair = order.pair
        if order.price is not None and order.quantity is not None:
            return order.price * order.quantity * (1 + max(pair.maker_fee, ZERO))
        if order.quote_amount is not None:
            return order.quote_amount
        left, cost = order.quantity or ZERO, ZERO
        for price in asks.prices():
            take = min(left, sum((o.remaining for o in asks.levels[price]), ZERO))
            cost += take * price
            left -= take
            if not left:
                break
        return cost

    def _base_for_quote(self, order: SimOrder, bids: BookSide[SimOrder]) -> Decimal:
        left, base = order.quote_amount or ZERO, ZERO
        step = Decimal(1).scaleb(-order.pair.base_decimals)
        for price in bids.prices():
            level = sum((o.remaining for o in bids.levels[price]), ZERO)
            take = min(level, (left / price).quantize(step, ROUND_DOWN))
            base += take
            left -= take * price
            if take < level:
                break
        return base

    def _reserve(self, order: SimOrder, book: Book) -> None:
        account, pair = order.account, order.pair
        if account.house:
            return
        if order.side == "buy":
            amount = self._buy_cost(order, book.asks)
            order.reserve_asset = pair.quote
        else:
            need = order.quantity if order.quantity is not None else self._base_for_quote(order, book.bids)
            amount = need * (1 + max(pair.maker_fee, ZERO))
            order.reserve_asset = pair.base
        order.reserve_left = amount
        account.move(order.reserve_asset, -amount, amount)
        self._balance(account, order.reserve_asset)

    def _release(self, order: SimOrder) -> None:
        if order.reserve_left and not order.account.house:
            order.account.move(order.reserve_asset, order.reserve_left, -order.reserve_left)
            order.reserve_left = ZERO
            self._balance(order.account, order.reserve_asset)

    # ------------------------------------------------------------------ matching
    def _match(self, taker: SimOrder, book: Book) -> None:
        opposite = book.side("sell" if taker.side == "buy" else "buy")
        if taker.time_in_force == "FOK" and self._available(taker, opposite) < taker.remaining:
            self._close(taker, "Expired", book)
            return
        step = Decimal(1).scaleb(-taker.pair.base_decimals)
        traded = False
        while True:
            best = opposite.best()
            if best is None:
                break
            if taker.price is not None and (
                best > taker.price if taker.side == "buy" else best < taker.price
            ):
                break
            maker = opposite.levels[best][0]
            if taker.quantity is not None:
                qty = min(taker.remaining, maker.remaining)
            else:  # by quote amount
                left = (taker.quote_amount or ZERO) - taker.executed_quote
                qty = min(maker.remaining, (left / best).quantize(step, ROUND_DOWN))
            if qty <= 0:
                break
            self._trade(maker, taker, best, qty, book, opposite)
            traded = True
            if taker.quantity is not None and not taker.remaining:
                break
        done = taker.quantity is not None and not taker.remaining
        rests = not done and taker.type != "market" and taker.time_in_force == "GTC"
        if traded or rests:
            book.changed()
        if done:
            self._close(taker, "Filled", book)
        elif taker.type == "market":
            # a quote amount spent down to less than one lot counts as filled
            self._close(taker, "Filled" if taker.quantity is None and taker.executed else "Cancelled", book)
        elif not rests:
            self._close(taker, "Expired", book)
        else:
            book.side(taker.side).add(taker)
        if traded or rests:
            self._emit("book", pair=taker.pair)

    def _available(self, taker: SimOrder, opposite: BookSide[SimOrder]) -> Decimal:
        total = ZERO
        for price in opposite.prices():
            if taker.price is not None and (
                price > taker.price if taker.side == "buy" else price < taker.price
            ):
                break
            total += sum((o.remaining for o in opposite.levels[price]), ZERO)
        return total

    def _trade(
        self,
        maker: SimOrder,
        taker: SimOrder,
        price: Decimal,
        qty: Decimal,
        book: Book,
        side: BookSide[SimOrder],
    ) -> None:
        pair = maker.pair
        notional = price * qty
        # VALR's fee currency rule: maker BUY pays in quote, maker SELL in base, taker BUY in base,
        # taker SELL in quote
        if maker.side == "buy":
            maker_fee, maker_cur = (notional * pair.maker_fee).quantize(FEE_STEP, ROUND_HALF_UP), pair.quote
            taker_fee, taker_cur = (notional * pair.taker_fee).quantize(FEE_STEP, ROUND_HALF_UP), pair.quote
        else:
            maker_fee, maker_cur = (qty * pair.maker_fee).quantize(FEE_STEP, ROUND_HALF_UP), pair.base
            taker_fee, taker_cur = (qty * pair.taker_fee).quantize(FEE_STEP, ROUND_HALF_UP), pair.base
        trade = SimTrade(
            id=str(uuid.uuid4()),
            pair=pair,
            price=price,
            quantity=qty,
            taker_side=taker.side,
            traded_at=iso_now(),
            sequence=next(self._trade_seq),
            maker=maker,
            taker=taker,
            maker_fee=maker_fee,
            maker_fee_currency=maker_cur,
            taker_fee=taker_fee,
            taker_fee_currency=taker_cur,
        )
        for order, fee, currency in ((maker, maker_fee, maker_cur), (taker, taker_fee, taker_cur)):
            order.executed += qty
            order.executed_quote += notional
            order.fee += fee
            order.fee_currency = currency
            if order.quantity is not None:
                order.remaining -= qty
            order.updated = trade.traded_at
            self._settle(order, qty, notional, fee, currency)
            if order.status in ("Placed", "Active") and (order.remaining or order.quantity is None):
                order.status = "Partially Filled"
        if not maker.remaining:
            side.remove(maker)
        self.trades[pair.symbol].append(trade)
        for order in (maker, taker):
            if not order.account.house:
                self.account_trades.setdefault(order.account.name, deque(maxlen=2000)).append(trade)
        summary = self.summaries[pair.symbol]
        summary["last"] = price
        summary["high"] = max(summary.get("high", price), price)
        summary["low"] = min(summary.get("low", price), price)
        summary["base_volume"] = summary.get("base_volume", ZERO) + qty
        summary["quote_volume"] = summary.get("quote_volume", ZERO) + notional
        summary.setdefault("open", price)
        self._emit("trade", trade=trade)
        if not maker.remaining:
            self._close(maker, "Filled", book)
        else:
            self._emit("order", order=maker)
        if taker.remaining or taker.quantity is None:
            self._emit("order", order=taker)

    def _settle(self, order: SimOrder, qty: Decimal, notional: Decimal, fee: Decimal, currency: str) -> None:
        """Move funds for one fill: the reserved asset pays, the other is received; the fee per the rule."""
        account, pair = order.account, order.pair
        if account.house:
            return
        if order.side == "buy":
            pay = notional + (fee if currency == pair.quote else ZERO)
            used = min(pay, order.reserve_left)
            order.reserve_left -= used
            account.move(pair.quote, -(pay - used), -used)
            account.move(pair.base, qty - (fee if currency == pair.base else ZERO))
        else:
            pay = qty + (fee if currency == pair.base else ZERO)
            used = min(pay, order.reserve_left)
            order.reserve_left -= used
            account.move(pair.base, -(pay - used), -used)
            account.move(pair.quote, notional - (fee if currency == pair.quote else ZERO))
        self._balance(account, pair.base, pair.quote)

    def _close(self, order: SimOrder, status: str, book: Book) -> None:
        order.status = status
        order.updated = iso_now()
        self._release(order)
        self._emit("order", order=order)

    # ------------------------------------------------------------------ cancelling
    def cancel(
        self, account: Account, symbol: str, *, order_id: str = "", customer_order_id: str = ""
    ) -> SimOrder:
        order = self.find(account, order_id=order_id, customer_order_id=customer_order_id)
        if order is None or not order.is_open or order.pair.symbol != symbol:
            raise Rejected(-1, "Could not find the order to cancel")
        book = self.books[symbol]
        book.side(order.side).remove(order)
        book.changed()
        self._close(order, "Cancelled", book)
        self._emit("book", pair=order.pair)
        return order

    def find(self, account: Account, *, order_id: str = "", customer_order_id: str = "") -> SimOrder | None:
        if order_id:
            order = self.orders.get(order_id)
            return order if order is not None and order.account is account else None
        found = [
            o
            for o in self.orders.values()
            if o.account is account and o.customer_order_id == customer_order_id
        ]
        if not found:
            return None
        open_ = [o for o in found if o.is_open]
        return open_[-1] if open_ else max(found, key=lambda o: o.seq)

    def open_orders(self, account: Account) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.account is account and o.is_open]
