"""OrderBook: unit tests of every method, and a stateful property test against a naive model."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation, localcontext

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from moonship_core import book as book_module
from moonship_core.book import Depth, Level, OrderBook, decimal_units, parse_units
from moonship_core.errors import BookGap
from moonship_core.model import Side

D = Decimal
BUY, SELL = Side.BUY, Side.SELL


@pytest.fixture(autouse=True, params=["compiled", "pure"])
def loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test on both implementations of the book's loops: compiled (moonship_core._book), pure Python."""
    if request.param == "pure":
        monkeypatch.setattr(book_module, "_apply_levels", book_module._apply_levels_py)
        monkeypatch.setattr(book_module, "_top", book_module._top_py)
    elif not book_module.COMPILED:
        pytest.skip("the compiled loops are not in use (no C compiler at install, or MOONSHIP_PURE_PYTHON)")
    yield request.param


def make(bids: list[tuple[str, str]], asks: list[tuple[str, str]], sequence: int | None = 10) -> OrderBook:
    book = OrderBook("BTCUSDT")
    book.load_snapshot(bids, asks, sequence)
    return book


@pytest.fixture
def book() -> OrderBook:
    return make(
        [("100.00", "1"), ("99.50", "2.5"), ("99.00", "0.00240000")],
        [("100.50", "3"), ("101.00", "4.00000000"), ("102.25", "5")],
    )


# ------------------------------------------------------------------ parsing helpers
@pytest.mark.parametrize(
    ("text", "units"),
    [("1", 100_000_000), ("1.", 100_000_000), (".5", 50_000_000), ("0.00240000", 240_000), ("0", 0),
     ("30000.01000000", 3_000_001_000_000), ("1.1234567800", 112_345_678), ("007.5", 750_000_000)],
)
def test_parse_units(text: str, units: int) -> None:
    assert parse_units(text, 8) == units


@pytest.mark.parametrize(
    "text", ["", ".", "-1", "+1", "1e5", "1E-8", "1.2.3", " 1", "1 ", "1_000", "abc", "nan", "\u0661", "1,5"]
)
def test_parse_units_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a plain non-negative decimal"):
        parse_units(text, 8)


def test_parse_units_rejects_too_many_decimals() -> None:
    assert parse_units("1.230", 2) == 123
    with pytest.raises(ValueError, match="more than 2 decimals"):
        parse_units("1.234", 2)
    assert parse_units("5", 0) == 5


def test_decimal_units() -> None:
    assert decimal_units(D("30000.01"), 8) == 3_000_001_000_000
    assert decimal_units(D("1E+2"), 2) == 10_000
    assert decimal_units(D("-1.5"), 1) == -15
    for bad in (D("1.001"), D("NaN"), D("Infinity"), D("-Infinity")):
        with pytest.raises(ValueError, match="not a whole number"):
            decimal_units(bad, 2)


def test_unit_conversions_ignore_the_callers_decimal_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 3
        assert decimal_units(D("30000.01"), 8) == 3_000_001_000_000
        book = make([("30000.01", "1")], [("30000.02", "1")])
        assert book.best_bid == D("30000.01")
        assert book.spread == D("0.01")
        assert book.mid == D("30000.015")
        assert book.quantity_up_to(BUY, D("30000.005")) == 1


# ------------------------------------------------------------------ writing
def test_load_snapshot(book: OrderBook) -> None:
    assert book.sequence == 10
    assert len(book) == 6
    assert book.best_bid == D("100") and book.best_ask == D("100.5")
    assert book.symbol == "BTCUSDT"
    book.load_snapshot([("1", "1"), ("2", "0"), ("3", "0.000")], [], 3)  # replaces; zero levels are skipped
    assert list(book.levels(BUY)) == [(D(1), D(1))]
    assert book.best_ask is None and book.sequence == 3 and len(book) == 1


def test_load_snapshot_with_a_repeated_price_keeps_the_last() -> None:
    book = make([("1.0", "1"), ("1.00", "2"), ("1", "0"), ("1.000", "3")], [])
    assert list(book.levels(BUY)) == [(D(1), D(3))]


def test_load_snapshot_without_sequence_and_with_decimals() -> None:
    book = OrderBook()
    book.load_snapshot([(D("1.5"), D("2")), (D("1.4"), D("0E-8"))], [(D("1.6"), D(1))])
    assert book.sequence is None
    assert list(book.levels(BUY)) == [(D("1.5"), D(2))]
    assert book.asks == ((D("1.6"), D(1)),)


def test_malformed_snapshot_leaves_the_book_empty(book: OrderBook) -> None:
    with pytest.raises(ValueError, match="malformed price '-1'"):
        book.load_snapshot([("1", "1")], [("2", "1"), ("-1", "1")], 99)
    assert len(book) == 0 and book.sequence is None
    assert book.best_bid is None and book.bids == () and book.quantity_up_to(SELL, D(5)) == 0


def test_apply_update_inserts_changes_and_removes(book: OrderBook) -> None:
    version = book.version
    bids, asks = [("99.75", "7"), ("100.00", "1.5"), ("99.00", "0")], [("100.50", "0.00000000")]
    assert book.apply_update(bids, asks, 11, 11)
    assert book.version == version + 1 and book.sequence == 11
    assert list(book.levels(BUY)) == [(D("100"), D("1.5")), (D("99.75"), D(7)), (D("99.5"), D("2.5"))]
    assert list(book.levels(SELL)) == [(D(101), D(4)), (D("102.25"), D(5))]


def test_removing_an_absent_level_is_a_no_op(book: OrderBook) -> None:
    assert book.apply_update([("42", "0")], [("43", "0.0")])
    assert len(book) == 6


@pytest.mark.parametrize("zero", [D(0), D("0E-8"), D("-0"), D("0.00000000"), D("-0E+3")])
def test_a_decimal_zero_of_any_exponent_removes_the_level(book: OrderBook, zero: Decimal) -> None:
    book.apply_update([(D("100.00"), zero)], [])
    assert book.best_bid == D("99.5")
    book.set_level(SELL, D("100.5"), zero)
    assert book.best_ask == D(101)
    assert book.quantity_at(SELL, D("100.5")) == 0


@pytest.mark.parametrize("zero", ["0", "0.", "0.0", "0.00000000", "0." + "0" * 30])
def test_zero_quantity_texts_remove_the_level(book: OrderBook, zero: str) -> None:
    book.apply_update([("100", zero)], [])
    assert book.best_bid == D("99.5")


def test_update_with_decimal_levels(book: OrderBook) -> None:
    book.apply_update([(D("100.25"), D("1.10"))], [(D("100.5"), D("0.5"))])
    assert book.bids[0] == (D("100.25"), D("1.1"))
    assert book.asks[0] == (D("100.5"), D("0.5"))


def test_stale_update_is_ignored(book: OrderBook) -> None:
    version, before = book.version, list(book.levels(BUY))
    assert book.apply_update([("100", "9")], [], 5, 10) is False
    assert book.apply_update([("100", "9")], [], None, 3) is False
    assert book.version == version and book.sequence == 10 and list(book.levels(BUY)) == before


def test_gap_raises_book_gap(book: OrderBook) -> None:
    with pytest.raises(BookGap) as info:
        book.apply_update([("100", "9")], [], 12, 15)
    assert (info.value.expected, info.value.got) == (11, 12)
    with pytest.raises(BookGap) as info:
        book.apply_update([("100", "9")], [], None, 13)  # no first: the update is just `last`
    assert (info.value.expected, info.value.got) == (11, 13)
    assert book.sequence == 10 and book.quantity_at(BUY, D(100)) == 1


@pytest.mark.parametrize(("first", "last"), [(11, 11), (5, 11), (11, 20), (8, 12), (None, 11)])
def test_update_straddling_the_book_applies(book: OrderBook, first: int | None, last: int) -> None:
    assert book.apply_update([("100", "9")], [], first, last)
    assert book.sequence == last and book.quantity_at(BUY, D(100)) == 9


def test_update_without_sequence_always_applies(book: OrderBook) -> None:
    assert book.apply_update([("100", "9")], [], 3, None)
    assert book.sequence == 10 and book.quantity_at(BUY, D(100)) == 9


def test_update_before_any_snapshot_applies_and_sets_the_sequence() -> None:
    book = OrderBook()
    assert book.sequence is None
    assert book.apply_update([("1", "1")], [], 7, 9)
    assert book.sequence == 9


def test_set_level(book: OrderBook) -> None:
    version = book.version
    book.set_level(BUY, D("100.1"), D("0.25"))
    book.set_level(SELL, D("100.5"), D(0))
    book.set_level(SELL, D("100.4"), D("1E+1"))
    assert book.version == version + 3 and book.sequence == 10
    assert book.bids[:2] == ((D("100.1"), D("0.25")), (D(100), D(1)))
    assert book.asks[:2] == ((D("100.4"), D(10)), (D(101), D(4)))
    for bad in (D(-1), D("NaN"), D("Infinity")):
        with pytest.raises(ValueError, match="malformed quantity"):
            book.set_level(BUY, D(1), bad)


@pytest.mark.parametrize("price", ["-1", "abc", "1e5", "", "1.2.3", "1.000000001", "+2", "\u0661"])
def test_malformed_price_raises_a_value_error_naming_it(book: OrderBook, price: str) -> None:
    assert book.bids[0] == (D(100), D(1))  # fills the depth cache
    assert book.quantity_up_to(BUY, D(99)) == D("3.5024")  # and the sums
    with pytest.raises(ValueError, match=re.escape(f"malformed price {price!r}")):
        book.apply_update([("99.9", "1"), (price, "1")], [], 11, 11)
    # the levels before it are applied, the caches know, the sequence is not advanced
    assert book.bids[1] == (D("99.9"), D(1))
    assert book.quantity_up_to(BUY, D(99)) == D("4.5024")
    assert book.sequence == 10
    with pytest.raises(BookGap):
        book.apply_update([], [], 12, 12)


@pytest.mark.parametrize("price", [D(-1), D("NaN"), D("Infinity"), D("0.000000001")])
def test_malformed_decimal_price(book: OrderBook, price: Decimal) -> None:
    with pytest.raises(ValueError, match="malformed price"):
        book.set_level(SELL, price, D(1))
    assert len(book) == 6


def test_price_of_another_type_is_a_type_error(book: OrderBook) -> None:
    with pytest.raises(TypeError, match="must be str or Decimal"):
        book.apply_update([(100.5, "1")], [])  # type: ignore[arg-type]


def test_price_decimals() -> None:
    book = OrderBook(price_decimals=2)
    book.load_snapshot([("1.230", "1")], [("1.24", "1")])
    assert book.best_bid == D("1.23") and book.spread == D("0.01")
    with pytest.raises(ValueError, match="more than 2 decimals"):
        book.apply_update([("1.234", "1")], [])


@pytest.mark.parametrize("quantity", ["abc", "-1", "NaN", "sNaN", "Infinity", "0E-8", "1.2.3", "-0", ""])
def test_malformed_quantity_raises_a_value_error_naming_it_on_read(quantity: str) -> None:
    book = make([("100", quantity), ("99", "1")], [("101", "1")])
    assert book.best_bid == D(100)  # quantities are parsed lazily
    message = re.escape(f"malformed quantity {quantity!r}")
    for read in (lambda: book.bids, lambda: book.depth(BUY, 1), lambda: list(book.levels(BUY)),
                 lambda: book.quantity_at(BUY, D(100)), lambda: book.quantity_up_to(BUY, D(99))):
        with pytest.raises(ValueError, match=message) as info:
            read()
        assert not isinstance(info.value, InvalidOperation)
    assert book.asks == ((D(101), D(1)),)
    assert book.quantity_at(BUY, D(99)) == 1
    book.apply_update([("100", "2")], [])  # a good quantity replaces it
    assert book.bids == ((D(100), D(2)), (D(99), D(1)))


def test_malformed_decimal_quantity_in_an_update_raises_on_read(book: OrderBook) -> None:
    book.apply_update([(D("100"), D("-2"))], [])
    with pytest.raises(ValueError, match="malformed quantity Decimal"):
        book.quantity_at(BUY, D(100))


def test_clear(book: OrderBook) -> None:
    version = book.version
    book.clear()
    assert len(book) == 0 and book.sequence is None and book.version == version + 1
    assert book.best_bid is None and book.bids == () and book.asks == () and book.spread is None
    assert book.quantity_up_to(BUY, D(0)) == 0
    book.apply_update([("5", "1")], [("6", "1")])
    assert list(book.levels(BUY)) == [(D(5), D(1))] and book.mid == D("5.5")


def test_price_cache_overflow_keeps_the_book_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(book_module, "_PRICE_CACHE_MAX", 4)
    book = make([("1", "1"), ("2", "2")], [("50", "1")])
    for i in range(3, 40):
        change = (f"{i - 1}.0", "0") if i > 3 else ("1.0", "3")  # another text for a known price
        book.apply_update([(f"{i}", "1"), change], [(f"{60 + i}", "2")])
    assert book.bids == ((D(39), D(1)), (D(2), D(2)), (D(1), D(3)))
    assert book.best_ask == D(50) and len(book) == 41
    assert book.quantity_up_to(SELL, D(99)) == D(1 + 2 * 37)


# ------------------------------------------------------------------ reading
def test_best_prices_spread_and_mid(book: OrderBook) -> None:
    assert book.best_bid == D(100) and book.best_ask == D("100.5")
    assert book.spread == D("0.5") and book.mid == D("100.25")
    book.set_level(SELL, D("100.01"), D(1))
    assert book.mid == D("100.005") and book.spread == D("0.01")


def test_crossed_book_has_a_negative_spread() -> None:
    book = make([("101", "1")], [("100", "1")])
    assert book.spread == D(-1) and book.mid == D("100.5")


def test_one_sided_book() -> None:
    book = make([("1", "1")], [])
    assert book.best_ask is None and book.spread is None and book.mid is None and book.asks == ()
    assert book.bids == ((D(1), D(1)),)


def test_depth(book: OrderBook) -> None:
    assert book.depth(BUY, 2) == ((D(100), D(1)), (D("99.5"), D("2.5")))
    assert book.depth(SELL, 1) == ((D("100.5"), D(3)),)
    assert book.depth(SELL, 50) == book.asks == ((D("100.5"), D(3)), (D(101), D(4)), (D("102.25"), D(5)))
    assert book.depth(BUY) == book.bids
    assert book.depth(BUY, 0) == () and book.depth(BUY, -3) == ()


def test_depth_cache_follows_changes(book: OrderBook) -> None:
    top2 = book.depth(BUY, 2)
    book.apply_update([("98", "1"), ("99", "0")], [])  # beyond the top two
    assert book.depth(BUY, 2) is top2
    assert book.depth(BUY, 3) == ((D(100), D(1)), (D("99.5"), D("2.5")), (D(98), D(1)))
    book.apply_update([("99.5", "7")], [])
    assert book.depth(BUY, 2) == ((D(100), D(1)), (D("99.5"), D(7)))
    everything = book.depth(SELL, 10)
    book.apply_update([], [("200", "1")])  # a short answer is the whole side: any change alters it
    assert book.depth(SELL, 10) == (*everything, (D(200), D(1)))


def test_a_depth_is_a_tuple_that_keeps_the_levels_it_was_taken_with(book: OrderBook) -> None:
    top = book.depth(BUY, 3)
    book.apply_update([("100", "0"), ("99.5", "9"), ("99.75", "1")], [])  # after it was taken
    assert type(top) is tuple and top == ((D(100), D(1)), (D("99.5"), D("2.5")), (D(99), D("0.0024")))
    assert book.depth(BUY, 3) == ((D("99.75"), D(1)), (D("99.5"), D(9)), (D(99), D("0.0024")))


def test_depth_cache_sees_a_change_at_its_last_level(book: OrderBook) -> None:
    assert book.depth(BUY, 2)[1] == (D("99.5"), D("2.5"))
    book.apply_update([("99.5", "6")], [])
    assert book.depth(BUY, 2)[1] == (D("99.5"), D(6))
    book.apply_update([("99.5", "0")], [])
    assert book.depth(BUY, 2) == ((D(100), D(1)), (D(99), D("0.0024")))


def test_levels_best_first(book: OrderBook) -> None:
    assert [p for p, _ in book.levels(BUY)] == [D(100), D("99.5"), D(99)]
    assert [p for p, _ in book.levels(SELL)] == [D("100.5"), D(101), D("102.25")]
    assert list(OrderBook().levels(SELL)) == []


def test_quantity_at(book: OrderBook) -> None:
    assert book.quantity_at(BUY, D("99.00")) == D("0.0024")
    assert book.quantity_at(SELL, D(101)) == 4
    assert book.quantity_at(SELL, D(100)) == 0  # no such level
    assert book.quantity_at(BUY, D("100.5")) == 0  # a price of the other side
    assert book.quantity_at(BUY, D("100.000000001")) == 0  # finer than the book's price units
    with pytest.raises(ValueError, match="not finite"):
        book.quantity_at(BUY, D("NaN"))


@pytest.mark.parametrize(
    ("side", "price", "total"),
    [(BUY, D(100), D(1)), (BUY, D("99.5"), D("3.5")), (BUY, D("99.75"), D(1)), (BUY, D(99), D("3.5024")),
     (BUY, D(1), D("3.5024")), (BUY, D(101), D(0)), (BUY, D("99.499999999999"), D("3.5")),
     (BUY, D("99.5000000000001"), D(1)), (SELL, D("100.5"), D(3)), (SELL, D("100.75"), D(3)),
     (SELL, D(100), D(0)), (SELL, D(1000), D(12)), (SELL, D("100.4999999999"), D(0)),
     (SELL, D("101.0000000001"), D(7)), (BUY, D(-5), D("3.5024")), (SELL, D(-5), D(0))],
)
def test_quantity_up_to(book: OrderBook, side: Side, price: Decimal, total: Decimal) -> None:
    assert book.quantity_up_to(side, price) == total


def test_quantity_up_to_follows_changes(book: OrderBook) -> None:
    assert book.quantity_up_to(BUY, D(99)) == D("3.5024")
    book.apply_update([("99.5", "0"), ("101", "1")], [])
    assert book.quantity_up_to(BUY, D(99)) == D("2.0024")
    book.apply_update([("98", "5")], [])  # beyond the sums: they stay valid
    assert book.quantity_up_to(BUY, D(99)) == D("2.0024")
    assert book.quantity_up_to(BUY, D(98)) == D("7.0024")
    with pytest.raises(ValueError, match="not finite"):
        book.quantity_up_to(SELL, D("Infinity"))


def test_repr(book: OrderBook) -> None:
    assert repr(book) == "OrderBook(BTCUSDT bid=100.00000000 ask=100.50000000 levels=6)"


# ------------------------------------------------------------------ stateful property test
TICKS = st.integers(1, 30)  # prices 100.01 .. 100.30: a small grid, so levels are hit again and again
POSITIVE_QTY = st.builds(lambda n, e: D(n).scaleb(-e), st.integers(1, 10**6), st.integers(0, 8))
ZERO_TEXTS = st.sampled_from(["0", "0.0", "0.00000000", "0."])
DECIMAL_ZEROS = st.sampled_from([D(0), D("0E-8"), D("-0"), D("0.000")])


def price_of(tick: int) -> Decimal:
    return D(10_000 + tick).scaleb(-2)


@st.composite
def price_texts(draw: st.DrawFn) -> tuple[Decimal, str]:
    """A grid price and one of its texts (several texts per price exercise the price cache)."""
    price = price_of(draw(TICKS))
    text = draw(st.sampled_from([f"{price}", f"{price:.8f}", f"{price}0", f"{price}000"]))
    return price, text


@st.composite
def qty_texts(draw: st.DrawFn) -> tuple[Decimal, str]:
    if draw(st.integers(0, 3)) == 0:
        return D(0), draw(ZERO_TEXTS)
    qty = draw(POSITIVE_QTY)
    return qty, draw(st.sampled_from([f"{qty:f}", f"{qty:.8f}"]))


TextLevel = tuple[tuple[Decimal, str], tuple[Decimal, str]]  # (price, text), (quantity, text)
TEXT_LEVELS = st.lists(st.tuples(price_texts(), qty_texts()), max_size=8)


def wire(levels: list[TextLevel]) -> list[tuple[str, str]]:
    return [(price, qty) for (_, price), (_, qty) in levels]


def values(levels: list[TextLevel]) -> list[Level]:
    return [(price, qty) for (price, _), (qty, _) in levels]


DECIMAL_LEVELS = st.lists(
    st.tuples(TICKS.map(price_of), st.one_of(DECIMAL_ZEROS, POSITIVE_QTY, POSITIVE_QTY)), max_size=6)
#: on the grid, between ticks (also finer than the book's price units), and beyond the book
QUERY_PRICES = st.builds(
    lambda t, half, nudge: D(10_000 * 2 + 2 * t + half).scaleb(-2) / 2 + nudge,
    st.integers(-5, 36),
    st.integers(0, 1),
    st.sampled_from([D(0), D(0), D("1E-12"), D("-1E-12")]),
)


class BookMachine(RuleBasedStateMachine):
    """Writes and reads interleaved at random; every read must match a dict per side."""

    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook("TEST")
        self.model: dict[Side, dict[Decimal, Decimal]] = {BUY: {}, SELL: {}}
        self.sequence: int | None = None
        self.taken: list[tuple[Side, Depth, tuple[Level, ...]]] = []  # depths taken, with the levels then

    def _apply_model(self, side: Side, levels: list[Level]) -> None:
        for price, qty in levels:
            if qty == 0:
                self.model[side].pop(price, None)
            else:
                self.model[side][price] = qty

    def _sorted(self, side: Side) -> list[Level]:
        return sorted(self.model[side].items(), reverse=side is BUY)

    @rule(bids=TEXT_LEVELS, asks=TEXT_LEVELS, sequence=st.none() | st.integers(0, 100))
    def snapshot(self, bids: list[TextLevel], asks: list[TextLevel], sequence: int | None) -> None:
        self.book.load_snapshot(wire(bids), wire(asks), sequence)
        self.model = {BUY: {}, SELL: {}}
        self._apply_model(BUY, values(bids))
        self._apply_model(SELL, values(asks))
        self.sequence = sequence

    @rule(bids=TEXT_LEVELS, asks=TEXT_LEVELS, first_offset=st.none() | st.integers(-3, 3),
          last_offset=st.none() | st.integers(-2, 4))
    def update(
        self, bids: list[TextLevel], asks: list[TextLevel], first_offset: int | None, last_offset: int | None
    ) -> None:
        seq = self.sequence if self.sequence is not None else 50
        last = None if last_offset is None else seq + last_offset
        first = None if first_offset is None or last is None else min(last, seq + 1 + first_offset)
        wire_bids, wire_asks = wire(bids), wire(asks)
        version = self.book.version
        if last is not None and self.sequence is not None:
            if last <= self.sequence:
                assert self.book.apply_update(wire_bids, wire_asks, first, last) is False
                assert self.book.version == version
                return
            got = last if first is None else first
            if got > self.sequence + 1:
                with pytest.raises(BookGap) as info:
                    self.book.apply_update(wire_bids, wire_asks, first, last)
                assert (info.value.expected, info.value.got) == (self.sequence + 1, got)
                assert self.book.version == version
                return
        assert self.book.apply_update(wire_bids, wire_asks, first, last) is True
        assert self.book.version > version
        self._apply_model(BUY, values(bids))
        self._apply_model(SELL, values(asks))
        if last is not None:
            self.sequence = last

    @rule(side=st.sampled_from([BUY, SELL]), rank=st.integers(-1, 12), qty=qty_texts())
    def change_near_edges(self, side: Side, rank: int, qty: tuple[Decimal, str]) -> None:
        """Change the level `rank` from the top, or add one a tick past the worst (rank -1, or past the end):
        the edges of the cached depths and sums."""
        levels = self._sorted(side)
        if 0 <= rank < len(levels):
            price = levels[rank][0]
        elif levels:
            price = levels[-1][0] + (D("-0.01") if side is BUY else D("0.01"))
        else:
            price = price_of(15)
        level = [(f"{price}", qty[1])]
        assert self.book.apply_update(*((level, []) if side is BUY else ([], level)))
        self._apply_model(side, [(price, qty[0])])

    @rule(bids=DECIMAL_LEVELS, asks=DECIMAL_LEVELS)
    def update_decimals(self, bids: list[Level], asks: list[Level]) -> None:
        assert self.book.apply_update(bids, asks)
        self._apply_model(BUY, bids)
        self._apply_model(SELL, asks)

    @rule(side=st.sampled_from([BUY, SELL]), tick=TICKS,
          qty=st.one_of(DECIMAL_ZEROS, POSITIVE_QTY, POSITIVE_QTY))
    def set_level(self, side: Side, tick: int, qty: Decimal) -> None:
        self.book.set_level(side, price_of(tick), qty)
        self._apply_model(side, [(price_of(tick), qty)])

    @rule()
    def clear(self) -> None:
        self.book.clear()
        self.model = {BUY: {}, SELL: {}}
        self.sequence = None

    # reads
    @rule()
    def best_prices(self) -> None:
        bids, asks = self._sorted(BUY), self._sorted(SELL)
        assert self.book.best_bid == (bids[0][0] if bids else None)
        assert self.book.best_ask == (asks[0][0] if asks else None)
        if bids and asks:
            assert self.book.spread == asks[0][0] - bids[0][0]
            assert self.book.mid == (asks[0][0] + bids[0][0]) / 2
        else:
            assert self.book.spread is None and self.book.mid is None

    @rule(side=st.sampled_from([BUY, SELL]), n=st.sampled_from([0, 1, 2, 3, 5, 10, 10, 10, 20, 40]))
    def depth(self, side: Side, n: int) -> None:
        assert self.book.depth(side, n) == tuple(self._sorted(side)[:n])

    @rule(side=st.sampled_from([BUY, SELL]))
    def every_depth(self, side: Side) -> None:
        levels = self._sorted(side)
        for n in range(len(levels) + 2):
            assert self.book.depth(side, n) == tuple(levels[:n])

    @rule()
    def top_ten(self) -> None:
        assert self.book.bids == tuple(self._sorted(BUY)[:10])
        assert self.book.asks == tuple(self._sorted(SELL)[:10])

    @rule(side=st.sampled_from([BUY, SELL]), n=st.sampled_from([1, 2, 3, 10, 40]))
    def take_depth(self, side: Side, n: int) -> None:
        """Keep a depth, unread: whatever the book does next, it holds the levels it was taken with."""
        self.taken.append((side, self.book.depth(side, n), tuple(self._sorted(side)[:n])))

    @rule(data=st.data())
    def read_taken_depth(self, data: st.DataObject) -> None:
        """Read a kept depth part by part (a level, a slice), then whole; the book is left as it was."""
        if not self.taken:
            return
        side, depth, levels = data.draw(st.sampled_from(self.taken))
        index = data.draw(st.integers(-len(levels) - 1, len(levels)))
        if -len(levels) <= index < len(levels):
            assert depth[index] == levels[index]
        else:
            with pytest.raises(IndexError):
                depth[index]
        part = data.draw(st.slices(len(levels)))
        assert depth[part] == levels[part]
        assert len(depth) == len(levels) and depth == levels and list(depth) == list(levels)
        self.levels(side)

    @rule(side=st.sampled_from([BUY, SELL]), price=QUERY_PRICES)
    def quantity_up_to(self, side: Side, price: Decimal) -> None:
        levels = self.model[side].items()
        if side is BUY:
            expected = sum((q for p, q in levels if p >= price), D(0))
        else:
            expected = sum((q for p, q in levels if p <= price), D(0))
        assert self.book.quantity_up_to(side, price) == expected

    @rule(side=st.sampled_from([BUY, SELL]), prices=st.permutations(range(-1, 33)))
    def every_quantity_up_to(self, side: Side, prices: list[int]) -> None:
        for tick in prices:
            self.quantity_up_to(side, price_of(tick))

    @rule(side=st.sampled_from([BUY, SELL]), price=QUERY_PRICES)
    def quantity_at(self, side: Side, price: Decimal) -> None:
        assert self.book.quantity_at(side, price) == self.model[side].get(price, D(0))

    @rule(side=st.sampled_from([BUY, SELL]))
    def levels(self, side: Side) -> None:
        assert list(self.book.levels(side)) == self._sorted(side)

    @invariant()
    def length_and_sequence(self) -> None:
        assert len(self.book) == len(self.model[BUY]) + len(self.model[SELL])
        assert self.book.sequence == self.sequence


def test_book_machine(loops: str) -> None:
    run_state_machine_as_test(
        BookMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# ------------------------------------------------------------------ the compiled loops
def test_the_install_compiled_the_loops_where_a_compiler_is() -> None:
    if os.environ.get("MOONSHIP_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("MOONSHIP_PURE_PYTHON is set")
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler: the pure-Python loops are the book's")
    assert book_module.COMPILED, "reinstall (pip install -e .): moonship_core._book was not built"


def test_moonship_pure_python_selects_the_fallback() -> None:
    code = "from moonship_core import book; print(book.COMPILED, book._top is book._top_py)"
    env = {**os.environ, "MOONSHIP_PURE_PYTHON": "1"}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert shown.stdout == "False True\n", shown.stderr


def test_a_malformed_level_raises_what_unpacking_raises(book: OrderBook) -> None:
    assert book.bids[0] == (D(100), D(1))
    for level, error, message in [
        (("101",), ValueError, "not enough values"), (("1", "1", "x"), ValueError, "too many values"),
        (iter(["101"]), ValueError, "not enough values"), (7, TypeError, "cannot unpack non-iterable int"),
        ((["101"], "1"), TypeError, "unhashable type"), (("101", ["1"]), TypeError, "unhashable type"),
    ]:  # fmt: skip
        with pytest.raises(error, match=message):
            book.apply_update([("100.25", "1"), level], [], 11, 11)  # type: ignore[list-item]
        assert book.bids[0] == (D("100.25"), D(1)) and book.sequence == 10
        book.apply_update([("100.25", "0")], [])
    book.apply_update((level for level in [("100.5", "2")]), [])  # type: ignore[arg-type]
    assert book.bids[0] == (D("100.5"), D(2))


def churn(book: OrderBook, rounds: int) -> None:
    """Writes and reads that leave the book as they found it, errors included."""
    for i in range(rounds):
        price = f"{100 + i % 50}.25"
        book.apply_update([(price, f"{i}.5"), ("99", "2")], [(f"{50 + i % 50}", "1")])
        assert book.bids[0][1] == D(f"{i}.5") and book.depth(SELL, 3)[0] == (D(50 + i % 50), D(1))
        for bad in ([(price, "1"), ("-1", "1")], [("1", "x", "y")], [(price, "nan")]):
            try:
                book.apply_update(bad, [])
                book.depth(BUY, 2)
            except ValueError:
                pass
        book.apply_update([(price, "0"), ("99", "0.0024")], [(f"{50 + i % 50}", "0")])
        assert book.depth(BUY, 40)[0] == (D(100), D(1)) and book.quantity_up_to(BUY, D(99)) == D("3.5024")


def test_the_loops_keep_no_references(book: OrderBook) -> None:
    churn(book, 100)  # every price text cached, every level shape seen
    text = "3.75"
    before = sys.getrefcount(text)
    book.apply_update([("100", text)], [])
    book.apply_update([("100", "1")], [])
    with pytest.raises(ValueError, match="malformed price"):
        book.apply_update([("100", text), ("-1", text)], [])
    assert book.bids[0] == (D(100), D("3.75"))
    book.apply_update([("100", "1")], [])
    assert book.bids[0] == (D(100), D(1)) and sys.getrefcount(text) == before
    tracemalloc.start()
    try:
        churn(book, 1000)
        first = tracemalloc.get_traced_memory()[0]
        churn(book, 10_000)
        grown = tracemalloc.get_traced_memory()[0] - first
    finally:
        tracemalloc.stop()
    assert grown < 20_000  # a leak of one small object per round would be 280 kB or more
