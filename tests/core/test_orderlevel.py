"""OrderLevelBook: individual orders, with the L2 book kept as their aggregate."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moonship_core import BookGap, OrderBook, Side
from moonship_core.orderlevel import OrderLevelBook

D = Decimal
BUY, SELL = Side.BUY, Side.SELL


def l2(book: OrderBook, side: Side) -> list[tuple[Decimal, Decimal]]:
    return list(book.levels(side))


def make() -> OrderLevelBook:
    olb = OrderLevelBook(OrderBook("XBTZAR", price_decimals=2))
    olb.load(
        [("b1", "100.00", "1.0"), ("b2", "100.00", "0.5"), ("b3", "99.50", "2")],
        [("a1", "101.00", "0.3"), ("a2", "102", "1")],
        10,
    )
    return olb


def test_snapshot_aggregates_orders_into_levels() -> None:
    olb = make()
    assert l2(olb.book, BUY) == [(D("100"), D("1.5")), (D("99.5"), D("2"))]
    assert l2(olb.book, SELL) == [(D("101"), D("0.3")), (D("102"), D("1"))]
    assert olb.sequence == 10 and len(olb) == 5
    assert [o.id for o in olb.orders_at(BUY, D("100"))] == ["b1", "b2"]
    assert [o.id for o in olb.orders(BUY)] == ["b1", "b2", "b3"]
    assert [o.id for o in olb.orders(SELL)] == ["a1", "a2"]


def test_create_delete_reduce_then_commit_move_the_l2_book_at_once() -> None:
    olb = make()
    olb.create("b4", BUY, "100.00", "0.25")
    olb.delete("b3")
    assert olb.book.quantity_at(BUY, D("100")) == D("1.5")  # nothing reaches L2 before the commit
    assert olb.commit(11)
    assert l2(olb.book, BUY) == [(D("100"), D("1.75"))]
    assert olb.book.sequence == 11

    maker = olb.reduce("a1", "0.1")
    assert maker is not None and maker.side is SELL and maker.volume == D("0.2")
    olb.commit(12)
    assert olb.book.quantity_at(SELL, D("101")) == D("0.2")

    filled = olb.reduce("a1", "0.2")  # a maker filled to nothing leaves the book without a delete
    assert filled is not None and filled.volume == 0
    olb.commit(13)
    assert "a1" not in olb and olb.book.best_ask == D("102")
    assert olb.reduce("a1", "1") is None and olb.delete("nope") is None


def test_sequence_must_rise_by_one() -> None:
    olb = make()
    assert olb.expects(11)
    assert not olb.expects(10)  # stale
    with pytest.raises(BookGap) as gap:
        olb.expects(12)
    assert (gap.value.expected, gap.value.got) == (11, 12)
    olb.commit(11)  # a frame with no change still advances the sequence
    assert olb.expects(12)
    with pytest.raises(BookGap):
        OrderLevelBook(OrderBook("X")).expects(1)  # no snapshot yet


def test_create_replaces_an_order_with_the_same_id_and_a_rebound_book_is_reloaded() -> None:
    olb = make()
    olb.create("b1", BUY, "99.50", "1")
    olb.commit(11)
    assert l2(olb.book, BUY) == [(D("100"), D("0.5")), (D("99.5"), D("3"))]
    fresh = OrderBook("XBTZAR", price_decimals=2)
    olb.book = fresh
    olb.load([("x", "1", "1")], [], 5)
    assert l2(fresh, BUY) == [(D("1"), D("1"))] and fresh.sequence == 5 and len(olb) == 1


@pytest.mark.parametrize("volume", ["0", "-1", "abc", "NaN", ""])
def test_malformed_values_are_refused(volume: str) -> None:
    olb = make()
    with pytest.raises(ValueError):
        olb.create("x", BUY, "100", volume)
    with pytest.raises(ValueError):
        olb.load([("x", "100", volume)], [], 3)
    assert len(olb) == 0 and len(olb.book) == 0 and olb.sequence is None


# ---------------------------------------------------------------------------- property: L2 == aggregate(L3)
prices = st.integers(9_000, 9_020).map(lambda p: Decimal(p).scaleb(-2))
volumes = st.integers(1, 500).map(lambda v: Decimal(v).scaleb(-3))
ids = st.sampled_from([f"o{i}" for i in range(30)])
ops = st.lists(
    st.one_of(
        st.tuples(st.just("create"), ids, st.sampled_from([BUY, SELL]), prices, volumes),
        st.tuples(st.just("delete"), ids),
        st.tuples(st.just("reduce"), ids, volumes),
        st.tuples(st.just("commit")),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_l2_is_always_the_aggregate_of_the_orders(script: list[tuple[object, ...]]) -> None:
    olb = OrderLevelBook(OrderBook("T", price_decimals=2))
    olb.load([], [], 0)
    model: dict[str, tuple[Side, Decimal, Decimal]] = {}
    seq = 0
    for op in script:
        if op[0] == "create":
            _, oid, side, price, vol = op
            olb.create(str(oid), side, price, vol)  # type: ignore[arg-type]
            model[str(oid)] = (side, price, vol)  # type: ignore[assignment]
        elif op[0] == "delete":
            olb.delete(str(op[1]))
            model.pop(str(op[1]), None)
        elif op[0] == "reduce":
            oid, vol = str(op[1]), op[2]
            got = olb.reduce(oid, vol)  # type: ignore[arg-type]
            if oid in model:
                side, price, left = model[oid]
                left -= vol  # type: ignore[operator]
                assert got is not None and got.volume == max(left, Decimal(0))
                if left > 0:
                    model[oid] = (side, price, left)
                else:
                    del model[oid]
            else:
                assert got is None
        else:
            seq += 1
            assert olb.commit(seq)
    seq += 1
    olb.commit(seq)
    totals: dict[Side, dict[Decimal, Decimal]] = {BUY: defaultdict(Decimal), SELL: defaultdict(Decimal)}
    for side, price, vol in model.values():
        totals[side][price] += vol
    assert l2(olb.book, BUY) == sorted(totals[BUY].items(), reverse=True)
    assert l2(olb.book, SELL) == sorted(totals[SELL].items())
    assert len(olb) == len(model)
    assert {o.id for s in (BUY, SELL) for o in olb.orders(s)} == set(model)
    assert olb.sequence == seq
