"""Average-cost positions and P/L, fees counted against the position on either side."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from moonship_core import Fill, Side
from moonship_core.contracts.stores import FillRecord
from moonship_core.trading.portfolio import Portfolio, Position

D = Decimal
AT = datetime(2026, 1, 1, tzinfo=UTC)


def fill(price: str, qty: str, fee: str = "0", asset: str = "USDT") -> Fill:
    return Fill("t", D(price), D(qty), D(fee), asset, timestamp=AT)


def test_a_long_pays_its_fees_on_both_legs() -> None:
    position = Position()
    assert position.apply(Side.BUY, fill("100", "1", "1"), "BTC", "USDT") is None
    assert position.average_cost == D(101)
    assert position.apply(Side.SELL, fill("110", "1", "1"), "BTC", "USDT") == D(8)  # 110 - 101 - 1
    assert (position.quantity, position.average_cost, position.realized) == (0, 0, D(8))
    assert position.fees == {"USDT": D(2)}


def test_a_short_pays_its_fees_on_both_legs() -> None:
    position = Position()
    position.apply(Side.SELL, fill("100", "1", "1"), "BTC", "USDT")
    assert (position.quantity, position.average_cost) == (D(-1), D(99))  # received 100 less the fee
    assert position.apply(Side.BUY, fill("100", "1", "1"), "BTC", "USDT") == D(-2)  # flat price: the fees
    assert position.realized == D(-2)


def test_a_fill_through_zero_splits_its_fee() -> None:
    position = Position()
    position.apply(Side.BUY, fill("100", "1"), "BTC", "USDT")
    profit = position.apply(Side.SELL, fill("110", "3", "3"), "BTC", "USDT")
    assert profit == D(9)  # 10 on the unit closed, less its third of the fee
    assert (position.quantity, position.average_cost) == (D(-2), D(109))  # the rest of the fee: 1 a unit


def test_a_fee_in_the_base_asset_is_valued_at_the_fill_price() -> None:
    position = Position()
    position.apply(Side.BUY, fill("100", "1", "0.01", "BTC"), "BTC", "USDT")
    assert position.average_cost == D(101) and position.fees == {"BTC": D("0.01")}


def test_portfolio_books_per_strategy_and_market_and_restores() -> None:
    records = [
        FillRecord("a", "btc", "o1", Side.BUY, fill("100", "1", "1"), "BTC", "USDT"),
        FillRecord("b", "btc", "o2", Side.SELL, fill("100", "2"), "BTC", "USDT"),
        FillRecord("a", "eth", "o3", Side.BUY, fill("10", "1", "0.1"), "ETH", "USDT"),
        FillRecord("a", "btc", "o4", Side.SELL, fill("111", "1", "1"), "BTC", "USDT"),
    ]
    portfolio = Portfolio()
    portfolio.restore(records)
    assert portfolio.position("a", "btc").quantity == 0 and portfolio.position("b", "btc").quantity == D(-2)
    assert portfolio.total_profit("a") == D(9) and portfolio.last_trade_profit("a") == D(9)
    assert portfolio.total_profit("b") == 0 and portfolio.last_trade_profit("b") is None
    assert portfolio.fees("a") == {"USDT": D("2.1")}
    assert portfolio.position("a", "eth").average_cost == D("10.1")
