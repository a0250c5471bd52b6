"""Luno wire -> model: markets, orders (v2/v3 shape), our trades, balances, public trades and tickers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from moonship_core import ZERO, MarketInfo, MarketStatus, Side, Ticker, Trade, from_ms

from . import constants as c


def dec(value: Any) -> Decimal:
    """A Luno decimal string (or missing/empty: 0)."""
    if value is None or value == "":
        return ZERO
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"malformed decimal {value!r}") from None


def _side(value: str) -> Side:
    return Side.BUY if value in ("BID", "BUY") else Side.SELL


@dataclass(frozen=True, slots=True)
class LunoMarket:
    """One entry of /api/exchange/1/markets."""

    market_id: str
    base: str
    counter: str
    trading_status: str
    min_volume: Decimal
    max_volume: Decimal
    volume_scale: int
    min_price: Decimal
    max_price: Decimal
    price_scale: int

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> LunoMarket:
        return cls(
            raw["market_id"], raw["base_currency"], raw["counter_currency"], str(raw["trading_status"]),
            dec(raw.get("min_volume")), dec(raw.get("max_volume")), int(raw["volume_scale"]),
            dec(raw.get("min_price")), dec(raw.get("max_price")), int(raw["price_scale"]),
        )

    def info(self) -> MarketInfo:
        return MarketInfo(
            symbol=self.market_id,
            base_asset=self.base,
            quote_asset=self.counter,
            tick_size=Decimal(1).scaleb(-self.price_scale),
            lot_size=Decimal(1).scaleb(-self.volume_scale),
            min_quantity=self.min_volume,
            status=c.MARKET_STATUS.get(self.trading_status, MarketStatus.CLOSED),
        )


@dataclass(frozen=True, slots=True)
class LunoOrder:
    """An order as /api/exchange/2|3 describe it (amounts filled so far are cumulative)."""

    order_id: str
    client_order_id: str
    pair: str
    side: Side
    type: str  # LIMIT | MARKET | STOP_LIMIT
    status: str  # AWAITING | PENDING | COMPLETE
    limit_price: Decimal
    limit_volume: Decimal
    base: Decimal
    counter: Decimal
    fee_base: Decimal
    fee_counter: Decimal
    created: int
    expired: int
    completed: int
    time_in_force: str

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> LunoOrder:
        return cls(
            str(raw["order_id"]), str(raw.get("client_order_id") or ""), str(raw.get("pair") or ""),
            _side(str(raw.get("side") or raw.get("type"))), str(raw.get("type") or "LIMIT"),
            str(raw.get("status") or raw.get("state") or "PENDING"), dec(raw.get("limit_price")),
            dec(raw.get("limit_volume")), dec(raw.get("base")), dec(raw.get("counter")),
            dec(raw.get("fee_base")), dec(raw.get("fee_counter")), int(raw.get("creation_timestamp") or 0),
            int(raw.get("expiration_timestamp") or 0), int(raw.get("completed_timestamp") or 0),
            str(raw.get("time_in_force") or "GTC"),
        )


@dataclass(frozen=True, slots=True)
class LunoFill:
    """One of our trades, from /api/1/listtrades."""

    sequence: int
    order_id: str
    side: Side  # our order's side
    is_buy: bool  # the taker bought
    base: Decimal
    counter: Decimal
    fee_base: Decimal
    fee_counter: Decimal
    timestamp: int

    @property
    def is_maker(self) -> bool:
        return self.is_buy == (self.side is Side.SELL)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> LunoFill:
        return cls(
            int(raw["sequence"]), str(raw["order_id"]), _side(str(raw["type"])), bool(raw.get("is_buy")),
            dec(raw.get("base") or raw.get("volume")), dec(raw.get("counter")), dec(raw.get("fee_base")),
            dec(raw.get("fee_counter")), int(raw.get("timestamp") or 0),
        )


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account_id: str
    asset: str
    balance: Decimal
    reserved: Decimal

    @property
    def available(self) -> Decimal:
        return self.balance - self.reserved


def public_trade(pair: str, raw: dict[str, Any]) -> Trade:
    """One entry of GET /api/1/trades (`is_buy`: the taker bought)."""
    return Trade(
        str(raw["sequence"]), pair, dec(raw["price"]), dec(raw["volume"]),
        Side.BUY if raw.get("is_buy") else Side.SELL, from_ms(raw["timestamp"]),
    )


def ticker(pair: str, raw: dict[str, Any]) -> Ticker:
    """GET /api/1/ticker (a missing side is "0": none)."""
    bid, ask, last = dec(raw.get("bid")), dec(raw.get("ask")), dec(raw.get("last_trade"))
    return Ticker(pair, bid or None, ask or None, last or None, from_ms(raw.get("timestamp") or 0))


def book_levels(entries: Any) -> list[tuple[Decimal, Decimal]]:
    """The (price, volume) levels of an orderbook_top side, as Luno aggregates them."""
    return [(dec(e["price"]), dec(e["volume"])) for e in entries or ()]
