"""Binance wire -> model: exchangeInfo symbols, orders (REST and executionReport), fills and trades."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from moonship_core import (
    ZERO,
    Fill,
    MarketInfo,
    MarketStatus,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Trade,
    from_ms,
)

from . import constants as c


@dataclass(frozen=True)
class SymbolRules:
    """A symbol's trading rules from exchangeInfo."""

    info: MarketInfo
    #: MARKET_LOT_SIZE (step, min qty, max qty); step 0 means LOT_SIZE's step applies
    market_lot: tuple[Decimal, Decimal, Decimal] = (ZERO, ZERO, ZERO)
    order_types: frozenset[str] = frozenset()
    raw_status: str = "TRADING"


def parse_symbol(entry: Mapping[str, Any]) -> SymbolRules:
    """A SymbolRules from one exchangeInfo symbol object."""
    filters = {f["filterType"]: f for f in entry.get("filters", ())}
    price = filters.get("PRICE_FILTER", {})
    lot = filters.get("LOT_SIZE", {})
    market_lot = filters.get("MARKET_LOT_SIZE", {})
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    raw_status = str(entry.get("status", "TRADING"))
    info = MarketInfo(
        symbol=entry["symbol"],
        base_asset=entry["baseAsset"],
        quote_asset=entry["quoteAsset"],
        tick_size=Decimal(price.get("tickSize", "0")).normalize() or Decimal(1).scaleb(-8),
        lot_size=Decimal(lot.get("stepSize", "0")).normalize() or Decimal(1).scaleb(-8),
        min_quantity=Decimal(lot.get("minQty", "0")),
        min_notional=Decimal(notional.get("minNotional", "0")),
        status=c.SYMBOL_STATUS.get(raw_status, MarketStatus.CLOSED),
    )
    return SymbolRules(
        info,
        (
            Decimal(market_lot.get("stepSize", "0")),
            Decimal(market_lot.get("minQty", "0")),
            Decimal(market_lot.get("maxQty", "0")),
        ),
        frozenset(entry.get("orderTypes", ())),
        raw_status,
    )


def parse_order(body: Mapping[str, Any], fills: Sequence[Fill] = ()) -> Order:
    """An Order from a Binance order object (POST/GET/DELETE /order, openOrders) with the `fills` known."""
    kind = body.get("type", "LIMIT")
    tif = body.get("timeInForce") or "GTC"
    orig_qty = Decimal(body.get("origQty") or "0")
    quote_qty = Decimal(body.get("origQuoteOrderQty") or "0")
    price = Decimal(body.get("price") or "0")
    executed = Decimal(body.get("executedQty") or "0")
    status = c.ORDER_STATUS.get(body.get("status", ""), OrderStatus.UNKNOWN)
    if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and executed > 0:
        status = OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    created = body.get("time") or body.get("transactTime") or body.get("workingTime")
    updated = body.get("updateTime") or body.get("transactTime") or created
    return Order(
        id=str(body["orderId"]),
        client_order_id=body.get("origClientOrderId") or body["clientOrderId"],
        symbol=body["symbol"],
        side=Side(body.get("side", "BUY")),
        type=OrderType.MARKET if kind == "MARKET" else OrderType.LIMIT,
        status=status,
        quantity=orig_qty if orig_qty > 0 or quote_qty == 0 else None,
        quote_quantity=quote_qty if quote_qty > 0 else None,
        price=price if price > 0 else None,
        time_in_force=TimeInForce(tif) if tif in ("GTC", "IOC", "FOK") else TimeInForce.GTC,
        post_only=kind == "LIMIT_MAKER",
        filled_quantity=executed,
        filled_quote_quantity=Decimal(body.get("cummulativeQuoteQty") or "0"),
        fills=tuple(fills),
        created=from_ms(created) if created else from_ms(time.time() * 1000),
        updated=from_ms(updated) if updated else from_ms(time.time() * 1000),
        reason=_reason(body.get("expiryReason"))
        or ("self-trade prevention" if body.get("status") == "EXPIRED_IN_MATCH" else None),
    )


def response_fills(body: Mapping[str, Any], fee_time: int | None = None) -> list[Fill]:
    """The fills of a FULL order response (`fills`: price, qty, commission, commissionAsset, tradeId)."""
    stamp = from_ms(fee_time or body.get("transactTime") or time.time() * 1000)
    return [
        Fill(
            str(f["tradeId"]),
            Decimal(f["price"]),
            Decimal(f["qty"]),
            Decimal(f["commission"]),
            f.get("commissionAsset") or "",
            False,
            timestamp=stamp,
        )
        for f in body.get("fills", ())
    ]


def my_trade_fill(r: Mapping[str, Any]) -> Fill:
    """A Fill from one myTrades row."""
    return Fill(
        str(r["id"]),
        Decimal(r["price"]),
        Decimal(r["qty"]),
        Decimal(r["commission"]),
        r["commissionAsset"] or "",
        bool(r["isMaker"]),
        timestamp=from_ms(r["time"]),
    )


def rest_trade(symbol: str, r: Mapping[str, Any]) -> Trade:
    """A Trade from one GET /trades row."""
    return Trade(
        str(r["id"]),
        symbol,
        Decimal(r["price"]),
        Decimal(r["qty"]),
        Side.SELL if r["isBuyerMaker"] else Side.BUY,
        from_ms(r["time"]),
    )


def stream_trade(symbol: str, data: Mapping[str, Any]) -> Trade:
    """A Trade from one `<symbol>@trade` event."""
    return Trade(
        str(data["t"]),
        symbol,
        Decimal(data["p"]),
        Decimal(data["q"]),
        Side.SELL if data["m"] else Side.BUY,
        from_ms(data["T"]),
    )


def order_from_report(e: dict[str, Any]) -> Order:
    """An Order from one executionReport (with this event's fill, if it is a TRADE)."""
    kind = e["o"]
    cum = Decimal(e["z"])
    status = c.ORDER_STATUS.get(e["X"], OrderStatus.UNKNOWN)
    if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and cum > 0:
        status = OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    fills: tuple[Fill, ...] = ()
    if e["x"] == "TRADE":
        fills = (
            Fill(
                str(e["t"]),
                Decimal(e["L"]),
                Decimal(e["l"]),
                Decimal(e["n"]),
                e.get("N") or "",
                bool(e["m"]),
                timestamp=from_ms(e["T"]),
            ),
        )
    qty, quote, price = Decimal(e["q"]), Decimal(e.get("Q") or "0"), Decimal(e["p"])
    tif = e.get("f") or "GTC"
    reason = _reason(e.get("eR")) or _reason(e.get("r"))
    return Order(
        id=str(e["i"]),
        client_order_id=e.get("C") or e["c"],
        symbol=e["s"],
        side=Side(e["S"]),
        type=OrderType.MARKET if kind == "MARKET" else OrderType.LIMIT,
        status=status,
        quantity=qty if qty > 0 or quote == 0 else None,
        quote_quantity=quote if quote > 0 else None,
        price=price if price > 0 else None,
        time_in_force=TimeInForce(tif) if tif in ("GTC", "IOC", "FOK") else TimeInForce.GTC,
        post_only=kind == "LIMIT_MAKER",
        filled_quantity=cum,
        filled_quote_quantity=Decimal(e["Z"]),
        fills=fills,
        created=from_ms(e.get("O") or e["T"]),
        updated=from_ms(e["T"]),
        reason=reason,
    )


def _reason(value: str | None) -> str | None:
    """An expiry or reject reason; Binance's enums spell "none" as NONE."""
    return value if value and value != "NONE" else None
