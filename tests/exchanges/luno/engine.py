"""The simulated Luno exchange: markets, users with accounts, individual orders matched by price-time
priority, and the frames its market and user streams publish (Luno's wire format, field for field)."""

from __future__ import annotations

import random
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from ..kit.book import BookSide

ZERO = Decimal(0)
FEE_QUANTUM = Decimal("1e-8")
_ID_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CLIENT_ID = re.compile(r"[0-9A-Za-z_;,.\-]{1,255}")

Frame = dict[str, Any]


def now_ms() -> int:
    return int(time.time() * 1000)


def text(value: Decimal, places: int = 8) -> str:
    """A decimal as Luno sends it: fixed number of places."""
    return f"{value.quantize(Decimal(1).scaleb(-places), ROUND_DOWN):f}"


class LunoError(Exception):
    """A request Luno refuses: HTTP status, `error_code` and `error`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": self.message, "error_code": self.code}


@dataclass
class Account:
    owner: str  # the user's key id
    account_id: str
    asset: str
    balance: Decimal = ZERO
    reserved: Decimal = ZERO
    row_index: int = 0

    @property
    def available(self) -> Decimal:
        return self.balance - self.reserved


@dataclass
class User:
    key_id: str
    secret: str
    accounts: dict[str, Account] = field(default_factory=dict)
    maker_fee: Decimal = ZERO
    taker_fee: Decimal = Decimal("0.001")
    client_order_ids: dict[str, str] = field(default_factory=dict)  # client order id -> order id
    trades: list[Frame] = field(default_factory=list)  # listtrades rows, oldest first


@dataclass
class SimOrder:
    order_id: str
    user: User
    market: SimMarket
    side: str  # BUY | SELL
    kind: str  # LIMIT | MARKET
    client_order_id: str = ""
    limit_price: Decimal = ZERO
    limit_volume: Decimal = ZERO
    post_only: bool = False
    time_in_force: str = "GTC"
    status: str = "PENDING"  # AWAITING | PENDING | COMPLETE
    base: Decimal = ZERO
    counter: Decimal = ZERO
    fee_base: Decimal = ZERO
    fee_counter: Decimal = ZERO
    created: int = field(default_factory=now_ms)
    completed: int = 0
    expired: int = 0
    reserved: Decimal = ZERO  # still held for this resting order

    @property
    def remaining(self) -> Decimal:
        return self.limit_volume - self.base

    @property
    def pair(self) -> str:
        return self.market.market_id

    def v1(self) -> Frame:
        """GET /api/1/orders/{id} and /api/1/listorders."""
        order_type = ("BID" if self.side == "BUY" else "ASK") if self.kind == "LIMIT" else self.side
        return {
            "order_id": self.order_id,
            "creation_timestamp": self.created,
            "expiration_timestamp": self.expired,
            "completed_timestamp": self.completed,
            "type": order_type,
            "state": "COMPLETE" if self.status == "COMPLETE" else "PENDING",
            "limit_price": text(self.limit_price),
            "limit_volume": text(self.limit_volume),
            "base": text(self.base),
            "counter": text(self.counter),
            "fee_base": text(self.fee_base),
            "fee_counter": text(self.fee_counter),
            "pair": self.pair,
            "client_order_id": self.client_order_id,
            "time_in_force": self.time_in_force if self.kind == "LIMIT" else "",
        }

    def v2(self) -> Frame:
        """GET /api/exchange/2/orders/{id}, /api/exchange/3/order and /api/exchange/2/listorders."""
        accounts = self.user.accounts
        base, counter = accounts.get(self.market.base), accounts.get(self.market.counter)
        return {
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "pair": self.pair,
            "side": self.side,
            "type": self.kind,
            "status": self.status,
            "limit_price": text(self.limit_price),
            "limit_volume": text(self.limit_volume),
            "base": text(self.base),
            "counter": text(self.counter),
            "fee_base": text(self.fee_base),
            "fee_counter": text(self.fee_counter),
            "creation_timestamp": self.created,
            "expiration_timestamp": self.expired,
            "completed_timestamp": self.completed,
            "time_in_force": self.time_in_force if self.kind == "LIMIT" else "",
            "stop_price": "0",
            "stop_direction": "",
            "base_account_id": base.account_id if base is not None else "0",
            "counter_account_id": counter.account_id if counter is not None else "0",
        }


@dataclass
class SimMarket:
    market_id: str
    base: str
    counter: str
    price_scale: int
    volume_scale: int
    min_volume: Decimal
    max_volume: Decimal
    min_price: Decimal
    max_price: Decimal
    status: str = "ACTIVE"  # stream vocabulary: ACTIVE | POSTONLY | DISABLED
    sequence: int = 1000
    trade_seq: int = 500
    bids: BookSide[SimOrder] = field(default_factory=lambda: BookSide(True, _limit_price))
    asks: BookSide[SimOrder] = field(default_factory=lambda: BookSide(False, _limit_price))
    trades: deque[Frame] = field(default_factory=lambda: deque(maxlen=10000))  # public, oldest first
    skip_next: int = 0

    @property
    def tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.price_scale)

    @property
    def lot(self) -> Decimal:
        return Decimal(1).scaleb(-self.volume_scale)

    def price_text(self, price: Decimal) -> str:
        return text(price, self.price_scale)

    def volume_text(self, volume: Decimal) -> str:
        return text(volume, self.volume_scale)

    def side(self, side: str) -> BookSide[SimOrder]:
        """One book side (BUY: bids)."""
        return self.bids if side == "BUY" else self.asks

    def best(self, side: str) -> Decimal | None:
        return self.side(side).best()

    def levels(self, side: str) -> list[tuple[Decimal, Decimal]]:
        """Aggregated levels, best first."""
        return [(price, quantity) for price, quantity, _ in self.side(side).aggregated()]

    def orders(self, side: str) -> list[SimOrder]:
        """Resting orders, best price first, queue order within a price."""
        return self.side(side).orders()

    def rest(self, order: SimOrder) -> None:
        self.side(order.side).add(order)

    def unrest(self, order: SimOrder) -> bool:
        return self.side(order.side).remove(order)


def _limit_price(order: SimOrder) -> Decimal:
    return order.limit_price


class Exchange:
    """All markets and users of one simulated Luno. Frames for the streams go to the two listeners."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.markets: dict[str, SimMarket] = {}
        self.users: dict[str, User] = {}
        self.orders: dict[str, SimOrder] = {}
        self._account_ids = 8203463422864000000
        #: (pair, frame) for every market stream update
        self.market_listeners: list[Callable[[str, Frame], None]] = []
        #: (user key id, frame) for every user stream message
        self.user_listeners: list[Callable[[str, Frame], None]] = []

    # ------------------------------------------------------------------ set-up
    def add_market(
        self,
        market_id: str,
        base: str,
        counter: str,
        *,
        price_scale: int = 2,
        volume_scale: int = 4,
        min_volume: str = "0.0005",
        max_volume: str = "100",
        min_price: str = "100",
        max_price: str = "10000000",
    ) -> SimMarket:
        market = SimMarket(
            market_id, base, counter, price_scale, volume_scale, Decimal(min_volume), Decimal(max_volume),
            Decimal(min_price), Decimal(max_price),
        )
        self.markets[market_id] = market
        return market

    def add_user(
        self, key_id: str, secret: str, balances: dict[str, str], *, maker_fee: str = "0",
        taker_fee: str = "0.001",
    ) -> User:
        user = User(key_id, secret, maker_fee=Decimal(maker_fee), taker_fee=Decimal(taker_fee))
        for asset, amount in balances.items():
            self._account_ids += self.rng.randrange(1, 1000)
            user.accounts[asset] = Account(key_id, str(self._account_ids), asset, Decimal(amount))
        self.users[key_id] = user
        return user

    def authenticate(self, key_id: str, secret: str) -> User | None:
        user = self.users.get(key_id)
        return user if user is not None and user.secret == secret else None

    def market(self, pair: str | None) -> SimMarket:
        market = self.markets.get(pair or "")
        if market is None:
            raise LunoError(400, "ErrInvalidMarketPair", "Market pair is invalid")
        return market

    def new_order_id(self) -> str:
        while True:
            oid = "BX" + "".join(self.rng.choice(_ID_CHARS) for _ in range(13))
            if oid not in self.orders:
                return oid

    # ------------------------------------------------------------------ market status
    def set_status(self, pair: str, status: str) -> None:
        """ACTIVE, POSTONLY or DISABLED; published as a status update."""
        market = self.market(pair)
        market.status = status
        self._publish(market, {"status_update": {"status": status}})

    # ------------------------------------------------------------------ orders
    def post_limit(
        self,
        user: User,
        pair: str | None,
        order_type: str | None,
        volume: str | None,
        price: str | None,
        *,
        post_only: bool = False,
        time_in_force: str = "GTC",
        client_order_id: str | None = None,
    ) -> SimOrder:
        market = self.market(pair)
        if order_type not in ("BID", "ASK"):
            raise LunoError(400, "ErrInvalidOrderSide", "Order side is invalid")
        if time_in_force not in ("GTC", "IOC", "FOK"):
            raise LunoError(400, "ErrInvalidArguments", "Invalid time_in_force")
        if post_only and time_in_force != "GTC":
            raise LunoError(400, "ErrPostOnlyNotAllowed", "IOC and FOK orders cannot be post-only")
        vol = self._amount(volume, market.volume_scale, "Volume")
        px = self._amount(price, market.price_scale, "Price")
        self._check_open(market, post_only)
        if vol < market.min_volume:
            raise LunoError(400, "ErrVolumeTooLow", "Volume is below the minimum")
        if vol > market.max_volume:
            raise LunoError(400, "ErrVolumeTooHigh", "Volume is above the maximum")
        if px < market.min_price:
            raise LunoError(400, "ErrPriceTooLow", "Price is below the minimum")
        if px > market.max_price:
            raise LunoError(400, "ErrPriceTooHigh", "Price is above the maximum")
        self._check_client_order_id(user, client_order_id)
        side = "BUY" if order_type == "BID" else "SELL"
        asset = market.counter if side == "BUY" else market.base
        hold = px * vol if side == "BUY" else vol
        account = self._account(user, asset)
        if account.available < hold:
            raise LunoError(400, "ErrInsufficientFunds", "Account has insufficient funds")
        crosses = self._crossing_volume(market, side, px)
        if post_only and crosses > 0:
            raise LunoError(400, "ErrOrderCanceled", "Your post-only order was cancelled before trading")
        order = SimOrder(
            self.new_order_id(), user, market, side, "LIMIT", client_order_id or "", px, vol,
            post_only, time_in_force,
        )
        self._register(order)
        self._reserve(account, hold)
        order.reserved = hold
        self._status(order)
        frame: Frame = {}
        if time_in_force == "FOK" and crosses < vol:
            self._finish(order, expired=True)
        else:
            trades = self._match(market, order, limit=px, base_left=vol)
            if trades:
                frame["trade_updates"] = trades
            if order.remaining > 0 and time_in_force == "GTC":
                market.rest(order)
                frame["create_update"] = {
                    "order_id": order.order_id,
                    "type": order_type,
                    "price": market.price_text(px),
                    "volume": market.volume_text(order.remaining),
                }
            elif order.remaining > 0:
                self._finish(order, expired=True)
            else:
                self._finish(order)
        if frame:
            self._publish(market, frame)
        return order

    def post_market(
        self,
        user: User,
        pair: str | None,
        order_type: str | None,
        *,
        base_volume: str | None = None,
        counter_volume: str | None = None,
        client_order_id: str | None = None,
    ) -> SimOrder:
        market = self.market(pair)
        if order_type not in ("BUY", "SELL"):
            raise LunoError(400, "ErrInvalidOrderSide", "Order side is invalid")
        if (base_volume is None) == (counter_volume is None):
            raise LunoError(400, "ErrInvalidArguments", "Exactly one of base_volume and counter_volume")
        self._check_open(market, False)
        base_left = counter_left = None
        if base_volume is not None:
            base_left = self._amount(base_volume, market.volume_scale, "BaseVolume")
            if base_left < market.min_volume:
                raise LunoError(400, "ErrVolumeTooLow", "Volume is below the minimum")
        else:
            counter_left = self._amount(counter_volume, 8, "CounterVolume")
        self._check_client_order_id(user, client_order_id)
        side = order_type
        if market.best("SELL" if side == "BUY" else "BUY") is None:
            raise LunoError(400, "ErrNotEnoughLiquidity", "Not enough liquidity to fill the market order")
        base_need, counter_need = self._dry_run(market, side, base_left, counter_left)
        asset = market.counter if side == "BUY" else market.base
        need = counter_need if side == "BUY" else base_need
        if self._account(user, asset).available < need:
            raise LunoError(400, "ErrInsufficientFunds", "Account has insufficient funds")
        order = SimOrder(self.new_order_id(), user, market, side, "MARKET", client_order_id or "")
        self._register(order)
        self._status(order)
        trades = self._match(market, order, limit=None, base_left=base_left, counter_left=counter_left)
        if trades:
            self._publish(market, {"trade_updates": trades})
        self._finish(order)
        return order

    def stop(self, user: User, order_id: str | None) -> None:
        order = self.orders.get(order_id or "")
        if order is None or order.user is not user or order.status == "COMPLETE":
            raise LunoError(
                400, "ErrCannotStopUnknownOrNonPendingOrder", "Cannot stop unknown or non-pending order"
            )
        market = order.market
        market.unrest(order)
        self._finish(order, expired=True)
        self._publish(market, {"delete_update": {"order_id": order.order_id}})

    def find(self, user: User, order_id: str | None = None, client_order_id: str | None = None) -> SimOrder:
        if client_order_id:
            order_id = user.client_order_ids.get(client_order_id)
        order = self.orders.get(order_id or "")
        if order is None or order.user is not user:
            raise LunoError(404, "ErrOrderNotFound", "Cannot find that order")
        return order

    # ------------------------------------------------------------------ internals
    def _amount(self, value: str | None, places: int, what: str) -> Decimal:
        try:
            amount = Decimal(value or "")
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite() or amount <= 0:
            raise LunoError(400, f"ErrInvalid{what}", f"Invalid {what.lower()}")
        if amount != amount.quantize(Decimal(1).scaleb(-places), ROUND_DOWN):
            denomination = "Price" if what == "Price" else "Volume"
            raise LunoError(
                400, f"Err{denomination}DenominationNotAllowed", f"{what} contains too many decimal places"
            )
        return amount

    def _check_open(self, market: SimMarket, post_only: bool) -> None:
        if market.status == "DISABLED":
            raise LunoError(400, "ErrMarketUnavailable", "Market not available")
        if market.status == "POSTONLY" and not post_only:
            raise LunoError(400, "ErrPostOnlyMode", "Market is in post-only mode")

    def _check_client_order_id(self, user: User, client_order_id: str | None) -> None:
        if not client_order_id:
            return
        if not _CLIENT_ID.fullmatch(client_order_id):
            raise LunoError(400, "ErrInvalidClientOrderId", "Invalid client order id")
        if client_order_id in user.client_order_ids:
            raise LunoError(409, "ErrDuplicateClientOrderID", "Duplicate client order id")

    def _register(self, order: SimOrder) -> None:
        self.orders[order.order_id] = order
        if order.client_order_id:
            order.user.client_order_ids[order.client_order_id] = order.order_id

    def _account(self, user: User, asset: str) -> Account:
        account = user.accounts.get(asset)
        if account is None:
            self._account_ids += self.rng.randrange(1, 1000)
            account = user.accounts[asset] = Account(user.key_id, str(self._account_ids), asset)
        return account

    def _crossing_volume(self, market: SimMarket, side: str, limit: Decimal) -> Decimal:
        opposite = market.side("SELL" if side == "BUY" else "BUY")
        prices = [p for p in opposite.prices() if opposite.crosses(p, limit)]
        return sum((opposite.quantity(p) for p in prices), ZERO)

    def _dry_run(
        self, market: SimMarket, side: str, base_left: Decimal | None, counter_left: Decimal | None
    ) -> tuple[Decimal, Decimal]:
        """(base, counter) a market order would trade against the book as it is."""
        base = counter = ZERO
        for maker in market.orders("SELL" if side == "BUY" else "BUY"):
            vol = self._take(market, maker, base_left, counter_left)
            if vol <= 0:
                break
            base += vol
            counter += vol * maker.limit_price
            if base_left is not None:
                base_left -= vol
            if counter_left is not None:
                counter_left -= vol * maker.limit_price
        return base, counter

    @staticmethod
    def _take(
        market: SimMarket, maker: SimOrder, base_left: Decimal | None, counter_left: Decimal | None
    ) -> Decimal:
        vol = maker.remaining
        if base_left is not None:
            vol = min(vol, base_left)
        if counter_left is not None:
            affordable = (counter_left / maker.limit_price).quantize(market.lot, ROUND_DOWN)
            vol = min(vol, affordable)
        return vol

    def _match(
        self,
        market: SimMarket,
        taker: SimOrder,
        *,
        limit: Decimal | None,
        base_left: Decimal | None = None,
        counter_left: Decimal | None = None,
    ) -> list[Frame]:
        trades: list[Frame] = []
        buying = taker.side == "BUY"
        while True:
            best = market.best("SELL" if buying else "BUY")
            if best is None or (limit is not None and (best > limit if buying else best < limit)):
                break
            maker = market.side("SELL" if buying else "BUY").levels[best][0]
            vol = self._take(market, maker, base_left, counter_left)
            if vol <= 0:
                break
            counter = vol * best
            trades.append(self._execute(market, maker, taker, best, vol, counter))
            if maker.remaining <= 0:
                market.unrest(maker)
                self._finish(maker)
            if base_left is not None:
                base_left -= vol
            if counter_left is not None:
                counter_left -= counter
        return trades

    def _execute(
        self, market: SimMarket, maker: SimOrder, taker: SimOrder, price: Decimal, vol: Decimal,
        counter: Decimal,
    ) -> Frame:
        market.trade_seq += 1
        ts = now_ms()
        for order, is_maker in ((maker, True), (taker, False)):
            user = order.user
            rate = user.maker_fee if is_maker else user.taker_fee
            base_acc, counter_acc = self._account(user, market.base), self._account(user, market.counter)
            fee_base = fee_counter = ZERO
            if order.side == "BUY":
                fee_base = (vol * rate).quantize(FEE_QUANTUM, ROUND_DOWN)
                release = min(order.reserved, vol * order.limit_price) if order.kind == "LIMIT" else ZERO
                order.reserved -= release
                self._change(counter_acc, -counter, -release)
                self._change(base_acc, vol - fee_base, ZERO)
            else:
                fee_counter = (counter * rate).quantize(FEE_QUANTUM, ROUND_DOWN)
                release = min(order.reserved, vol) if order.kind == "LIMIT" else ZERO
                order.reserved -= release
                self._change(base_acc, -vol, -release)
                self._change(counter_acc, counter - fee_counter, ZERO)
            order.base += vol
            order.counter += counter
            order.fee_base += fee_base
            order.fee_counter += fee_counter
            user.trades.append(
                {
                    "pair": market.market_id,
                    "sequence": market.trade_seq,
                    "order_id": order.order_id,
                    "client_order_id": order.client_order_id,
                    "type": "BID" if order.side == "BUY" else "ASK",
                    "is_buy": taker.side == "BUY",
                    "price": text(price),
                    "volume": text(vol),
                    "base": text(vol),
                    "counter": text(counter),
                    "fee_base": text(fee_base),
                    "fee_counter": text(fee_counter),
                    "timestamp": ts,
                }
            )
            self._user(
                user,
                "order_fill",
                {
                    "order_id": order.order_id,
                    "client_order_id": order.client_order_id,
                    "market_id": market.market_id,
                    "base_fill": text(order.base),
                    "counter_fill": text(order.counter),
                    "base_delta": text(vol),
                    "counter_delta": text(counter),
                    "base_fee": text(order.fee_base),
                    "counter_fee": text(order.fee_counter),
                    "base_fee_delta": text(fee_base),
                    "counter_fee_delta": text(fee_counter),
                },
            )
        market.trades.append(
            {
                "sequence": market.trade_seq,
                "timestamp": ts,
                "price": text(price),
                "volume": text(vol),
                "is_buy": taker.side == "BUY",
            }
        )
        return {
            "sequence": market.trade_seq,
            "base": text(vol),
            "counter": text(counter),
            "maker_order_id": maker.order_id,
            "taker_order_id": taker.order_id,
            "order_id": maker.order_id,
        }

    def _reserve(self, account: Account, amount: Decimal) -> None:
        self._change(account, ZERO, amount)

    def _change(self, account: Account, balance_delta: Decimal, reserved_delta: Decimal) -> None:
        before = account.available
        account.balance += balance_delta
        account.reserved += reserved_delta
        account.row_index += 1
        self._user(
            self.users[account.owner],
            "balance_update",
            {
                "account_id": account.account_id,
                "row_index": account.row_index,
                "balance": text(account.balance),
                "balance_delta": text(balance_delta),
                "available": text(account.available),
                "available_delta": text(account.available - before),
            },
        )

    def _finish(self, order: SimOrder, *, expired: bool = False) -> None:
        order.status = "COMPLETE"
        order.completed = now_ms()
        if expired:
            order.expired = order.completed
        if order.reserved:
            market = order.market
            asset = market.counter if order.side == "BUY" else market.base
            self._change(self._account(order.user, asset), ZERO, -order.reserved)
            order.reserved = ZERO
        self._status(order)

    def _status(self, order: SimOrder) -> None:
        self._user(
            order.user,
            "order_status",
            {
                "order_id": order.order_id,
                "client_order_id": order.client_order_id,
                "market_id": order.pair,
                "status": order.status,
            },
        )

    def push_user(self, user: User, kind: str, body: Frame) -> None:
        """A user-stream frame of `kind` carrying `body` verbatim, as if the exchange had sent it."""
        self._user(user, kind, body)

    def _user(self, user: User, kind: str, body: Frame) -> None:
        frame: Frame = {
            "type": kind,
            "timestamp": now_ms(),
            "order_status_update": body if kind == "order_status" else None,
            "order_fill_update": body if kind == "order_fill" else None,
            "balance_update": body if kind == "balance_update" else None,
        }
        for listener in self.user_listeners:
            listener(user.key_id, frame)

    def _publish(self, market: SimMarket, changes: Frame) -> None:
        market.sequence += 1 + market.skip_next
        market.skip_next = 0
        frame: Frame = {
            "sequence": str(market.sequence),
            "trade_updates": changes.get("trade_updates"),
            "create_update": changes.get("create_update"),
            "delete_update": changes.get("delete_update"),
            "status_update": changes.get("status_update"),
            "timestamp": now_ms(),
        }
        for listener in self.market_listeners:
            listener(market.market_id, frame)

    def snapshot(self, pair: str) -> Frame:
        """The first frame of a market stream: every order, and the sequence of the last update."""
        market = self.market(pair)
        return {
            "sequence": str(market.sequence),
            "asks": [
                {"id": o.order_id, "price": market.price_text(o.limit_price),
                 "volume": market.volume_text(o.remaining)}
                for o in market.orders("SELL")
            ],
            "bids": [
                {"id": o.order_id, "price": market.price_text(o.limit_price),
                 "volume": market.volume_text(o.remaining)}
                for o in market.orders("BUY")
            ],
            "status": market.status,
            "timestamp": now_ms(),
        }
