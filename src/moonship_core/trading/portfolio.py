"""Positions and P/L from each strategy's own fills, by the average-cost method."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from ..contracts.stores import FillRecord
from ..model import ZERO, Fill, Side


@dataclass
class Position:
    """Position and realised P/L in one market by the average-cost method (fees count as cost)."""

    quantity: Decimal = ZERO
    average_cost: Decimal = ZERO
    realized: Decimal = ZERO
    fees: dict[str, Decimal] = field(default_factory=dict)

    def apply(self, side: Side, fill: Fill, base_asset: str, quote_asset: str) -> Decimal | None:
        """Book one fill; returns the profit it realised (None when it only opened or added)."""
        qty, price = fill.quantity, fill.price
        fee = ZERO
        if fill.fee:
            self.fees[fill.fee_asset] = self.fees.get(fill.fee_asset, ZERO) + fill.fee
            if fill.fee_asset == quote_asset:
                fee = fill.fee
            elif fill.fee_asset == base_asset:
                fee = fill.fee * price
        signed = qty if side is Side.BUY else -qty
        pos = self.quantity
        # a fee makes a long's entry dearer and a short's cheaper: it always counts against the position
        signed_fee = fee if signed > 0 else -fee
        if pos == 0 or (pos > 0) == (signed > 0):
            held = abs(pos)
            self.average_cost = (self.average_cost * held + price * qty + signed_fee) / (held + qty)
            self.quantity = pos + signed
            return None
        closing = min(qty, abs(pos))
        closing_fee = fee * closing / qty  # the rest of the fee belongs to the part that opens anew
        direction = 1 if pos > 0 else -1
        profit = (price - self.average_cost) * closing * direction - closing_fee
        self.realized += profit
        self.quantity = pos + (closing if signed > 0 else -closing)
        rest = qty - closing
        if rest > 0:
            self.quantity = rest if signed > 0 else -rest
            self.average_cost = price + (signed_fee - (closing_fee if signed > 0 else -closing_fee)) / rest
        elif self.quantity == 0:
            self.average_cost = ZERO
        return profit

    def unrealized(self, mark: Decimal) -> Decimal:
        return (mark - self.average_cost) * self.quantity if self.quantity else ZERO


class Portfolio:
    """Every strategy's positions (by strategy and market) and P/L, booked from its fills."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str], Position] = {}
        self._last_profit: dict[str, Decimal] = {}
        #: told of every fill booked, with the profit it realised (the risk layer's daily P/L)
        self.listeners: list[Callable[[FillRecord, Decimal | None], None]] = []

    def position(self, strategy: str, market: str) -> Position:
        """The strategy's position in the market (a live object: it changes as fills are booked)."""
        key = (strategy, market)
        position = self._positions.get(key)
        if position is None:  # not setdefault: a Position made on every call costs ~1 us (the risk checks)
            position = self._positions[key] = Position()
        return position

    def book(self, record: FillRecord) -> Decimal | None:
        """Book one fill to its strategy; returns the profit it realised (None when it only opened)."""
        position = self.position(record.strategy, record.market)
        profit = position.apply(record.side, record.fill, record.base_asset, record.quote_asset)
        if profit is not None:
            self._last_profit[record.strategy] = profit
        for listener in self.listeners:
            listener(record, profit)
        return profit

    def restore(self, fills: Iterable[FillRecord]) -> None:
        """Rebuild from journaled fills, oldest first."""
        for record in fills:
            if record.strategy:
                self.book(record)

    def last_trade_profit(self, strategy: str) -> Decimal | None:
        return self._last_profit.get(strategy)

    def total_profit(self, strategy: str) -> Decimal:
        return sum((p.realized for (s, _), p in self._positions.items() if s == strategy), ZERO)

    def fees(self, strategy: str) -> dict[str, Decimal]:
        """Fees the strategy paid, by asset."""
        out: dict[str, Decimal] = {}
        for (s, _), position in self._positions.items():
            if s == strategy:
                for asset, fee in position.fees.items():
                    out[asset] = out.get(asset, ZERO) + fee
        return out
