"""OrderManager: the one owner of an engine's order state.

Every live order is tracked by client order id with its owning strategy (by name, so ownership survives a
stop, a removal and a restart). Updates are applied idempotently (exchanges repeat and reorder them); fills
are booked into the owner's position and journaled the moment they arrive, whether or not the strategy runs;
unconfirmed placements and cancels are resolved by asking the exchange, never by sending again. Clients
report what the wire says; this module decides.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal, Protocol

from ..clock import Clock
from ..contracts.client import MarketClient
from ..contracts.stores import FillRecord, Journal
from ..errors import MoonshipError, OrderNotFound, OrderStatusUnknown, PostOnlyRejected, RiskDenied
from ..model import (
    CLIENT_ORDER_ID_PREFIX,
    ZERO,
    Fill,
    MarketInfo,
    Order,
    OrderRequest,
    OrderStatus,
    fmt_decimal,
)
from .counters import EngineCounters
from .portfolio import Portfolio

logger = logging.getLogger("moonship.orders")

#: how long an unconfirmed order may stay unknown to the exchange before it is taken as never placed
UNKNOWN_GRACE = 60.0
_RECENTLY_CLOSED = 4096
_MAX_DELAY = 30.0


class OrderVenue(Protocol):
    """What the manager needs of a market."""

    name: str
    symbol: str
    client: MarketClient
    info: MarketInfo | None
    logger: logging.Logger


class OrderListener(Protocol):
    """Where a strategy hears of its orders (its mailbox)."""

    def notify(self, kind: str, market: Any, payload: Any) -> None: ...


@dataclass(slots=True)
class _Tracked:
    market: OrderVenue
    owner: str | None
    order: Order | None = None
    #: what of the order's fills is booked: (number of fills, filled quantity, filled quote quantity)
    booked: tuple[int, Decimal, Decimal] = (0, ZERO, ZERO)
    #: a task is confirming an unconfirmed cancel
    confirming: bool = False


class OrderManager:
    def __init__(
        self,
        journal: Journal,
        portfolio: Portfolio,
        clock: Clock,
        on_booked: Callable[[str], None] | None = None,
        unknown_orders: Literal["cancel", "adopt", "ignore"] = "cancel",
        counters: EngineCounters | None = None,
    ) -> None:
        self.journal = journal
        #: the engine's metrics: tick-to-order, orders that ended, fills
        self.counters = counters or EngineCounters()
        self.portfolio = portfolio
        self.clock = clock
        self.unknown_orders = unknown_orders
        self._on_booked = on_booked
        self._orders: dict[str, _Tracked] = {}
        #: the same orders by (market, owner): what one strategy has open in one market, without a scan
        self._by_owner: dict[tuple[str, str | None], dict[str, _Tracked]] = {}
        self._closed: deque[str] = deque(maxlen=_RECENTLY_CLOSED)
        self._closed_set: set[str] = set()
        self._listeners: dict[str, OrderListener] = {}
        self._tasks: dict[str, set[asyncio.Task[None]]] = {}
        #: told of every order that ends REJECTED, with its owner (the risk layer's reject breaker)
        self.on_reject: Callable[[str | None, Order], None] | None = None
        #: orders sent and fills booked in this run, by owning strategy (for the log's summaries)
        self.placed: dict[str, int] = {}
        self.filled: dict[str, int] = {}

    # ------------------------------------------------------------------ owners
    def attach(self, owner: str, listener: OrderListener) -> None:
        """`owner`'s order updates go to `listener` from now on (while the strategy runs)."""
        self._listeners[owner] = listener

    def detach(self, owner: str) -> None:
        self._listeners.pop(owner, None)

    # ------------------------------------------------------------------ state
    def open_orders(self, market: str | None = None, owner: str | None = None) -> list[Order]:
        """Our live orders (of one market and one owner, if given), oldest first."""
        if market is not None and owner is not None:
            mine = self._by_owner.get((market, owner))
            return [t.order for t in mine.values() if t.order is not None] if mine else []
        return [
            t.order
            for t in self._orders.values()
            if t.order is not None
            and (market is None or t.market.name == market)
            and (owner is None or t.owner == owner)
        ]

    async def cancel_all(self, owner: str | None = None) -> list[Order]:
        """Cancel every live order (of `owner`, if given; all, unowned ones too, if not); returns their
        states after the cancels (CANCELLATION_PENDING where unconfirmed). Never raises."""
        live = [
            (t.market, t.order)
            for t in list(self._orders.values())
            if t.order is not None and (owner is None or t.owner == owner)
        ]
        return list(await asyncio.gather(*(self.cancel(market, order) for market, order in live)))

    def owner_of(self, client_order_id: str) -> str | None:
        tracked = self._orders.get(client_order_id)
        return tracked.owner if tracked is not None else None

    # ------------------------------------------------------------------ recovery
    async def restore(self, markets: Mapping[str, OrderVenue]) -> int:
        """Take up what the journal holds: every strategy's position and P/L from its fills, and the orders
        that were open, tracked again for their owners. Returns the number of open orders taken up."""
        fills = await self.journal.fills()
        self.portfolio.restore(reversed(fills))  # oldest first
        restored = 0
        for record in reversed(await self.journal.orders(open_only=True)):
            market = markets.get(record.market)
            if market is None:
                logger.warning(
                    "the journal has open order %s on market %s, which is no longer configured",
                    record.order.client_order_id, record.market,
                )
                continue
            order = record.order
            self._track(order.client_order_id, _Tracked(
                market, record.strategy or None, order,
                booked=(len(order.fills), order.filled_quantity, order.filled_quote_quantity),
            ))
            restored += 1
        if fills or restored:
            logger.info("journal: %d fills and %d open orders taken up", len(fills), restored)
        return restored

    async def reconcile(self, market: OrderVenue) -> None:
        """Bring the orders of `market` in line with the exchange: each tracked order is looked up (fills
        made meanwhile are booked once, orders that ended are closed), and an open exchange order that
        carries our client order id but is not ours is cancelled, adopted or left alone
        (`unknown_orders`)."""
        clock = self.clock
        for order in self.open_orders(market.name):
            try:
                self.update(market, await market.client.get_order(order))
            except OrderNotFound:
                if not order.id:  # requested, never acknowledged: find out as for any unconfirmed order
                    tracked = self._orders[order.client_order_id]
                    tracked.order = replace(order, status=OrderStatus.UNKNOWN)
                    self._spawn(market, self._resolve_unknown(market, tracked.order, clock.monotonic()))
                else:
                    gone = "not found at the exchange"
                    self.update(market, order.closed(OrderStatus.CANCELLED, gone, at=clock.now()))
            except Exception as exc:
                market.logger.warning("order %s not reconciled: %s", order.client_order_id, exc)
        try:
            live = await market.client.get_open_orders()
        except Exception as exc:
            market.logger.warning("open orders not listed, unknown orders not checked: %s", exc)
            return
        for order in live:
            coid = order.client_order_id
            if coid in self._orders or coid in self._closed_set or not is_ours(coid):
                continue
            if self.unknown_orders == "cancel":
                market.logger.warning("cancelling order %s: ours, but not in the journal", coid)
                self._track(coid, _Tracked(market, None, order))
                await self.cancel(market, order)
            elif self.unknown_orders == "adopt":
                market.logger.warning("adopting order %s: ours, but not in the journal", coid)
                self._track(coid, _Tracked(
                    market, None, order,
                    booked=(len(order.fills), order.filled_quantity, order.filled_quote_quantity),
                ))
                self.journal.record_order("", market.name, order)
            else:
                market.logger.warning("leaving order %s alone: ours, but not in the journal", coid)

    # ------------------------------------------------------------------ requests
    async def place(self, market: OrderVenue, request: OrderRequest, owner: str | None) -> Order:
        """Send a prepared request and track it for `owner`; never raises for the exchange's or the
        network's decisions (see Market.place_order)."""
        coid = request.client_order_id
        tracked = self._track(coid, _Tracked(market, owner))
        if owner is not None:
            self.placed[owner] = self.placed.get(owner, 0) + 1
        requested = self._request_order(market, request, OrderStatus.PENDING, "")
        self.journal.record_order(owner or "", market.name, requested)
        sent = self.clock.monotonic()
        self.counters.order_sent()
        try:
            order = await market.client.place_order(request)
        except OrderStatusUnknown:
            market.logger.warning("order %s sent but not confirmed: querying it", coid)
            return self._unknown(market, request, tracked, sent)
        except MoonshipError as exc:
            self._untrack(coid)
            return self.reject(market, request, exc, owner)
        except Exception:  # a client's own failure: the request may have left, so find out, never resend
            market.logger.exception("sending order %s failed: querying it", coid)
            return self._unknown(market, request, tracked, sent)
        except BaseException:  # cancelled while in flight: it may have reached the exchange
            self._unknown(market, request, tracked, sent)
            raise
        if market.logger.isEnabledFor(logging.DEBUG):
            market.logger.debug("%s sent: %s", coid, _describe(request))
        self.update(market, order)
        return tracked.order if tracked.order is not None else order

    def reject(
        self, market: OrderVenue, request: OrderRequest, exc: MoonshipError, owner: str | None
    ) -> Order:
        """The order `request` refused before or by the exchange, journaled and told to its owner like any
        update."""
        rule = getattr(exc, "rule", None)
        reason = f"{rule}: {exc}" if rule else str(exc)
        order = replace(
            self._request_order(market, request, OrderStatus.REJECTED, reason), error=type(exc).__name__
        )
        self._remember_closed(order.client_order_id)
        self.journal.record_order(owner or "", market.name, order)
        self.counters.order_ended(owner or "", market.name, order.status.name, order.error or "")
        _log_final(market, order)
        listener = self._listeners.get(owner) if owner is not None else None
        if listener is not None:
            listener.notify("order", market, order)
        if self.on_reject is not None:
            self.on_reject(owner, order)
        return order

    async def cancel(self, market: OrderVenue, order: Order) -> Order:
        """Cancel one of our orders; never raises (see Market.cancel_order)."""
        tracked = self._orders.get(order.client_order_id)
        current = tracked.order if tracked is not None and tracked.order is not None else order
        if current.status.is_final or tracked is None or tracked.confirming:
            return current  # nothing to cancel, or a cancel is being confirmed already
        try:
            self.update(market, await market.client.cancel_order(current))
        except Exception as exc:
            if not isinstance(exc, MoonshipError):
                market.logger.exception("cancelling order %s failed", current.client_order_id)
            pending = replace(current, status=OrderStatus.CANCELLATION_PENDING, updated=self.clock.now())
            self.update(market, pending)
            if tracked.order is pending and not tracked.confirming:
                tracked.confirming = True
                self._spawn(market, self._confirm_cancel(market, pending, exc))
        return tracked.order or current

    # ------------------------------------------------------------------ updates
    def update(self, market: OrderVenue, order: Order) -> None:
        """Apply what a client reports of one of our orders: book new fills, journal, tell the owner."""
        coid = order.client_order_id
        tracked = self._orders.get(coid)
        if tracked is None:
            if coid not in self._closed_set:
                market.logger.debug("update of an order not placed here: %s", coid)
            return
        if not _is_newer(order, tracked.order):
            return
        tracked.order = order
        booked = self._book(tracked, order)
        self.journal.record_order(tracked.owner or "", market.name, order)
        if order.status.is_final:
            self._untrack(coid)
            self._remember_closed(coid)
            self.counters.order_ended(tracked.owner or "", market.name, order.status.name, order.error or "")
            _log_final(market, order)
            if order.status is OrderStatus.REJECTED and self.on_reject is not None:
                self.on_reject(tracked.owner, order)
        if tracked.owner is not None:
            listener = self._listeners.get(tracked.owner)
            if listener is not None:
                listener.notify("order", market, order)
            if booked and self._on_booked is not None:
                self._on_booked(tracked.owner)

    def _book(self, tracked: _Tracked, order: Order) -> bool:
        """Book the fills of `order` not booked before; whether there were any."""
        seen, seen_qty, seen_quote = tracked.booked
        if (
            len(order.fills) == seen
            and order.filled_quantity == seen_qty
            and order.filled_quote_quantity == seen_quote
        ):
            return False  # nothing new (an acknowledgement, a status change)
        fills: tuple[Fill, ...] = tuple(
            f if f.trade_id else replace(f, trade_id=f"#{seen + i}") for i, f in enumerate(order.fills[seen:])
        )
        delta = order.filled_quantity - seen_qty
        if not fills and delta > 0:
            # the client reported only cumulative figures: book the difference as one fill
            quote = order.filled_quote_quantity - seen_quote
            fills = (Fill(f"~{order.filled_quantity}", quote / delta, delta, timestamp=order.updated),)
        tracked.booked = (len(order.fills), order.filled_quantity, order.filled_quote_quantity)
        if not fills:
            return False
        info = tracked.market.info
        base, quote_asset = (info.base_asset, info.quote_asset) if info else ("", "")
        for fill in fills:
            record = FillRecord(
                tracked.owner or "", tracked.market.name, order.client_order_id, order.side, fill, base,
                quote_asset,
            )
            self.journal.record_fill(record)
            self.counters.filled(tracked.owner or "", tracked.market.name)
            if tracked.owner is not None:
                self.portfolio.book(record)
                self.filled[tracked.owner] = self.filled.get(tracked.owner, 0) + 1
                _log_fill(tracked.owner, record, self.portfolio)
        return True

    # ------------------------------------------------------------------ unknown outcomes
    def _unknown(self, market: OrderVenue, request: OrderRequest, tracked: _Tracked, sent: float) -> Order:
        """Track an unconfirmed order (sent at `sent`, the clock's monotonic time) as UNKNOWN and find out
        what became of it."""
        order = self._request_order(market, request, OrderStatus.UNKNOWN, "sent, not confirmed")
        tracked.order = order
        self.journal.record_order(tracked.owner or "", market.name, order)
        self._spawn(market, self._resolve_unknown(market, order, sent))
        return order

    async def _resolve_unknown(self, market: OrderVenue, probe: Order, sent: float) -> None:
        """Ask the exchange about an unconfirmed order until it knows it (or an update tells us first); one
        it still does not know UNKNOWN_GRACE seconds after it was sent never arrived, and ends REJECTED."""
        clock = self.clock
        give_up = sent + UNKNOWN_GRACE
        delay = 0.5
        while self._still(probe.client_order_id, OrderStatus.UNKNOWN):
            try:
                self.update(market, await market.client.get_order(probe))
                return
            except OrderNotFound:
                if clock.monotonic() >= give_up:
                    never = probe.closed(OrderStatus.REJECTED, "never reached the exchange", at=clock.now())
                    self.update(market, replace(never, error=OrderNotFound.__name__))
                    return
            except Exception as exc:  # the exchange may not answer yet; keep asking
                market.logger.debug("order %s still unknown: %s", probe.client_order_id, exc)
            await clock.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    async def _confirm_cancel(self, market: OrderVenue, pending: Order, first: Exception) -> None:
        """Retry an unconfirmed cancel until the order is final: an order the exchange no longer knows by
        the cancel is looked up; one it does not know at all after UNKNOWN_GRACE seconds is taken as
        cancelled."""
        coid = pending.client_order_id
        # routinely the order has just filled and its update is on the way: a warning only if it is not
        market.logger.debug("cancel of %s not confirmed (%s): retrying", coid, first)
        clock = self.clock
        give_up = clock.monotonic() + UNKNOWN_GRACE
        delay = 0.5
        warned = False
        try:
            while self._still(coid, OrderStatus.CANCELLATION_PENDING):
                await clock.sleep(delay)
                if not warned and self._still(coid, OrderStatus.CANCELLATION_PENDING):
                    warned = True
                    market.logger.warning("cancel of %s not confirmed (%s): retrying", coid, first)
                delay = min(delay * 2, _MAX_DELAY)
                try:
                    self.update(market, await market.client.cancel_order(pending))
                except OrderNotFound:
                    try:
                        self.update(market, await market.client.get_order(pending))
                    except OrderNotFound:
                        if clock.monotonic() >= give_up:
                            gone = "not found at the exchange"
                            self.update(market, pending.closed(OrderStatus.CANCELLED, gone, at=clock.now()))
                    except Exception as exc:
                        market.logger.debug("order %s not looked up: %s", coid, exc)
                except Exception as exc:
                    market.logger.debug("cancel of %s failed again: %s", coid, exc)
        finally:
            tracked = self._orders.get(coid)
            if tracked is not None:
                tracked.confirming = False

    def _still(self, client_order_id: str, status: OrderStatus) -> bool:
        """Whether the order is tracked and its latest state has `status`."""
        tracked = self._orders.get(client_order_id)
        return tracked is not None and tracked.order is not None and tracked.order.status is status

    # ------------------------------------------------------------------ helpers
    def _request_order(
        self, market: OrderVenue, request: OrderRequest, status: OrderStatus, reason: str
    ) -> Order:
        return Order.from_request(request, market.symbol, status, self.clock.now(), reason=reason or None)

    def _track(self, client_order_id: str, tracked: _Tracked) -> _Tracked:
        self._untrack(client_order_id)
        self._orders[client_order_id] = tracked
        key = (tracked.market.name, tracked.owner)
        mine = self._by_owner.get(key)
        if mine is None:
            mine = self._by_owner[key] = {}
        mine[client_order_id] = tracked
        return tracked

    def _untrack(self, client_order_id: str) -> None:
        tracked = self._orders.pop(client_order_id, None)
        if tracked is not None:
            key = (tracked.market.name, tracked.owner)
            mine = self._by_owner[key]
            del mine[client_order_id]
            if not mine:
                del self._by_owner[key]

    def _remember_closed(self, client_order_id: str) -> None:
        if len(self._closed) == self._closed.maxlen:
            self._closed_set.discard(self._closed[0])
        self._closed.append(client_order_id)
        self._closed_set.add(client_order_id)

    def _spawn(self, market: OrderVenue, coro: Coroutine[Any, Any, None]) -> None:
        tasks = self._tasks.setdefault(market.name, set())
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def close(self, market: str) -> None:
        """Stop the background work for one market's orders (the market is closing)."""
        tasks = self._tasks.pop(market, set())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def is_ours(client_order_id: str) -> bool:
    """Whether a client order id has the form Moonship gives its orders."""
    return _OURS.fullmatch(client_order_id) is not None


_OURS = re.compile(f"{CLIENT_ORDER_ID_PREFIX}[0-9a-f]{{24}}")


def _is_newer(new: Order, old: Order | None) -> bool:
    """Whether `new` moves an order forward (exchanges repeat and reorder updates)."""
    if old is None:
        return True
    if old.status.is_final:
        return False
    if new.filled_quantity != old.filled_quantity:
        return new.filled_quantity > old.filled_quantity
    return new.status != old.status or new.id != old.id


def _describe(request: OrderRequest) -> str:
    size = (
        fmt_decimal(request.quantity)
        if request.quantity is not None
        else f"{fmt_decimal(request.quote_quantity or ZERO)} quote"
    )
    price = fmt_decimal(request.price) if request.price is not None else "market"
    post = " post-only" if request.post_only else ""
    return f"{request.side.value} {size} @ {price} {request.time_in_force.value}{post}"


def _log_fill(owner: str, record: FillRecord, portfolio: Portfolio) -> None:
    """One line per fill, in the owning strategy's log: what filled, and its position and P/L after it."""
    logger = logging.getLogger(f"moonship.strategy.{owner}")
    if not logger.isEnabledFor(logging.INFO):
        return
    fill = record.fill
    position = portfolio.position(owner, record.market)
    fee = f" fee {fmt_decimal(fill.fee)} {fill.fee_asset}" if fill.fee else ""
    unrealized = position.unrealized(fill.price)
    logger.info(
        "fill %s %s %s @ %s on %s%s | position %s%s | P/L %s%s (realized %s, unrealized %s)",
        record.side.value,
        fmt_decimal(fill.quantity),
        record.base_asset,
        fmt_decimal(fill.price),
        record.market,
        fee,
        fmt_decimal(position.quantity),
        f" @ {fmt_decimal(_round(position.average_cost))}" if position.quantity else "",
        fmt_decimal(_round(position.realized + unrealized)),
        f" {record.quote_asset}" if record.quote_asset else "",
        fmt_decimal(_round(position.realized)),
        fmt_decimal(_round(unrealized)),
    )


def _round(value: Decimal) -> Decimal:
    """A money figure for a log line: at most 8 decimals."""
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal("1e-8")) if isinstance(exponent, int) and exponent < -8 else value


def _log_final(market: OrderVenue, order: Order) -> None:
    if order.status is OrderStatus.REJECTED:  # a post-only order the book moved through is routine; the
        # risk layer logs its own denials (at most once a minute per rule and strategy)
        quiet = (PostOnlyRejected.__name__, RiskDenied.__name__)
        level = logging.DEBUG if order.error in quiet else logging.WARNING
    else:  # fills are what an operator wants to see; an unfilled quote being pulled is routine
        level = logging.INFO if order.filled_quantity else logging.DEBUG
    if not market.logger.isEnabledFor(level):
        return
    avg = order.average_price
    market.logger.log(
        level,
        "%s %s %s %s: filled %s%s%s",
        order.side.value,
        market.symbol,
        order.client_order_id,
        order.status.value,
        fmt_decimal(order.filled_quantity),
        f" @ {fmt_decimal(avg)}" if avg is not None else "",
        f" ({order.error + ': ' if order.error else ''}{order.reason})" if order.reason else "",
    )
