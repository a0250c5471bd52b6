"""GET /orders and GET /fills: the engines' journals through the API, newest first, exact decimals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from moonship_core import Fill, Order, OrderStatus, OrderType, Side
from moonship_core.contracts.stores import FillRecord

from .harness import Stack

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
D = Decimal


def journal_some(stack: Stack) -> None:
    """Two orders and a fill in engine main's journal, one order in engine other's."""

    def order(coid: str, status: OrderStatus, minutes: int) -> Order:
        at = T0 + timedelta(minutes=minutes)
        filled = D("0.5") if status is OrderStatus.FILLED else D(0)
        return Order(
            "x" + coid, coid, "BTCUSDT", Side.BUY, OrderType.LIMIT, status, quantity=D("0.5"),
            price=D("100.10"), filled_quantity=filled, filled_quote_quantity=filled * D("100.10"),
            created=T0, updated=at,
        )

    main, other = (e for e in stack.engines if e.engine_name in ("main", "other"))
    main.journal.record_order("alpha", "btc", order("jfilled", OrderStatus.FILLED, 3))
    main.journal.record_order("alpha", "btc", order("jopen", OrderStatus.PENDING, 1))
    other.journal.record_order("gamma", "btc", order("jother", OrderStatus.PENDING, 2))
    fill = Fill("t9", D("100.10"), D("0.5"), D("0.0005"), "BTC", is_maker=True, timestamp=T0)
    main.journal.record_fill(FillRecord("alpha", "btc", "jfilled", Side.BUY, fill, "BTC", "USDT"))


def error(reply: httpx.Response) -> tuple[int, str]:
    return reply.status_code, reply.json()["error"]


def test_orders_and_fills_of_every_engine(stack: Stack, client: httpx.Client) -> None:
    journal_some(stack)
    reply = client.get("/orders", params={"since": T0.isoformat()})
    assert reply.status_code == 200, reply.text
    orders = reply.json()["orders"]
    assert [(o["engine"], o["client_order_id"]) for o in orders] == [
        ("main", "jfilled"), ("other", "jother"), ("main", "jopen")
    ]
    filled = orders[0]
    assert filled["strategy"] == "alpha" and filled["market"] == "btc" and filled["status"] == "FILLED"
    assert (filled["price"], filled["filled_quantity"]) == ("100.10", "0.5")
    assert filled["average_price"] == "100.10"
    opened = client.get("/orders", params={"engine": "main", "status": "open", "since": T0.isoformat()})
    assert [o["client_order_id"] for o in opened.json()["orders"]] == ["jopen"]
    mine = client.get("/orders", params={"strategy": "gamma", "since": T0.isoformat()})
    assert [o["client_order_id"] for o in mine.json()["orders"]] == ["jother"]
    fills = client.get("/fills", params={"engine": "main", "strategy": "alpha", "limit": "1"}).json()["fills"]
    assert fills == [{
        "engine": "main", "strategy": "alpha", "market": "btc", "client_order_id": "jfilled", "side": "BUY",
        "trade_id": "t9", "price": "100.10", "quantity": "0.5", "fee": "0.0005", "fee_asset": "BTC",
        "is_maker": True, "time": "2026-06-01T08:00:00+00:00",
    }]


def test_bad_journal_queries_are_400(stack: Stack, client: httpx.Client) -> None:
    assert error(client.get("/orders", params={"status": "done"})) == (400, "Bad status: open or closed")
    assert error(client.get("/orders", params={"limit": "-1"}))[0] == 400
    assert error(client.get("/orders", params={"limit": "0"}))[1].startswith("Bad limit")
    assert error(client.get("/fills", params={"status": "open"})) == (400, "Unknown query parameter: status")
    assert error(client.get("/fills", params={"since": "noon"}))[1].startswith("Bad since")
    assert error(client.get("/orders", params={"engine": "nowhere"}))[0] == 404
    assert error(client.get("/orders", params={"strategy": "a b"}))[1].startswith("Bad strategy name")


def test_the_journal_needs_a_session(stack: Stack) -> None:
    with stack.client() as anonymous:
        assert anonymous.get("/orders").status_code == 401
        assert anonymous.get("/fills").status_code == 401
