"""Orders against the simulator's matching engine: every type, client order ids, fills and fees, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal

import pytest
from exchanges.binance import KEY, BinanceSim
from moonship_binance.client import BinanceClient

from moonship_core import (
    AuthenticationError,
    InsufficientFunds,
    InvalidOrder,
    MarketStatus,
    OrderNotFound,
    OrderRequest,
    OrderStatus,
    PostOnlyRejected,
    Side,
    TimeInForce,
)
from moonship_core.testing import RecordingEvents, until

from .conftest import fast, make_client

pytestmark = pytest.mark.anyio
D = Decimal


@pytest.fixture
async def trader(sim: BinanceSim) -> AsyncIterator[tuple[BinanceClient, RecordingEvents]]:
    client, events = make_client(fast(sim))
    await client.get_market_info()
    await client.connect()
    await until(lambda: client.session.user_streams[KEY].subscribed.is_set(), what="user stream")
    await until(lambda: events.status_now is MarketStatus.OPEN and events.balance_events, what="synced")
    yield client, events
    await client.close()


def last_order_params(sim: BinanceSim) -> dict[str, str]:
    return [p for m, path, p in sim.requests if m == "POST" and path.endswith("/order")][-1]


async def test_resting_limit_order_then_cancel(
    sim: BinanceSim, trader: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, events = trader
    request = OrderRequest.limit(Side.BUY, D("0.5"), D("29000"))
    ack = await client.place_order(request)
    assert ack.status is OrderStatus.PENDING and ack.id and ack.client_order_id == request.client_order_id
    params = last_order_params(sim)
    assert params["newClientOrderId"] == request.client_order_id
    assert (params["type"], params["timeInForce"], params["quantity"], params["price"]) == (
        "LIMIT",
        "GTC",
        "0.5",
        "29000",
    )
    await until(lambda: events.latest(request.client_order_id) is not None, what="NEW report")
    assert [o.client_order_id for o in await client.get_open_orders()] == [request.client_order_id]
    balances = {b.asset: b for b in events.balance_events[-1]}
    assert balances["USDT"].locked == D("14500") and balances["USDT"].free == D("85500")
    cancelled = await client.cancel_order(ack)
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.client_order_id == request.client_order_id
    await until(lambda: events.latest(request.client_order_id).status is OrderStatus.CANCELLED)  # type: ignore[union-attr]
    assert (await client.get_order(ack)).status is OrderStatus.CANCELLED
    assert await client.get_open_orders() == []
    await until(
        lambda: (
            {b.asset: b for b in events.balance_events[-1]}.get("USDT") == events.balance_events[-1][-1]
            and events.balance_events[-1][-1].locked == 0
        )
    )


async def test_taker_fills_come_with_fees_in_the_ack_and_the_stream(
    sim: BinanceSim, trader: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, events = trader
    request = OrderRequest.limit(Side.BUY, D("1.5"), D("30002"))
    ack = await client.place_order(request)
    assert ack.status is OrderStatus.FILLED and ack.filled_quantity == D("1.5")
    assert [(f.price, f.quantity, f.fee, f.fee_asset) for f in ack.fills] == [
        (D("30001"), D("1"), D("0.001"), "BTC"),
        (D("30002"), D("0.5"), D("0.0005"), "BTC"),
    ]
    assert ack.average_price == (D("30001") + D("15001")) / D("1.5")
    await until(lambda: (o := events.latest(request.client_order_id)) is not None and len(o.fills) == 2)
    streamed = events.latest(request.client_order_id)
    assert streamed is not None and streamed.status is OrderStatus.FILLED
    assert streamed.fees == {"BTC": D("0.0015")}


async def test_maker_fills_from_the_user_stream(
    sim: BinanceSim, trader: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, events = trader
    request = OrderRequest.limit(Side.SELL, D("1"), D("30000.5"), post_only=True)
    ack = await client.place_order(request)
    assert ack.status is OrderStatus.PENDING and ack.post_only
    params = last_order_params(sim)
    assert params["type"] == "LIMIT_MAKER" and "timeInForce" not in params
    sim.exchange.take("BTCUSDT", "BUY", "0.4")
    await until(
        lambda: (
            (o := events.latest(request.client_order_id)) is not None
            and o.status is OrderStatus.PARTIALLY_FILLED
        )
    )
    sim.exchange.take("BTCUSDT", "BUY", "0.6")
    await until(
        lambda: (o := events.latest(request.client_order_id)) is not None and o.status is OrderStatus.FILLED
    )
    filled = events.latest(request.client_order_id)
    assert filled is not None
    assert [(f.quantity, f.is_maker, f.fee_asset) for f in filled.fills] == [
        (D("0.4"), True, "USDT"),
        (D("0.6"), True, "USDT"),
    ]
    assert filled.fees == {"USDT": D("30.0005")}
    assert filled.filled_quote_quantity == D("30000.5")
    balances = {b.asset: b for b in events.balance_events[-1]}
    assert balances["BTC"].free == D("9") and balances["BTC"].locked == 0


async def test_post_only_that_would_take_is_rejected(
    sim: BinanceSim, trader: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, _ = trader
    with pytest.raises(PostOnlyRejected):
        await client.place_order(OrderRequest.limit(Side.BUY, D("0.1"), D("30001"), post_only=True))
    assert await client.get_open_orders() == []


async def test_ioc_remainder_expires_and_fok_never_fills(
    sim: BinanceSim, trader: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, _ = trader
    ioc = await client.place_order(
        OrderRequest.limit(Side.BUY, D("1.5"), D("30001"), time_in_force=TimeInForce.IOC)
    )
    assert last_order_params(sim)["timeInForce"] == "IOC"
    assert ioc.status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED and ioc.filled_quantity == 1
    fok = await client.place_order(
        OrderRequest.limit(Side.BUY, D("2"), D("30002"), time_in_force=TimeInForce.FOK)
    )
    assert fok.status is OrderStatus.EXPIRED and fok.filled_quantity == 0 and fok.fills == ()
    assert sim.exchange.symbols["BTCUSDT"].asks.quantity(D("30002")) == 1


async def test_market_orders_by_quantity_and_by_quote(
    sim: BinanceSim, trader: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, _ = trader
    by_qty = await client.place_order(OrderRequest.market(Side.SELL, quantity=D("1.25")))
    params = last_order_params(sim)
    assert (params["type"], params["quantity"]) == ("MARKET", "1.25") and "timeInForce" not in params
    assert by_qty.status is OrderStatus.FILLED and by_qty.filled_quantity == D("1.25")
    by_quote = await client.place_order(OrderRequest.market(Side.BUY, quote_quantity=D("45002")))
    params = last_order_params(sim)
    assert (params["type"], params["quoteOrderQty"]) == ("MARKET", "45002") and "quantity" not in params
    assert by_quote.status is OrderStatus.FILLED and by_quote.filled_quantity == D("1.5")
    assert by_quote.quote_quantity == D("45002") and by_quote.filled_quote_quantity == D("45002")
    too_much = await client.place_order(OrderRequest.market(Side.SELL, quantity=D("10")))
    assert too_much.status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED and too_much.filled_quantity == D(
        "8.75"
    )
    assert too_much.reason == "INSUFFICIENT_LIQUIDITY"


async def test_a_retried_client_order_id_never_creates_a_second_order(
    sim: BinanceSim, trader: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, _ = trader
    request = OrderRequest.limit(Side.BUY, D("0.1"), D("29500"))
    first = await client.place_order(request)
    again = await client.place_order(request)
    assert again.id == first.id
    other, _ = make_client(fast(sim))  # a fresh process retrying the same request: Binance says duplicate
    await other.get_market_info()
    third = await other.place_order(request)
    assert third.id == first.id
    assert (
        len([o for o in sim.exchange.accounts[KEY].orders.values() if o.coid == request.client_order_id]) == 1
    )
    await other.close()


async def test_exchange_errors_map_to_the_core_taxonomy(
    sim: BinanceSim, trader: tuple[BinanceClient, RecordingEvents]
) -> None:
    client, _ = trader
    with pytest.raises(InsufficientFunds):
        await client.place_order(OrderRequest.limit(Side.BUY, D("4"), D("29000")))
    with pytest.raises(InvalidOrder) as bad_tick:
        await client.place_order(OrderRequest.limit(Side.BUY, D("0.1"), D("29000.001")))
    assert bad_tick.value.rule == "price_filter" and bad_tick.value.code == -1013
    with pytest.raises(InvalidOrder) as bad_lot:
        await client.place_order(OrderRequest.limit(Side.BUY, D("0.000015"), D("29000")))
    assert bad_lot.value.rule == "lot_size"
    with pytest.raises(InvalidOrder) as small:
        await client.place_order(OrderRequest.limit(Side.BUY, D("0.0001"), D("29000")))
    assert small.value.rule == "notional"
    ghost = await client.place_order(OrderRequest.limit(Side.BUY, D("0.1"), D("29000")))
    await client.cancel_order(ghost)
    assert (await client.cancel_order(ghost)).status is OrderStatus.CANCELLED  # already closed: its state
    with pytest.raises(OrderNotFound):
        await client.get_order(replace(ghost, id="987654321", client_order_id="never-sent"))


async def test_orders_need_keys(sim: BinanceSim) -> None:
    settings = fast(sim)
    del settings["api_key"], settings["api_secret"]
    client, _ = make_client(settings)
    with pytest.raises(AuthenticationError):
        await client.place_order(OrderRequest.limit(Side.BUY, D("0.1"), D("29000")))


async def test_wrong_secret_is_an_authentication_error(sim: BinanceSim) -> None:
    client, _ = make_client(fast(sim, api_secret="wrong"))
    with pytest.raises(AuthenticationError) as err:
        await client.place_order(OrderRequest.limit(Side.BUY, D("0.1"), D("29000")))
    assert err.value.code == -1022
    await client.close()


async def test_per_market_keys_override_the_section(sim: BinanceSim) -> None:
    client, _ = make_client(
        fast(sim, api_secret="wrong"), market={"api_key": KEY, "api_secret": "sim-binance-secret-0001"}
    )
    balances = await client.get_balances()
    assert balances["BTC"].free == D("10") and balances["USDT"].total == D("100000")
    await client.close()
