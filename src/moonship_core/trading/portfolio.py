"""Positions and P/L from a strategy's own fills, by the average-cost method."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

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
        if pos == 0 or (pos > 0) == (signed > 0):
            held = abs(pos)
            self.average_cost = (self.average_cost * held + price * qty + fee) / (held + qty)
            self.quantity = pos + signed
            return None
        closing = min(qty, abs(pos))
        direction = 1 if pos > 0 else -1
        profit = (price - self.average_cost) * closing * direction - fee
        self.realized += profit
        self.quantity = pos + (closing if signed > 0 else -closing)
        rest = qty - closing
        if rest > 0:
            self.quantity = rest if signed > 0 else -rest
            self.average_cost = price
        elif self.quantity == 0:
            self.average_cost = ZERO
        return profit

    def unrealized(self, mark: Decimal) -> Decimal:
        return (mark - self.average_cost) * self.quantity if self.quantity else ZERO
