"""L2 order book: snapshot + absolute level updates with sequence checks; fast top-of-book.

Prices are kept as integers in units of 10**-decimals, so the hot path does no Decimal arithmetic;
Decimal appears only at the edges. Each side keeps a sorted list of integer keys (bids: +units,
asks: -units) with the best level *last*, so the frequent changes near the top move little memory, and
a dict key -> level. A level holds the quantity as received (exchange text such as "0.00240000", or a
Decimal) until it is first read, when it is parsed and replaced by its (price, quantity) tuple; a
quantity equal to one of `_ZEROS` removes the level. Price texts are parsed once and cached.

Reads: best price O(1); `depth` a plain tuple, remembered until a level inside it changes, and rebuilt by
gathering the levels in C and parsing only those changed since they were last read;
`quantity_up_to` is O(log n) through best-first prefix sums that are rebuilt lazily, and only from the
best level changed since the last query (so O(log n + k) after changes k levels from the top).
"""

from __future__ import annotations

import os
import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator, Sequence
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from math import ceil, floor

from .errors import BookGap
from .model import Side

Level = tuple[Decimal, Decimal]
#: the best levels of one side, best first
Depth = tuple[Level, ...]
#: (price, quantity) pairs as the exchange's decimal text, or as Decimals
WireLevels = Sequence[Sequence[str]] | Sequence[Sequence[Decimal]]

_ZERO = Decimal(0)
_INFINITY = Decimal("Infinity")
#: a quantity is zero exactly when it equals one of these: the texts every exchange sends, or a Decimal
#: zero (any exponent: Decimal("0E-8") == 0 and hashes alike); the texts are made of "0" and "." only
#: (_book.c looks up no other text)
_ZEROS = frozenset({"0", "0.", *("0." + "0" * i for i in range(1, 31)), _ZERO})
_NO_KEY = 1 << 200  # every key lies strictly between -_NO_KEY and _NO_KEY
_BUY = Side.BUY
_PRICE_CACHE_MAX = 65536  # price texts remembered per side
#: exact: unit conversions never round, whatever the caller's decimal context
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_PLAIN = re.compile(r"([0-9]*)\.?([0-9]*)")


def parse_units(text: str, decimals: int) -> int:
    """Plain non-negative decimal text (no sign, no exponent) to an integer count of 10**-decimals units."""
    match = _PLAIN.fullmatch(text)
    if match is None or not (match[1] or match[2]):
        raise ValueError(f"{text!r} is not a plain non-negative decimal number")
    whole, frac = match[1], match[2]
    if len(frac) > decimals:
        if frac[decimals:].strip("0"):
            raise ValueError(f"{text!r} has more than {decimals} decimals")
        frac = frac[:decimals]
    return int(whole + frac + "0" * (decimals - len(frac)))


def decimal_units(value: Decimal, decimals: int) -> int:
    """A Decimal to an integer count of 10**-decimals units (exact, or ValueError)."""
    if value.is_finite():
        scaled = value.scaleb(decimals, _EXACT)
        units = int(scaled)
        if units == scaled:
            return units
    raise ValueError(f"{value} is not a whole number of {decimals}-decimal units")


def _quantity(value: str | Decimal) -> Decimal:
    """A stored quantity to a positive Decimal, or a ValueError naming it."""
    try:
        quantity = Decimal(value)
        if _ZERO < quantity < _INFINITY:  # NaN: the comparison raises InvalidOperation
            return quantity
    except InvalidOperation:
        pass
    raise ValueError(f"malformed quantity {value!r}")


class _Side:
    __slots__ = ("cum", "cum_n", "dirty", "keys", "levels", "pcache", "prices", "sign", "top_worst", "tops")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # key = sign * price units
        self.pcache: dict[str | Decimal, int] = {}  # price as received -> key
        self.prices: dict[int, Decimal] = {}  # key -> price, for every key in `pcache` and the book
        self.keys: list[int] = []  # sorted ascending: the best level is last
        # key -> the quantity as received, replaced by the level when first read
        self.levels: dict[int, str | Decimal | Level] = {}
        self.cum: list[Decimal] = []  # cum[i]: total quantity of the best i + 1 levels, valid for i < cum_n
        self.cum_n = 0
        self.dirty = -_NO_KEY  # the best key changed since the prefix sums were brought up to date
        self.tops: dict[int, Depth] = {}  # n -> depth(n), while valid
        self.top_worst = _NO_KEY  # a change at a key >= this invalidates `tops`

    def clear(self) -> None:
        self.keys = []
        self.levels.clear()
        self.cum.clear()
        self.cum_n = 0
        self.dirty = -_NO_KEY
        self.tops.clear()
        self.top_worst = _NO_KEY

    def level(self, key: int) -> Level:
        """The level at `key` (in the book), parsing its quantity on first read."""
        level = self.levels[key]
        if not isinstance(level, tuple):
            level = self.levels[key] = (self.prices[key], _quantity(level))
        return level

    def cumulative(self, count: int) -> Decimal:
        """Total quantity of the best `count` levels."""
        if count <= 0:
            return _ZERO
        keys, cum = self.keys, self.cum
        if self.dirty != -_NO_KEY:
            valid = len(keys) - bisect_right(keys, self.dirty)  # the levels better than every change
            if valid < self.cum_n:
                self.cum_n = valid
            self.dirty = -_NO_KEY
        n = self.cum_n
        if n < count:
            del cum[n:]
            total = cum[n - 1] if n else _ZERO
            end = len(keys)
            for key in keys[end - count : end - n][::-1]:
                total += self.level(key)[1]
                cum.append(total)
            self.cum_n = count
        return cum[count - 1]


def _apply_levels_py(
    side: _Side,
    levels: WireLevels,
    parse_price: Callable[[str | Decimal, _Side], int],
    zeros: frozenset[object],
    no_key: int,
) -> None:
    """Apply one side's absolute level quantities (a quantity in `zeros` removes the level); a new price
    text is parsed by `parse_price`. What covered the changed levels is invalidated even when a level
    raises. The hot path: no calls but on a new price text. (Compiled in _book.c; this is the fallback.)"""
    pcache, keys, book = side.pcache, side.keys, side.levels
    best = -no_key  # the best key changed
    try:
        for price, qty in levels:
            try:
                key = pcache[price]
            except KeyError:
                key = parse_price(price, side)
            if qty in zeros:
                if key not in book:
                    continue
                del book[key]
                del keys[bisect_left(keys, key)]
            else:
                if key not in book:
                    insort(keys, key)
                book[key] = qty
            if key > best:
                best = key
    finally:
        if best != -no_key:  # invalidate what covered the changed levels
            if best > side.dirty:
                side.dirty = best
            if best >= side.top_worst:
                side.tops.clear()
                side.top_worst = no_key


def _top_py(side: _Side, n: int, no_key: int) -> Depth:
    """The best `n` levels of `side`, remembered in its `tops` until a level among them changes; the
    quantities changed since they were last read are parsed. (Compiled in _book.c; this is the fallback.)"""
    if n <= 0:
        return ()
    levels, prices = side.levels, side.prices
    chosen = side.keys[: -n - 1 : -1]
    best_first = [*map(levels.__getitem__, chosen)]
    for index, level in enumerate(best_first):  # parse those changed since last read (_quantity inlined)
        if level.__class__ is not tuple:
            key = chosen[index]
            try:
                quantity = Decimal(level)  # type: ignore[arg-type]
                if not _ZERO < quantity < _INFINITY:
                    raise InvalidOperation
            except InvalidOperation:
                raise ValueError(f"malformed quantity {level!r}") from None
            best_first[index] = levels[key] = (prices[key], quantity)
    top = side.tops[n] = tuple(best_first)  # type: ignore[arg-type]
    # fewer than n levels is the whole side, which any change alters
    worst = chosen[-1] if len(chosen) == n else -no_key
    if worst < side.top_worst:
        side.top_worst = worst
    return top


_apply_levels, _top = _apply_levels_py, _top_py
#: whether the compiled loops (moonship_core._book, built where a C compiler was) are in use;
#: MOONSHIP_PURE_PYTHON=1 makes the book use the pure-Python ones
COMPILED = False
if os.environ.get("MOONSHIP_PURE_PYTHON", "") in ("", "0"):
    try:
        from ._book import apply_levels as _apply_levels
        from ._book import top as _top

        COMPILED = True
    except ImportError:
        pass


class OrderBook:
    """Aggregated (L2) book of one market."""

    __slots__ = ("_asks", "_bids", "_pdecs", "sequence", "symbol", "version")

    def __init__(self, symbol: str = "", *, price_decimals: int = 8) -> None:
        self.symbol = symbol
        self._pdecs = price_decimals
        self._bids = _Side(1)
        self._asks = _Side(-1)
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

    def load_snapshot(self, bids: WireLevels, asks: WireLevels, sequence: int | None = None) -> None:
        """Replace the whole book (left empty, with no sequence, if a level is malformed)."""
        self.clear()
        try:
            self.apply_update(bids, asks)
        except BaseException:
            self.clear()
            raise
        self.sequence = sequence

    def apply_update(
        self,
        bids: WireLevels,
        asks: WireLevels,
        first_sequence: int | None = None,
        last_sequence: int | None = None,
    ) -> bool:
        """Apply absolute level quantities (0 removes the level) covering [first_sequence, last_sequence].

        Returns False for an update wholly older than the book; raises BookGap when updates are missing.
        A malformed price raises ValueError once the levels before it are applied, without advancing
        the sequence (so the next update raises BookGap).
        """
        if last_sequence is not None and (seq := self.sequence) is not None:
            if last_sequence <= seq:
                return False
            first = last_sequence if first_sequence is None else first_sequence
            if first > seq + 1:
                raise BookGap(seq + 1, first)
        self.version += 1
        if bids:
            _apply_levels(self._bids, bids, self._parse_price, _ZEROS, _NO_KEY)
        if asks:
            _apply_levels(self._asks, asks, self._parse_price, _ZEROS, _NO_KEY)
        if last_sequence is not None:
            self.sequence = last_sequence
        return True

    def set_level(self, side: Side, price: Decimal, quantity: Decimal) -> None:
        """Set one level's absolute quantity (0 removes it)."""
        if not (quantity.is_finite() and quantity >= 0):
            raise ValueError(f"malformed quantity {quantity!r}")
        level = ((price, quantity),)
        if side is _BUY:
            self.apply_update(level, ())
        else:
            self.apply_update((), level)

    def _parse_price(self, price: str | Decimal, side: _Side) -> int:
        try:
            if isinstance(price, str):
                units = parse_units(price, self._pdecs)
            elif isinstance(price, Decimal):
                units = decimal_units(price, self._pdecs)
            else:
                raise TypeError(f"a price must be str or Decimal, not {type(price).__name__}")
            if not 0 <= units < _NO_KEY:
                raise ValueError("out of range")
        except ValueError as e:
            raise ValueError(f"malformed price {price!r}: {e}") from None
        pcache, prices = side.pcache, side.prices
        if len(pcache) >= _PRICE_CACHE_MAX:  # forget old prices, but not those in the book
            pcache.clear()
            book = side.levels
            for stale in [key for key in prices if key not in book]:
                del prices[stale]
        key = pcache[price] = units * side.sign
        if key not in prices:
            prices[key] = Decimal(units).scaleb(-self._pdecs, _EXACT)
        return key

    # ----------------------------------------------------------------- reading
    @property
    def best_bid(self) -> Decimal | None:
        side = self._bids
        keys = side.keys
        return side.prices[keys[-1]] if keys else None

    @property
    def best_ask(self) -> Decimal | None:
        side = self._asks
        keys = side.keys
        return side.prices[keys[-1]] if keys else None

    @property
    def spread(self) -> Decimal | None:
        """Best ask minus best bid (negative when the book is crossed)."""
        b, a = self._bids.keys, self._asks.keys
        if not (a and b):
            return None
        return Decimal(-a[-1] - b[-1]).scaleb(-self._pdecs, _EXACT)

    @property
    def mid(self) -> Decimal | None:
        """The average of the best bid and ask (exact)."""
        b, a = self._bids.keys, self._asks.keys
        if not (a and b):
            return None
        twice = b[-1] - a[-1]
        if twice % 2:
            return Decimal(twice * 5).scaleb(-self._pdecs - 1, _EXACT)
        return Decimal(twice // 2).scaleb(-self._pdecs, _EXACT)

    def __len__(self) -> int:
        return len(self._bids.keys) + len(self._asks.keys)

    def depth(self, side: Side, n: int = 10) -> Depth:
        """The best `n` levels of one side (bids for BUY) as (price, quantity), best first."""
        book_side = self._bids if side is _BUY else self._asks
        top = book_side.tops.get(n)
        return _top(book_side, n, _NO_KEY) if top is None else top

    @property
    def bids(self) -> Depth:
        """Top 10 bids, best first."""
        top = self._bids.tops.get(10)
        return _top(self._bids, 10, _NO_KEY) if top is None else top

    @property
    def asks(self) -> Depth:
        """Top 10 asks, best first."""
        top = self._asks.tops.get(10)
        return _top(self._asks, 10, _NO_KEY) if top is None else top

    def levels(self, side: Side) -> Iterator[Level]:
        """Every level of one side, best first (lazy; do not change the book while iterating)."""
        book_side = self._bids if side is _BUY else self._asks
        return map(book_side.level, reversed(book_side.keys))

    def quantity_at(self, side: Side, price: Decimal) -> Decimal:
        """The quantity of the level at exactly `price` (0 if there is none)."""
        book_side = self._bids if side is _BUY else self._asks
        scaled = self._scaled(price)
        units = int(scaled)
        key = units * book_side.sign
        if units != scaled or key not in book_side.levels:
            return _ZERO
        return book_side.level(key)[1]

    def quantity_up_to(self, side: Side, price: Decimal) -> Decimal:
        """Total quantity on `side` at `price` or better (what a taker of the other side could fill)."""
        scaled = self._scaled(price)
        if side is _BUY:
            book_side, key = self._bids, ceil(scaled)
        else:
            book_side, key = self._asks, -floor(scaled)
        keys = book_side.keys
        return book_side.cumulative(len(keys) - bisect_left(keys, key))

    def _scaled(self, price: Decimal) -> Decimal:
        """`price` in (possibly fractional) price units."""
        if not price.is_finite():
            raise ValueError(f"price {price} is not finite")
        return price.scaleb(self._pdecs, _EXACT)

    def __repr__(self) -> str:
        return f"OrderBook({self.symbol} bid={self.best_bid} ask={self.best_ask} levels={len(self)})"
