"""What a trader reads in the log: each strategy's figures (position, P/L, fees, orders, fills) as one line
every `moonship.engine.summary_interval` seconds, and as a table when the engine stops."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..model import ZERO, fmt_decimal
from ..tables import aligned
from .orders import OrderManager
from .strategy import Strategy


@dataclass(frozen=True)
class Figures:
    name: str
    active: bool
    #: base quantity by market name
    positions: dict[str, tuple[Decimal, str]]
    realized: Decimal
    unrealized: Decimal
    quote: str
    fees: dict[str, Decimal]
    orders: int
    open_orders: int
    fills: int

    @property
    def profit(self) -> Decimal:
        return self.realized + self.unrealized


def figures(strategy: Strategy, orders: OrderManager) -> Figures:
    """The strategy's figures now; unrealized P/L is marked at each market's mid (or last price)."""
    name = strategy.name
    portfolio = orders.portfolio
    unrealized = ZERO
    positions: dict[str, tuple[Decimal, str]] = {}
    quote = ""
    for market_name, market in strategy.markets.items():
        position = strategy.positions[market_name]
        info = market.info
        positions[market_name] = (position.quantity, info.base_asset if info else "")
        quote = quote or (info.quote_asset if info else "")
        mark = market.book.mid or market.last_price
        if mark is not None:
            unrealized += position.unrealized(mark)
    return Figures(
        name=name,
        active=strategy.active,
        positions=positions,
        realized=portfolio.total_profit(name),
        unrealized=unrealized,
        quote=quote,
        fees=portfolio.fees(name),
        orders=orders.placed.get(name, 0),
        open_orders=len(orders.open_orders(owner=name)),
        fills=orders.filled.get(name, 0),
    )


def money(value: Decimal) -> str:
    """A money figure for the log: at most 8 decimals."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        value = value.quantize(Decimal("1e-8"))
    return fmt_decimal(value)


def _position(f: Figures) -> str:
    parts = [f"{money(q)}{' ' + base if base else ''}" for q, base in f.positions.values()]
    if len(f.positions) > 1:
        parts = [f"{m} {p}" for m, p in zip(f.positions, parts, strict=True)]
    return ", ".join(parts)


def _fees(f: Figures) -> str:
    return ", ".join(f"{money(v)} {k}" for k, v in sorted(f.fees.items())) or "0"


def line(f: Figures) -> str:
    """`summary: position 0.002 BTC | P/L 1.23 USDT (realized 1.2, unrealized 0.03) | fees ... | ...`"""
    quote = f" {f.quote}" if f.quote else ""
    return (
        f"summary: position {_position(f)} | P/L {money(f.profit)}{quote} (realized {money(f.realized)}, "
        f"unrealized {money(f.unrealized)}) | fees {_fees(f)} | orders {f.orders} ({f.open_orders} open) | "
        f"fills {f.fills}"
    )


COLUMNS = ("STRATEGY", "STATE", "POSITION", "P/L", "REALIZED", "UNREALIZED", "FEES", "ORDERS", "FILLS")


def table(all_figures: list[Figures]) -> str:
    """An aligned table, one row per strategy."""
    rows = [list(COLUMNS)]
    for f in all_figures:
        rows.append([
            f.name, "active" if f.active else "stopped", _position(f),
            f"{money(f.profit)}{' ' + f.quote if f.quote else ''}", money(f.realized), money(f.unrealized),
            _fees(f), str(f.orders), str(f.fills),
        ])
    return aligned(rows)
