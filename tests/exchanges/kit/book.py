"""A price-time priority book side: price -> FIFO queue of resting orders, prices sorted best first."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

ZERO = Decimal(0)


class Resting(Protocol):
    @property
    def remaining(self) -> Decimal: ...


Order = TypeVar("Order", bound=Resting)


class BookSide(Generic[Order]):
    """One side of a book (`bids`: the buy side, best = highest); `price_of` reads an order's limit price."""

    def __init__(self, bids: bool, price_of: Callable[[Order], Decimal]) -> None:
        self.bids = bids
        self.price_of = price_of
        self.levels: dict[Decimal, deque[Order]] = {}
        self._keys: list[Decimal] = []  # ascending; bids negated, so the best price is first

    def _key(self, price: Decimal) -> Decimal:
        return -price if self.bids else price

    def best(self) -> Decimal | None:
        return self._key(self._keys[0]) if self._keys else None

    def prices(self) -> list[Decimal]:
        """Prices, best first."""
        return [self._key(k) for k in self._keys]

    def add(self, order: Order) -> None:
        """Queue `order` last at its price."""
        price = self.price_of(order)
        queue = self.levels.get(price)
        if queue is None:
            queue = self.levels[price] = deque()
            insort(self._keys, self._key(price))
        queue.append(order)

    def remove(self, order: Order) -> bool:
        """Take `order` off the book; False when it was not on it."""
        price = self.price_of(order)
        queue = self.levels.get(price)
        if queue is None or order not in queue:
            return False
        queue.remove(order)
        if not queue:
            del self.levels[price]
            del self._keys[bisect_left(self._keys, self._key(price))]
        return True

    def quantity(self, price: Decimal) -> Decimal:
        return sum((o.remaining for o in self.levels.get(price, ())), ZERO)

    def aggregated(self, depth: int | None = None) -> list[tuple[Decimal, Decimal, int]]:
        """(price, quantity, order count) per level, best first."""
        return [(p, self.quantity(p), len(self.levels[p])) for p in self.prices()[:depth]]

    def orders(self) -> list[Order]:
        """Resting orders, best price first, queue order within a price."""
        return [o for p in self.prices() for o in self.levels[p]]

    def crosses(self, price: Decimal | None, limit: Decimal | None) -> bool:
        """Whether a taker with `limit` (None: a market order) trades at this side's level `price`."""
        if price is None:
            return False
        if limit is None:
            return True
        return price >= limit if self.bids else price <= limit
