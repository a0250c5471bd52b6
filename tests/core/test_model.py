"""The order model's constructors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from moonship_core import Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_an_order_from_a_request_carries_the_request_and_nothing_the_venue_has_not_said() -> None:
    request = OrderRequest.limit(
        Side.SELL, Decimal("0.5"), Decimal("101.5"), post_only=True, client_order_id="coid-1"
    )
    order = Order.from_request(request, "BTCZAR", OrderStatus.UNKNOWN, AT)
    assert (order.id, order.client_order_id, order.symbol, order.status) == (
        "", "coid-1", "BTCZAR", OrderStatus.UNKNOWN
    )
    assert (order.side, order.type, order.quantity, order.quote_quantity, order.price) == (
        Side.SELL, OrderType.LIMIT, Decimal("0.5"), None, Decimal("101.5")
    )
    assert (order.time_in_force, order.post_only) == (TimeInForce.GTC, True)
    assert (order.created, order.updated) == (AT, AT)
    assert (order.filled_quantity, order.fills, order.reason) == (Decimal(0), (), None)


def test_an_order_from_a_quote_sized_market_request_keeps_its_id_and_reason() -> None:
    request = OrderRequest.market(Side.BUY, quote_quantity=Decimal("250"))
    order = Order.from_request(request, "BTCUSDT", OrderStatus.PENDING, AT, order_id="42", reason="sent")
    assert (order.id, order.quantity, order.quote_quantity, order.time_in_force, order.reason) == (
        "42", None, Decimal("250"), TimeInForce.IOC, "sent"
    )
    assert order.client_order_id == request.client_order_id
