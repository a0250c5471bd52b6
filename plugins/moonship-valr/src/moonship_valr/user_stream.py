"""VALR account socket: order statuses, our trades (with fees), failed orders and balances drive every
order update; REST reconciles open orders and recent fills at start-up and after each reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from moonship_core import (
    Fill,
    MarketEvents,
    MoonshipError,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    utc_now,
)

from . import constants as c
from .auth import Signer
from .parse import ZERO, decimal_or_none, parse_balance, parse_side, parse_time
from .rest import ValrRest
from .stream import Socket, Timing

#: VALR status strings of orders still working
_OPEN_STATUSES = {
    "Placed": OrderStatus.PENDING,
    "Active": OrderStatus.PENDING,
    "Order Modified": OrderStatus.PENDING,
}
_FINAL_STATUSES = {"Filled", "Cancelled", "Expired", "Failed"}
_ORPHANS = 1024  # fills of orders not known yet (their placement answer is still on its way)
_CLOSED_MEMORY = 4096


def is_maker(side: Side, fee_asset: str, base: str, quote: str) -> bool:
    """Whether a fill was a maker's, by VALR's fee currency rule: maker BUY pays in quote, maker SELL in
    base, taker BUY in base, taker SELL in quote."""
    if side is Side.BUY:
        return fee_asset == quote
    return fee_asset == base


def parse_fill(data: Mapping[str, Any], base: str, quote: str) -> Fill:
    """One of our trades (NEW_ACCOUNT_TRADE or /v1/account/{pair}/tradehistory); a maker reward is a
    negative fee."""
    side = parse_side(str(data["side"]))
    if data.get("makerReward") not in (None, ""):
        fee = -Decimal(str(data["makerReward"]))
        asset = str(data.get("makerRewardCurrency") or "")
        maker = True
    else:
        fee = Decimal(str(data.get("fee") or 0))
        asset = str(data.get("feeCurrency") or "")
        maker = is_maker(side, asset, base, quote)
    return Fill(
        trade_id=str(data["id"]),
        price=Decimal(str(data["price"])),
        quantity=Decimal(str(data["quantity"])),
        fee=fee,
        fee_asset=asset,
        is_maker=maker,
        timestamp=parse_time(data.get("tradedAt")),
    )


@dataclass(slots=True)
class _State:
    """What we know of one of our orders."""

    order: Order  # request fields, id and status before fills are applied
    pair: str
    exchange_filled: Decimal = ZERO  # VALR's executed quantity
    final: str = ""  # VALR's final status string, applied once the fills are in
    fills: dict[str, Fill] = field(default_factory=dict)
    fills_checked: bool = False  # REST trade history merged after the final status
    emitted: Order | None = None
    held: bool = False  # its placement answer is awaited: events are applied but not yet published
    waiters: list[asyncio.Future[Order]] = field(default_factory=list)


@dataclass(slots=True)
class _Listener:
    events: MarketEvents
    assets: frozenset[str]
    base: str
    quote: str


class AccountStream(Socket):
    """The one account socket of an engine per VALR account, and the order state it drives."""

    def __init__(
        self,
        url: str,
        rest: ValrRest,
        signer: Signer,
        timing: Timing,
        fill_wait: float,
        logger: logging.Logger,
        resync: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(url, c.ACCOUNT_WS_PATH, signer, timing, logger, resync)
        self.rest = rest
        self.fill_wait = fill_wait
        self.listeners: dict[str, list[_Listener]] = {}
        self._by_id: dict[str, _State] = {}
        self._by_coid: dict[str, _State] = {}
        self._orphans: OrderedDict[str, list[Mapping[str, Any]]] = OrderedDict()  # order id -> fills
        self._closed: OrderedDict[str, None] = OrderedDict()  # ids of orders already reported final
        self._finished: OrderedDict[str, Order] = OrderedDict()  # client order id -> final order
        self._tasks: set[asyncio.Task[Any]] = set()
        self._balance_times: dict[str, datetime] = {}
        #: completed reconciliations (tests wait on it)
        self.reconciled = 0

    # ------------------------------------------------------------------ users
    async def add(self, pair: str, events: MarketEvents, base: str, quote: str) -> None:
        self.listeners.setdefault(pair, []).append(_Listener(events, frozenset((base, quote)), base, quote))
        if self.running:
            self._spawn(self.reconcile([pair]))
        else:
            self.start()

    async def remove(self, events: MarketEvents) -> None:
        for pair in list(self.listeners):
            self.listeners[pair] = [u for u in self.listeners[pair] if u.events is not events]
            if not self.listeners[pair]:
                del self.listeners[pair]
        if not self.listeners:
            for task in list(self._tasks):
                task.cancel()
            await self.stop()

    # ------------------------------------------------------------------ orders placed here
    def placing(self, request: OrderRequest, pair: str, at: datetime) -> None:
        """Track `request` (sent `at`) before it is sent, so events that beat the REST answer find it."""
        if request.client_order_id in self._by_coid:
            return
        order = Order.from_request(request, pair, OrderStatus.PENDING, at)
        self._by_coid[request.client_order_id] = _State(order, pair, held=True)

    def track(self, order: Order, pair: str) -> None:
        """Track an order this process did not place (looked up by the market after a restart)."""
        if order.client_order_id not in self._by_coid and order.id not in self._by_id:
            state = _State(replace(order, fills=(), filled_quantity=ZERO, filled_quote_quantity=ZERO), pair)
            for fill in order.fills:
                state.fills[fill.trade_id] = fill
            self._by_coid[order.client_order_id] = state
            if order.id:
                self._index(state, order.id)

    def placed(self, coid: str, order_id: str) -> Order:
        """VALR acknowledged the order: its current state (it may have finished before the answer came)."""
        state = self._by_coid.get(coid)
        if state is None:
            return self._finished[coid]
        state.held = False
        if not state.order.id:
            self._index(state, order_id)
        return self._emit(state)

    def unconfirmed(self, coid: str) -> None:
        """The placement's answer was lost: publish whatever VALR tells about the order from now on."""
        state = self._by_coid.get(coid)
        if state is not None:
            state.held = False
            self._emit(state)

    def forget(self, coid: str, order_id: str = "") -> None:
        """The order was refused: later events about it are ignored."""
        state = self._by_coid.pop(coid, None)
        if state is not None and state.order.id:
            self._by_id.pop(state.order.id, None)
        if order_id:
            self._remember_closed(order_id)

    def current(self, coid: str) -> Order | None:
        """The latest state of a tracked or recently finished order."""
        state = self._by_coid.get(coid)
        return self._finished.get(coid) if state is None else self._build(state)

    def missing_fills(self, coid: str) -> bool:
        """Whether VALR reports more executed than the trades we have for this order."""
        state = self._by_coid.get(coid)
        return state is not None and state.exchange_filled > self._filled(state) and not state.fills_checked

    def known_id(self, coid: str) -> str:
        state = self._by_coid.get(coid)
        return "" if state is None else state.order.id

    async def wait_final(self, coid: str, timeout: float) -> Order | None:
        """The order once it is final (None if it does not become final within `timeout`)."""
        state = self._by_coid.get(coid)
        if state is None:
            return self._finished.get(coid)
        future: asyncio.Future[Order] = asyncio.get_running_loop().create_future()
        state.waiters.append(future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            if future in state.waiters:
                state.waiters.remove(future)

    # ------------------------------------------------------------------ applying exchange state
    def apply_status(self, data: Mapping[str, Any]) -> Order | None:
        """An order status (ORDER_STATUS_UPDATE, a REST status or summary, an open-orders entry)."""
        order_id = str(data.get("orderId") or data.get("id") or "")
        coid = str(data.get("customerOrderId") or "")
        state = self._by_id.get(order_id) or (self._by_coid.get(coid) if coid else None)
        if state is None or order_id in self._closed:
            return None
        if order_id and not state.order.id:
            self._index(state, order_id)
        status = str(data.get("orderStatusType") or data.get("status") or "")
        original = decimal_or_none(data.get("originalQuantity"))
        remaining = decimal_or_none(data.get("remainingQuantity", data.get("quantity")))
        executed = decimal_or_none(data.get("executedQuantity"))
        if executed is None and original is not None and remaining is not None and original > 0:
            executed = original - remaining
        if executed is not None and executed > state.exchange_filled:
            state.exchange_filled = executed
        if status in _OPEN_STATUSES or status == "Partially Filled":
            state.order = replace(state.order, status=OrderStatus.PENDING)
        elif status in _FINAL_STATUSES and not state.final:
            state.final = status
            reason = data.get("failedReason") or data.get("failureReason")
            if reason:
                state.order = replace(state.order, reason=str(reason))
            if state.exchange_filled > self._filled(state):
                self._spawn(self._check_fills(state))
        if state.order.quantity is None and original and state.order.type is OrderType.LIMIT:
            state.order = replace(state.order, quantity=original)
        return self._emit(state)

    def apply_fill(self, data: Mapping[str, Any]) -> None:
        """One of our trades; kept aside when its order is not known yet."""
        order_id = str(data.get("orderId") or "")
        state = self._by_id.get(order_id)
        if state is None:
            if order_id and order_id not in self._closed:
                self._orphans.setdefault(order_id, []).append(data)
                while len(self._orphans) > _ORPHANS:
                    self._orphans.popitem(last=False)
            return
        self._add_fill(state, data)
        self._emit(state)

    def apply_failed(self, order_id: str, message: str) -> None:
        state = self._by_id.get(order_id)
        if state is not None and not state.final:
            state.final = "Failed"
            state.order = replace(state.order, reason=message or state.order.reason)
            self._emit(state)

    def _add_fill(self, state: _State, data: Mapping[str, Any]) -> None:
        user = self._listener(state.pair)
        base, quote = (user.base, user.quote) if user is not None else ("", "")
        trade_id = str(data["id"])
        if trade_id not in state.fills:
            state.fills[trade_id] = parse_fill(data, base, quote)

    def _index(self, state: _State, order_id: str) -> None:
        state.order = replace(state.order, id=order_id)
        self._by_id[order_id] = state
        for data in self._orphans.pop(order_id, ()):
            self._add_fill(state, data)

    @staticmethod
    def _filled(state: _State) -> Decimal:
        return sum((f.quantity for f in state.fills.values()), ZERO)

    def _build(self, state: _State) -> Order:
        fills = tuple(sorted(state.fills.values(), key=lambda f: f.timestamp))
        filled = sum((f.quantity for f in fills), ZERO)
        quote = sum((f.price * f.quantity for f in fills), ZERO)
        order = state.order
        quantity = order.quantity
        complete = quantity is not None and filled >= quantity
        status = order.status
        if state.final and (filled >= state.exchange_filled or state.fills_checked):
            status = _final_status(state.final, filled, complete)
        elif complete:
            status = OrderStatus.FILLED
        elif filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        updated = max((f.timestamp for f in fills), default=order.updated)
        return replace(
            order,
            status=status,
            filled_quantity=filled,
            filled_quote_quantity=quote,
            fills=fills,
            updated=max(updated, order.updated),
        )

    def _emit(self, state: _State) -> Order:
        order = self._build(state)
        if state.held:
            return order
        if order != state.emitted:
            state.emitted = order
            for user in self.listeners.get(state.pair, ()):
                user.events.order_update(order)
        if order.status.is_final:
            for waiter in state.waiters:
                if not waiter.done():
                    waiter.set_result(order)
            self._by_coid.pop(order.client_order_id, None)
            self._finished[order.client_order_id] = order
            if len(self._finished) > _CLOSED_MEMORY:
                self._finished.popitem(last=False)
            if order.id:
                self._by_id.pop(order.id, None)
                self._remember_closed(order.id)
        return order

    def _remember_closed(self, order_id: str) -> None:
        self._closed[order_id] = None
        self._orphans.pop(order_id, None)
        while len(self._closed) > _CLOSED_MEMORY:
            self._closed.popitem(last=False)

    def _listener(self, pair: str) -> _Listener | None:
        users = self.listeners.get(pair)
        return users[0] if users else None

    # ------------------------------------------------------------------ socket
    async def on_open(self) -> None:
        await self.send({"type": "SUBSCRIBE", "subscriptions": [{"event": "ORDER_STATUS_UPDATE"}]})
        self._spawn(self.reconcile(list(self.listeners)))

    def on_message(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        data = message.get("data")
        try:
            if kind == "ORDER_STATUS_UPDATE" and isinstance(data, Mapping):
                self.apply_status(data)
            elif kind == "NEW_ACCOUNT_TRADE" and isinstance(data, Mapping):
                self.apply_fill(data)
            elif kind == "FAILED_ORDER" and isinstance(data, Mapping):
                self.apply_failed(str(data.get("orderId", "")), str(data.get("message", "")))
            elif kind == "BALANCE_UPDATE" and isinstance(data, Mapping):
                self._push_balances([data])
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            self.logger.warning("ignored a malformed %s: %r", kind, exc)

    def _push_balances(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Balances newer than what was pushed before (a REST answer can be older than a socket update)."""
        balances = []
        for row in rows:
            balance = parse_balance(row)
            stamp = parse_time(row.get("updatedAt")) if row.get("updatedAt") else None
            seen = self._balance_times.get(balance.asset)
            if stamp is not None:
                if seen is not None and stamp < seen:
                    continue
                self._balance_times[balance.asset] = stamp
            balances.append(balance)
        for users in self.listeners.values():
            for user in users:
                mine = [b for b in balances if b.asset in user.assets]
                if mine:
                    user.events.balances(mine)

    # ------------------------------------------------------------------ reconciliation
    async def reconcile(self, pairs: list[str]) -> None:
        """Bring balances, open orders and recent fills of `pairs` up to date over REST."""
        try:
            self._push_balances(await self.rest.balances())
            open_orders = {
                str(o["orderId"]): o for o in await self.rest.open_orders() if o["currencyPair"] in pairs
            }
            for data in open_orders.values():
                self.apply_status(data)
            for state in [s for s in list(self._by_coid.values()) if s.pair in pairs]:
                if state.order.id in open_orders:
                    continue
                try:
                    data = await self.rest.order_status(
                        state.pair, order_id=state.order.id, customer_order_id=state.order.client_order_id
                    )
                except MoonshipError as exc:
                    self.logger.debug("order %s not found at VALR: %s", state.order.client_order_id, exc)
                    continue
                self.apply_status(data)
            for pair in pairs:
                if any(s.pair == pair for s in self._by_coid.values()):
                    for data in reversed(await self.rest.account_trades(pair)):
                        self.apply_fill(data)
            self.reconciled += 1
            self.logger.info(
                "reconciled %s: %d open orders", ", ".join(pairs) or "no pairs", len(open_orders)
            )
        except MoonshipError as exc:
            self.logger.warning("reconciliation failed (%s); it runs again on the next reconnect", exc)

    async def fetch_fills(self, coid: str) -> None:
        """Merge the REST trade history into one order (its final status came before its fills)."""
        state = self._by_coid.get(coid)
        if state is not None and state.order.id:
            for data in reversed(await self.rest.account_trades(state.pair)):
                if data.get("orderId") == state.order.id:
                    self._add_fill(state, data)
            if state.final:
                state.fills_checked = True
            self._emit(state)

    async def _check_fills(self, state: _State) -> None:
        await asyncio.sleep(self.fill_wait)
        if state.final and not state.fills_checked and state.exchange_filled > self._filled(state):
            try:
                await self.fetch_fills(state.order.client_order_id)
            except MoonshipError as exc:
                self.logger.warning("could not fetch the fills of %s: %s", state.order.client_order_id, exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.logger.error("account task failed: %r", exc, exc_info=exc)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await super().stop()


def _final_status(valr: str, filled: Decimal, complete: bool) -> OrderStatus:
    """VALR's final status string to moonship's, given what filled."""
    if valr == "Filled" or complete:
        return OrderStatus.FILLED
    if valr == "Failed":
        return OrderStatus.REJECTED
    if filled > 0:
        return OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    return OrderStatus.EXPIRED if valr == "Expired" else OrderStatus.CANCELLED


def order_from_status(data: Mapping[str, Any], symbol: str) -> Order:
    """An order from VALR's status shapes (REST status/summary, open orders), without fills."""
    status = str(data.get("orderStatusType") or data.get("status") or "")
    original = decimal_or_none(data.get("originalQuantity"))
    remaining = decimal_or_none(data.get("remainingQuantity", data.get("quantity")))
    order_type = str(data.get("orderType") or data.get("type") or "limit")
    is_market = order_type in ("market", "simple")
    filled = original - remaining if original is not None and remaining is not None else ZERO
    if status in _FINAL_STATUSES:
        mapped = _final_status(status, filled, original is not None and filled >= original > 0)
    elif status == "Partially Filled":
        mapped = OrderStatus.PARTIALLY_FILLED
    else:
        mapped = _OPEN_STATUSES.get(status, OrderStatus.PENDING)
    tif = str(data.get("timeInForce") or "GTC")
    price = None if is_market else decimal_or_none(data.get("originalPrice", data.get("price")))
    return Order(
        id=str(data.get("orderId") or ""),
        client_order_id=str(data.get("customerOrderId") or ""),
        symbol=symbol,
        side=parse_side(str(data.get("orderSide") or data.get("side") or "buy")),
        type=OrderType.MARKET if is_market else OrderType.LIMIT,
        status=mapped,
        quantity=original if not is_market or original else None,
        price=price,
        time_in_force=TimeInForce(tif) if tif in TimeInForce.__members__ else TimeInForce.GTC,
        post_only="post-only" in order_type,
        # without fills: valued at the summary's average price, else at the limit price
        filled_quantity=filled,
        filled_quote_quantity=filled * (decimal_or_none(data.get("averagePrice")) or price or ZERO),
        created=parse_time(data.get("orderCreatedAt") or data.get("createdAt")),
        updated=parse_time(data.get("orderUpdatedAt") or data.get("updatedAt")) if status else utc_now(),
        reason=str(data.get("failedReason") or "") or None,
    )
