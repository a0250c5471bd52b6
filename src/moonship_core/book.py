"""L2 order book: snapshot + absolute level updates with sequence checks; fast top-of-book.

Prices and quantities are kept as integers in units of 10**-decimals, so the hot path does no Decimal
arithmetic; Decimal appears only at the edges. Each side keeps a sorted list of keys (asks: +price,
bids: -price, so index 0 is the best level on both) and a dict key -> quantity. Exchange wire strings are
accepted directly ("0.00240000") and parsed without Decimal.

Reads: best price O(1); top-N depth from a cache that only changes when a level inside it changes;
`quantity_up_to` is O(log n) through a prefix-sum array that is rebuilt lazily, and only from the first
level changed since the last query (so O(log n + k) after k near-top changes).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from .errors import BookGap
from .model import Side

Level = tuple[Decimal, Decimal]
WireLevel = Sequence[str] | Sequence[Decimal]

_POW10 = [10**i for i in range(40)]
_ZERO = Decimal(0)
#: a quantity is zero exactly when its text is one of these (what every exchange sends)
_ZEROS = frozenset({"0", "0.", *("0." + "0" * i for i in range(1, 31))})
_NO_KEY = 1 << 200  # greater than any key


def parse_units(text: str, decimals: int) -> int:
    """Decimal text (no exponent) to an integer count of 10**-decimals units."""
    dot = text.find(".")
    if dot < 0:
        return int(text) * _POW10[decimals]
    frac = len(text) - dot - 1
    if frac == decimals:
        return int(text[:dot] + text[dot + 1 :])
    if frac < decimals:
        return int(text[:dot] + text[dot + 1 :]) * _POW10[decimals - frac]
    cut = dot + 1 + decimals
    if text[cut:].strip("0"):
        raise ValueError(f"{text!r} has more than {decimals} decimals")
    return int(text[:dot] + text[dot + 1 : cut])


def decimal_units(value: Decimal, decimals: int) -> int:
    """A Decimal to an integer count of 10**-decimals units (exact, or ValueError)."""
    scaled = value.scaleb(decimals)
    units = int(scaled)
    if units != scaled:
        raise ValueError(f"{value} has more than {decimals} decimals")
    return units


class _Side:
    __slots__ = ("cum", "cum_n", "dirty", "keys", "pcache", "qty", "top", "top_last")

    def __init__(self) -> None:
        self.pcache: dict[str | Decimal, int] = {}  # price as received -> key
        self.keys: list[int] = []  # sorted ascending; index 0 = best
        self.qty: dict[int, str] = {}  # quantity as exchange text, parsed only when read
        self.cum: list[Decimal] = []  # prefix sums of qty along keys, valid for cum[:cum_n]
        self.cum_n = 0
        self.dirty = _NO_KEY  # smallest key changed since the prefix sums were last brought up to date
        self.top: tuple[Level, ...] | None = None  # cached top levels
        self.top_last = -_NO_KEY  # key of the last cached top level (changes beyond it keep the cache)

    def clear(self) -> None:
        self.keys.clear()
        self.qty.clear()
        self.cum.clear()
        self.cum_n = 0
        self.dirty = _NO_KEY
        self.top = None
        self.top_last = -_NO_KEY

    def touched(self, lowest: int) -> None:
        if lowest < self.dirty:
            self.dirty = lowest
        if lowest <= self.top_last:
            self.top = None

    def cumulative(self, upto_index: int) -> Decimal:
        """Sum of quantities of levels [0, upto_index)."""
        if upto_index <= 0:
            return _ZERO
        keys, cum = self.keys, self.cum
        if self.dirty != _NO_KEY:
            i = bisect_left(keys, self.dirty)
            if i < self.cum_n:
                self.cum_n = i
            self.dirty = _NO_KEY
        n = self.cum_n
        if n < upto_index:
            del cum[n:]
            total = cum[n - 1] if n else _ZERO
            qty = self.qty
            for k in keys[n:upto_index]:
                total += Decimal(qty[k])
                cum.append(total)
            self.cum_n = upto_index
        return cum[upto_index - 1]


class OrderBook:
    """Aggregated (L2) book of one market."""

    __slots__ = ("_asks", "_bids", "_pdec", "_pdecs", "sequence", "symbol", "version")

    def __init__(self, symbol: str = "", *, price_decimals: int = 8) -> None:
        self.symbol = symbol
        self._pdecs = price_decimals
        self._bids = _Side()
        self._asks = _Side()
        self._pdec: dict[int, Decimal] = {}  # price units -> Decimal
        #: sequence number of the last update applied (None: no snapshot yet)
        self.sequence: int | None = None
        #: increments on every change, so a reader can tell whether the book moved
        self.version = 0

    # ----------------------------------------------------------------- writing
    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self.sequence = None
        self.version += 1

    def load_snapshot(
        self, bids: Sequence[WireLevel], asks: Sequence[WireLevel], sequence: int | None = None
    ) -> None:
        """Replace the whole book."""
        self._bids.clear()
        self._asks.clear()
        self.sequence = None
        self._apply(bids, self._bids, -1)
        self._apply(asks, self._asks, 1)
        self.sequence = sequence
        self.version += 1

    def apply_update(
        self,
        bids: Sequence[WireLevel],
        asks: Sequence[WireLevel],
        first_sequence: int | None = None,
        last_sequence: int | None = None,
    ) -> bool:
        """Apply absolute level quantities (0 removes the level) covering [first_sequence, last_sequence].

        Returns False for an update wholly older than the book; raises BookGap when updates are missing.
        """
        if last_sequence is not None:
            seq = self.sequence
            if seq is not None:
                if last_sequence <= seq:
                    return False
                first = last_sequence if first_sequence is None else first_sequence
                if first > seq + 1:
                    raise BookGap(seq + 1, first)
            self.sequence = last_sequence
        if bids:
            self._apply(bids, self._bids, -1)
        if asks:
            self._apply(asks, self._asks, 1)
        self.version += 1
        return True

    def set_level(self, side: Side, price: Decimal, quantity: Decimal) -> None:
        """Set one level's absolute quantity (0 removes it)."""
        book_side, sign = self._side(side)
        self._apply(((price, quantity),), book_side, sign)
        self.version += 1

    def _apply(self, levels: Sequence[WireLevel], side: _Side, sign: int) -> None:
        if levels and type(levels[0][1]) is not str:
            levels = [(p, _qty_text(q)) for p, q in levels]
        pcache = side.pcache
        keys, qtys = side.keys, side.qty
        lowest = _NO_KEY
        for price, qty in levels:
            key = pcache.get(price)
            if key is None:
                key = self._parse_price(price, side, sign)
            if qty not in _ZEROS:
                if key not in qtys:
                    insort(keys, key)
                qtys[key] = qty  # type: ignore[assignment]
            elif qtys.pop(key, None) is not None:
                del keys[bisect_left(keys, key)]
            else:
                continue
            if key < lowest:
                lowest = key
        if lowest != _NO_KEY:
            side.touched(lowest)

    def _parse_price(self, price: str | Decimal, side: _Side, sign: int) -> int:
        pcache = side.pcache
        if len(pcache) > 65536:
            pcache.clear()
        if isinstance(price, str):
            units = parse_units(price, self._pdecs)
        else:
            units = decimal_units(price, self._pdecs)
        key = pcache[price] = units * sign
        return key

    # ----------------------------------------------------------------- reading
    def _price(self, units: int) -> Decimal:
        d = self._pdec.get(units)
        if d is None:
            if len(self._pdec) > 65536:
                self._pdec.clear()
            d = self._pdec[units] = Decimal(units).scaleb(-self._pdecs)
        return d

    @property
    def best_bid(self) -> Decimal | None:
        keys = self._bids.keys
        return self._price(-keys[0]) if keys else None

    @property
    def best_ask(self) -> Decimal | None:
        keys = self._asks.keys
        return self._price(keys[0]) if keys else None

    @property
    def spread(self) -> Decimal | None:
        b, a = self._bids.keys, self._asks.keys
        return self._price(a[0] + b[0]) if a and b else None

    @property
    def mid(self) -> Decimal | None:
        b, a = self._bids.keys, self._asks.keys
        if not (a and b):
            return None
        return (Decimal(a[0] - b[0]) / 2).scaleb(-self._pdecs)

    def __len__(self) -> int:
        return len(self._bids.keys) + len(self._asks.keys)

    def _side(self, side: Side) -> tuple[_Side, int]:
        return (self._bids, -1) if side is Side.BUY else (self._asks, 1)

    def depth(self, side: Side, n: int = 10) -> tuple[Level, ...]:
        """The best `n` levels of one side (bids for BUY) as (price, quantity), best first."""
        book_side, sign = self._side(side)
        top = book_side.top
        if top is not None and (len(top) >= n or len(top) == len(book_side.keys)):
            return top if len(top) == n else top[:n]
        keys, qty = book_side.keys[:n], book_side.qty
        top = tuple((self._price(k * sign), Decimal(qty[k])) for k in keys)
        book_side.top = top
        book_side.top_last = keys[-1] if keys else -_NO_KEY
        return top

    @property
    def bids(self) -> tuple[Level, ...]:
        """Top 10 bids, best first."""
        return self.depth(Side.BUY, 10)

    @property
    def asks(self) -> tuple[Level, ...]:
        """Top 10 asks, best first."""
        return self.depth(Side.SELL, 10)

    def levels(self, side: Side) -> Iterator[Level]:
        """Every level of one side, best first (lazy; do not change the book while iterating)."""
        book_side, sign = self._side(side)
        qty = book_side.qty
        for k in book_side.keys:
            yield self._price(k * sign), Decimal(qty[k])

    def quantity_at(self, side: Side, price: Decimal) -> Decimal:
        book_side, sign = self._side(side)
        return Decimal(book_side.qty.get(decimal_units(price, self._pdecs) * sign, "0"))

    def quantity_up_to(self, side: Side, price: Decimal) -> Decimal:
        """Total quantity on `side` at `price` or better (what a taker of the other side could fill)."""
        book_side, sign = self._side(side)
        key = decimal_units(price, self._pdecs) * sign
        return book_side.cumulative(bisect_right(book_side.keys, key))

    def __repr__(self) -> str:
        return f"OrderBook({self.symbol} bid={self.best_bid} ask={self.best_ask} levels={len(self)})"



def _qty_text(quantity: Decimal | str) -> str:
    if isinstance(quantity, str):
        return quantity
    if isinstance(quantity, Decimal) and quantity.is_finite() and quantity >= 0:
        return format(quantity, "f") if quantity else "0"
    raise ValueError(f"bad quantity {quantity!r}")
