"""Order-level (L3) book: every resting order by id, with the market's L2 `OrderBook` kept as their aggregate.

Exchanges that publish individual orders (Luno) feed this book; strategies keep reading the same L2 view
as for any other exchange, and those that want queue detail read the orders here. Changes are staged by
`create`, `delete` and `reduce` and reach the L2 book in one `apply_update` per `commit`, so one exchange
frame (several changes under one sequence number) moves the L2 book atomically.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation

from .book import OrderBook
from .errors import BookGap
from .model import Side

_BUY = Side.BUY
#: an order as received: (id, price, volume), price and volume as decimal text or Decimal
WireOrder = tuple[str, str | Decimal, str | Decimal]


def _positive(value: str | Decimal, what: str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        number = Decimal("NaN")
    if not (number.is_finite() and number > 0):
        raise ValueError(f"malformed {what} {value!r}")
    return number


class LevelOrder:
    """One resting order: id, side, price and remaining volume."""

    __slots__ = ("id", "price", "side", "volume")

    def __init__(self, order_id: str, side: Side, price: Decimal, volume: Decimal) -> None:
        self.id = order_id
        self.side = side
        self.price = price
        self.volume = volume

    def __repr__(self) -> str:
        return f"LevelOrder({self.id} {self.side.value} {self.volume} @ {self.price})"


class _Level:
    """The orders at one price, in arrival order, and their total volume."""

    __slots__ = ("orders", "total")

    def __init__(self) -> None:
        self.orders: dict[str, LevelOrder] = {}
        self.total = Decimal(0)


class OrderLevelBook:
    """Individual orders of one market; `book` (the market's L2 book) is their aggregate after `commit`."""

    __slots__ = ("_asks", "_bids", "_changed", "_orders", "book")

    def __init__(self, book: OrderBook) -> None:
        #: the L2 book kept in step (rebind it before `load` when the market replaces its book)
        self.book = book
        self._orders: dict[str, LevelOrder] = {}
        self._bids: dict[Decimal, _Level] = {}
        self._asks: dict[Decimal, _Level] = {}
        self._changed: set[tuple[Side, Decimal]] = set()

    # ----------------------------------------------------------------- writing
    def load(self, bids: Iterable[WireOrder], asks: Iterable[WireOrder], sequence: int | None = None) -> None:
        """Replace every order (a snapshot) and load the L2 book from their aggregate at `sequence`.

        A malformed order raises ValueError and leaves both books empty.
        """
        self._orders.clear()
        self._bids.clear()
        self._asks.clear()
        self._changed.clear()
        try:
            for side, orders in ((Side.BUY, bids), (Side.SELL, asks)):
                for order_id, price, volume in orders:
                    self._add(order_id, side, _positive(price, "price"), _positive(volume, "volume"))
        except BaseException:
            self._orders.clear()
            self._bids.clear()
            self._asks.clear()
            self.book.clear()
            raise
        self._changed.clear()
        self.book.load_snapshot(
            [(p, lv.total) for p, lv in self._bids.items()],
            [(p, lv.total) for p, lv in self._asks.items()],
            sequence,
        )

    def expects(self, sequence: int) -> bool:
        """Whether an update numbered `sequence` is the next one: False if it is stale (already applied);
        BookGap if updates are missing or there is no snapshot yet."""
        current = self.book.sequence
        if current is None:
            raise BookGap(1, sequence)
        if sequence <= current:
            return False
        if sequence != current + 1:
            raise BookGap(current + 1, sequence)
        return True

    def create(self, order_id: str, side: Side, price: str | Decimal, volume: str | Decimal) -> LevelOrder:
        """Add a resting order (replacing any order with the same id)."""
        price_d, volume_d = _positive(price, "price"), _positive(volume, "volume")
        if order_id in self._orders:
            self.delete(order_id)
        order = self._add(order_id, side, price_d, volume_d)
        self._changed.add((side, price_d))
        return order

    def delete(self, order_id: str) -> LevelOrder | None:
        """Remove an order; returns it, or None if it was not in the book."""
        order = self._orders.pop(order_id, None)
        if order is not None:
            levels = self._bids if order.side is _BUY else self._asks
            level = levels[order.price]
            del level.orders[order_id]
            if level.orders:
                level.total -= order.volume
            else:
                del levels[order.price]
            self._changed.add((order.side, order.price))
        return order

    def reduce(self, order_id: str, volume: str | Decimal) -> LevelOrder | None:
        """Take `volume` off an order (it traded); an order reduced to nothing leaves the book.

        Returns the order (with its remaining volume, 0 when it left), or None if it was not in the book.
        """
        traded = _positive(volume, "volume")
        order = self._orders.get(order_id)
        if order is None:
            return None
        if traded >= order.volume:
            self.delete(order_id)
            order.volume = Decimal(0)
            return order
        order.volume -= traded
        levels = self._bids if order.side is _BUY else self._asks
        levels[order.price].total -= traded
        self._changed.add((order.side, order.price))
        return order

    def commit(self, sequence: int | None = None) -> bool:
        """Write the levels changed since the last commit into the L2 book, numbered `sequence`.

        Returns what `OrderBook.apply_update` returns (False: stale); BookGap if updates are missing.
        """
        bids: list[tuple[Decimal, Decimal]] = []
        asks: list[tuple[Decimal, Decimal]] = []
        zero = Decimal(0)
        for side, price in self._changed:
            if side is _BUY:
                level = self._bids.get(price)
                bids.append((price, level.total if level is not None else zero))
            else:
                level = self._asks.get(price)
                asks.append((price, level.total if level is not None else zero))
        self._changed.clear()
        return self.book.apply_update(bids, asks, sequence, sequence)

    def _add(self, order_id: str, side: Side, price: Decimal, volume: Decimal) -> LevelOrder:
        levels = self._bids if side is _BUY else self._asks
        level = levels.get(price)
        if level is None:
            level = levels[price] = _Level()
        order = LevelOrder(order_id, side, price, volume)
        previous = level.orders.pop(order_id, None)  # a snapshot listing one id twice keeps the last
        if previous is not None:
            level.total -= previous.volume
        level.orders[order_id] = order
        level.total += volume
        self._orders[order_id] = order
        return order

    # ----------------------------------------------------------------- reading
    @property
    def sequence(self) -> int | None:
        """The sequence number of the last update in the L2 book (None before a snapshot)."""
        return self.book.sequence

    def order(self, order_id: str) -> LevelOrder | None:
        return self._orders.get(order_id)

    def orders_at(self, side: Side, price: Decimal) -> tuple[LevelOrder, ...]:
        """The orders at one price, first in the queue first."""
        level = (self._bids if side is _BUY else self._asks).get(price)
        return () if level is None else tuple(level.orders.values())

    def orders(self, side: Side) -> Iterator[LevelOrder]:
        """Every order of one side, best price first and in queue order within a price (after `commit`)."""
        levels = self._bids if side is _BUY else self._asks
        for price, _ in self.book.levels(side):
            level = levels.get(price)
            if level is not None:
                yield from level.orders.values()

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def __repr__(self) -> str:
        return f"OrderLevelBook({self.book.symbol} orders={len(self._orders)} seq={self.book.sequence})"
