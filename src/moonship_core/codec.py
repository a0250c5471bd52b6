"""JSON for everything that crosses a process boundary (cache, bus, journal, API): Decimal as exact text,
UTC times as ISO-8601."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from .contracts.stores import FillRecord, OrderRecord
from .model import Fill, Order, OrderStatus, OrderType, Side, TimeInForce


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def json_dumps(value: Any) -> bytes:
    """JSON for the cache and the bus (Decimal as text, UTC times as ISO-8601)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


json_loads = orjson.loads
"""Parse JSON (decimals come back as text, as they were stored)."""


def fill_to_dict(fill: Fill) -> dict[str, Any]:
    return {
        "trade_id": fill.trade_id, "price": fill.price, "quantity": fill.quantity, "fee": fill.fee,
        "fee_asset": fill.fee_asset, "is_maker": fill.is_maker, "timestamp": fill.timestamp,
    }


def fill_from_dict(data: dict[str, Any]) -> Fill:
    return Fill(
        trade_id=data["trade_id"], price=Decimal(data["price"]), quantity=Decimal(data["quantity"]),
        fee=Decimal(data["fee"]), fee_asset=data["fee_asset"], is_maker=data["is_maker"],
        timestamp=datetime.fromisoformat(data["timestamp"]),
    )


def order_to_dict(order: Order) -> dict[str, Any]:
    """An Order as JSON-ready values (decimals and times as json_dumps writes them)."""
    return {
        "id": order.id, "client_order_id": order.client_order_id, "symbol": order.symbol,
        "side": order.side.value, "type": order.type.value, "status": order.status.value,
        "quantity": order.quantity, "quote_quantity": order.quote_quantity, "price": order.price,
        "time_in_force": order.time_in_force.value, "post_only": order.post_only,
        "filled_quantity": order.filled_quantity, "filled_quote_quantity": order.filled_quote_quantity,
        "fills": [fill_to_dict(f) for f in order.fills], "created": order.created, "updated": order.updated,
        "reason": order.reason, "error": order.error,
    }


def order_from_dict(data: dict[str, Any]) -> Order:
    return Order(
        id=data["id"], client_order_id=data["client_order_id"], symbol=data["symbol"],
        side=Side(data["side"]), type=OrderType(data["type"]), status=OrderStatus(data["status"]),
        quantity=_decimal(data["quantity"]), quote_quantity=_decimal(data["quote_quantity"]),
        price=_decimal(data["price"]), time_in_force=TimeInForce(data["time_in_force"]),
        post_only=data["post_only"], filled_quantity=Decimal(data["filled_quantity"]),
        filled_quote_quantity=Decimal(data["filled_quote_quantity"]),
        fills=tuple(fill_from_dict(f) for f in data["fills"]),
        created=datetime.fromisoformat(data["created"]), updated=datetime.fromisoformat(data["updated"]),
        reason=data["reason"], error=data["error"],
    )


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def order_record_to_dict(record: OrderRecord) -> dict[str, Any]:
    """A journaled order as the API and the CLI show it (its fills are listed by fill_record_to_dict)."""
    order = record.order
    data = order_to_dict(order)
    del data["fills"]
    data.update(
        strategy=record.strategy or None, market=record.market, average_price=order.average_price,
        fees=order.fees,
    )
    return data


def fill_record_to_dict(record: FillRecord) -> dict[str, Any]:
    """A journaled fill as the API and the CLI show it."""
    fill = record.fill
    return {
        "strategy": record.strategy or None, "market": record.market,
        "client_order_id": record.client_order_id, "side": record.side.value, "trade_id": fill.trade_id,
        "price": fill.price, "quantity": fill.quantity, "fee": fill.fee, "fee_asset": fill.fee_asset,
        "is_maker": fill.is_maker, "time": fill.timestamp,
    }
