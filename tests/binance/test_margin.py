"""enable_margin: orders, queries, cancels and balances go through the cross-margin endpoints."""

from __future__ import annotations

from decimal import Decimal

import pytest
from exchanges.binance import KEY, BinanceSim

from moonship_core import MarketStatus, OrderRequest, OrderStatus, Side
from moonship_core.testing import until

from .conftest import fast, make_client

pytestmark = pytest.mark.anyio
D = Decimal


async def test_margin_orders_use_the_cross_margin_endpoints(sim: BinanceSim) -> None:
    client, events = make_client(fast(sim, margin_poll_interval=0.05), market={"enable_margin": True})
    await client.get_market_info()
    await client.connect()
    await until(lambda: events.status_now is MarketStatus.OPEN)
    resting = await client.place_order(OrderRequest.limit(Side.SELL, D("0.5"), D("30000.5")))
    sent = [p for m, path, p in sim.requests if m == "POST" and path == "/sapi/v1/margin/order"][-1]
    assert (sent["isIsolated"], sent["sideEffectType"], sent["type"]) == ("FALSE", "NO_SIDE_EFFECT", "LIMIT")
    assert sent["newClientOrderId"] == resting.client_order_id
    assert [o.id for o in await client.get_open_orders()] == [resting.id]
    spot, margin = sim.exchange.accounts[KEY], sim.exchange.margin_accounts[KEY]
    assert not spot.orders and len(margin.orders) == 1
    sim.exchange.take("BTCUSDT", "BUY", "0.5")  # fills it: the poll finds out, with fills from myTrades
    await until(
        lambda: (o := events.latest(resting.client_order_id)) is not None and o.status is OrderStatus.FILLED
    )
    filled = events.latest(resting.client_order_id)
    assert filled is not None and filled.fees == {"USDT": D("15.00025")}
    assert (await client.get_balances())["BTC"].free == D("9.5")
    other = await client.place_order(OrderRequest.limit(Side.BUY, D("0.1"), D("29000")))
    assert (await client.cancel_order(other)).status is OrderStatus.CANCELLED
    assert (await client.get_order(other)).status is OrderStatus.CANCELLED
    paths = {path for _, path, _ in sim.requests}
    assert {
        "/sapi/v1/margin/order",
        "/sapi/v1/margin/openOrders",
        "/sapi/v1/margin/myTrades",
        "/sapi/v1/margin/account",
    } <= paths
    assert "/api/v3/order" not in paths
    await client.close()


async def test_margin_requests_spend_the_sapi_limits_not_the_api_weight() -> None:
    """/sapi has its own IP and UID weight limits: margin queries never wait on /api's weight window."""
    async with BinanceSim(weight_limit=40, weight_seconds=60) as sim:
        client, _ = make_client(fast(sim), market={"enable_margin": True})
        await client.get_market_info()  # 20 of /api's 40 for the minute
        for _ in range(6):
            assert await client.get_open_orders() == []  # 10 IP weight each on /sapi
        placed = await client.place_order(OrderRequest.limit(Side.BUY, D("0.1"), D("29000")))  # 6 UID weight
        assert placed.status is OrderStatus.PENDING
        assert sim.weight.used <= 40 and sim.sapi_used("GET /sapi/v1/margin/openOrders") >= 60
        assert sim.sapi_used("POST /sapi/v1/margin/order", KEY) == 6
        assert not [1 for *_, p in sim.requests if p.get("code")]
        await client.close()
