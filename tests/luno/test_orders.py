"""Orders over REST (client_order_id, retries, error mapping) and their updates from the user stream."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from exchanges.luno import LunoSimulator

from moonship_core import (
    AuthenticationError,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    MarketStatus,
    NotSupported,
    Order,
    OrderNotFound,
    OrderRequest,
    OrderStatus,
    OrderStatusUnknown,
    OrderType,
    PostOnlyRejected,
    RateLimited,
    Side,
    TimeInForce,
    utc_now,
)
from moonship_core.testing import until

from .conftest import KEY, PAIR, SECRET, latest, make_client, started

pytestmark = pytest.mark.anyio
D = Decimal
BUY, SELL = Side.BUY, Side.SELL


def unknown_order() -> Order:
    now = utc_now()
    return Order(
        "BXNOSUCHORDER12", "nope", PAIR, BUY, OrderType.LIMIT, OrderStatus.PENDING, created=now, updated=now
    )


def counterparty(sim: LunoSimulator) -> object:
    return sim.exchange.add_user("other", "o", {"XBT": "100", "ZAR": "1000000000"})


async def test_limit_order_lifecycle_with_fills_and_fees(sim: LunoSimulator) -> None:
    client, events = await started(sim)
    other = counterparty(sim)
    ack = await client.place_order(OrderRequest.limit(SELL, D("0.5"), D("1000000"), client_order_id="sell-1"))
    sim_order = sim.exchange.orders[ack.id]
    assert sim_order.client_order_id == "sell-1" and ack.status is OrderStatus.PENDING
    assert ack.client_order_id == "sell-1" and ack.quantity == D("0.5") and ack.price == D("1000000")

    sim.exchange.post_limit(other, PAIR, "BID", "0.2", "1000000.00")  # type: ignore[arg-type]
    await until(lambda: latest(events, ack).status is OrderStatus.PARTIALLY_FILLED, what="partial fill")
    part = latest(events, ack)
    assert part.filled_quantity == D("0.2") and len(part.fills) == 1
    fill = part.fills[0]
    assert (fill.price, fill.quantity, fill.fee) == (D("1000000"), D("0.2"), 0)  # makers pay no fee here

    sim.exchange.post_market(other, PAIR, "BUY", counter_volume="300000")  # type: ignore[arg-type]
    await until(lambda: latest(events, ack).status is OrderStatus.FILLED, what="filled")
    done = latest(events, ack)
    assert done.filled_quantity == D("0.5") and done.filled_quote_quantity == D("500000")
    assert [f.quantity for f in done.fills] == [D("0.2"), D("0.3")]
    assert done.fees == {}  # the simulated user pays no maker fee
    assert (await client.get_order(ack)).status is OrderStatus.FILLED
    await client.close()


async def test_taker_fees_come_from_fee_base_and_fee_counter(sim: LunoSimulator) -> None:
    client, events = await started(sim)
    other = counterparty(sim)
    sim.exchange.post_limit(other, PAIR, "ASK", "0.1", "1000000.00")  # type: ignore[arg-type]
    sim.exchange.post_limit(other, PAIR, "BID", "0.1", "999000.00")  # type: ignore[arg-type]
    buy = await client.place_order(OrderRequest.market(BUY, quote_quantity=D("100000"), client_order_id="b"))
    sell = await client.place_order(OrderRequest.market(SELL, quantity=D("0.1"), client_order_id="s"))
    await until(lambda: latest(events, buy).status is OrderStatus.FILLED, what="buy filled")
    await until(lambda: latest(events, sell).status is OrderStatus.FILLED, what="sell filled")
    assert latest(events, buy).fees == {"XBT": D("0.0001")}  # a buyer pays in base (0.1 %)
    assert latest(events, sell).fees == {"ZAR": D("99.9")}  # a seller in counter
    balances = await client.get_balances()
    account = sim.exchange.users[KEY].accounts
    assert balances["XBT"].free == account["XBT"].balance - account["XBT"].reserved
    await client.close()


async def test_cancel_and_partial_cancel(sim: LunoSimulator) -> None:
    client, events = await started(sim)
    other = counterparty(sim)
    quiet = await client.place_order(OrderRequest.limit(BUY, D("0.01"), D("900000")))
    cancelled = await client.cancel_order(quiet)
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled_quantity == 0

    partial = await client.place_order(OrderRequest.limit(BUY, D("0.3"), D("950000")))
    sim.exchange.post_market(other, PAIR, "SELL", base_volume="0.1")  # type: ignore[arg-type]
    await until(lambda: latest(events, partial).filled_quantity == D("0.1"), what="partial fill")
    after = await client.cancel_order(partial)
    assert after.status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED and after.filled_quantity == D("0.1")
    await until(lambda: latest(events, partial).status.is_final, what="final update")
    assert latest(events, partial).status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED

    with pytest.raises(OrderNotFound):  # already complete and unknown are told apart
        await client.cancel_order(unknown_order())
    assert (await client.cancel_order(after)).status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    await client.close()


async def test_ioc_and_fok_remainders_end_cancelled(sim: LunoSimulator) -> None:
    client, events = await started(sim)
    other = counterparty(sim)
    sim.exchange.post_limit(other, PAIR, "ASK", "0.1", "1000000.00")  # type: ignore[arg-type]
    ioc = await client.place_order(
        OrderRequest.limit(BUY, D("0.3"), D("1000000"), time_in_force=TimeInForce.IOC)
    )
    await until(lambda: latest(events, ioc).status.is_final, what="IOC done")
    assert latest(events, ioc).status is OrderStatus.CANCELLED_AND_PARTIALLY_FILLED
    assert latest(events, ioc).filled_quantity == D("0.1")
    fok = await client.place_order(
        OrderRequest.limit(SELL, D("0.05"), D("900000"), time_in_force=TimeInForce.FOK)
    )
    await until(lambda: latest(events, fok).status.is_final, what="FOK done")
    assert latest(events, fok).status is OrderStatus.CANCELLED and latest(events, fok).filled_quantity == 0
    await client.close()


async def test_market_orders_are_sized_as_luno_documents_them(sim: LunoSimulator) -> None:
    """POST /api/1/marketorder (luno-go PostMarketOrderRequest): a BUY spends `counter_volume`, a SELL sells
    `base_volume`; the other sizings are refused before they leave (NotSupported), nothing is sent."""
    client, events = await started(sim)
    other = counterparty(sim)
    for price in ("1000000.00", "1000100.00"):
        sim.exchange.post_limit(other, PAIR, "ASK", "0.5", price)  # type: ignore[arg-type]
        sim.exchange.post_limit(other, PAIR, "BID", "0.5", f"{D(price) - 2000:.2f}")  # type: ignore[arg-type]
    by_quote = await client.place_order(OrderRequest.market(BUY, quote_quantity=D("100000")))
    by_base = await client.place_order(OrderRequest.market(SELL, quantity=D("0.05")))
    for order in (by_quote, by_base):
        await until(lambda o=order: latest(events, o).status is OrderStatus.FILLED, what=f"{order} filled")
    assert latest(events, by_quote).filled_quote_quantity == D("100000")
    assert latest(events, by_base).filled_quantity == D("0.05")
    sent = {o.client_order_id: o for o in sim.exchange.orders.values() if o.user.key_id == KEY}
    assert sent[by_quote.client_order_id].counter == D("100000")
    for request, feature in [
        (OrderRequest.market(BUY, quantity=D("0.02")), "base_quantity_market_buy"),
        (OrderRequest.market(SELL, quote_quantity=D("50000")), "quote_quantity_market_sell"),
    ]:
        with pytest.raises(NotSupported) as caught:
            await client.place_order(request)
        assert caught.value.feature == feature
        assert request.client_order_id not in sent and request.client_order_id not in {
            o.client_order_id for o in sim.exchange.orders.values()
        }
    await client.close()


async def test_the_simulator_takes_market_orders_only_as_documented(sim: LunoSimulator) -> None:
    """On the raw wire: a BUY by `base_volume` or a SELL by `counter_volume` is answered 400, not placed."""
    other = counterparty(sim)
    sim.exchange.post_limit(other, PAIR, "ASK", "0.5", "1000000.00")  # type: ignore[arg-type]
    sim.exchange.post_limit(other, PAIR, "BID", "0.5", "999000.00")  # type: ignore[arg-type]
    async with httpx.AsyncClient(base_url=sim.rest_url, auth=(KEY, SECRET)) as http:
        for side, size in (("BUY", "base_volume"), ("SELL", "counter_volume")):
            answer = await http.post("/api/1/marketorder", data={"pair": PAIR, "type": side, size: "0.01"})
            assert answer.status_code == 400 and answer.json()["error_code"] == "ErrInvalidArguments"
        for side, size in (("BUY", "counter_volume"), ("SELL", "base_volume")):
            answer = await http.post("/api/1/marketorder", data={"pair": PAIR, "type": side, size: "0.01"})
            assert answer.status_code == 200 and answer.json()["order_id"]
    assert len([o for o in sim.exchange.orders.values() if o.user.key_id == KEY]) == 2


async def test_post_only_that_would_cross_and_other_refusals(sim: LunoSimulator) -> None:
    client, _ = await started(sim)
    other = counterparty(sim)
    sim.exchange.post_limit(other, PAIR, "ASK", "0.1", "1000000.00")  # type: ignore[arg-type]
    with pytest.raises(PostOnlyRejected):
        await client.place_order(OrderRequest.limit(BUY, D("0.1"), D("1000000"), post_only=True))
    with pytest.raises(InsufficientFunds):
        await client.place_order(OrderRequest.limit(BUY, D("50"), D("1000000")))
    with pytest.raises(InvalidOrder) as small:
        await client.place_order(OrderRequest.limit(BUY, D("0.0001"), D("900000")))
    assert small.value.rule == "min_quantity" and small.value.code == "ErrVolumeTooLow"
    with pytest.raises(InvalidOrder) as fine:
        await client.place_order(OrderRequest.limit(BUY, D("0.001"), D("900000.001")))
    assert fine.value.rule == "tick_size"
    with pytest.raises(OrderNotFound):
        await client.get_order(unknown_order())
    assert all(t.order_id for t in client._orders.values())  # refused orders are not tracked
    await client.close()
    bad, _ = make_client(sim, api_secret="wrong")
    with pytest.raises(AuthenticationError):
        await bad.get_balances()
    await bad.close()


async def test_5xx_after_executing_finds_the_order_instead_of_placing_twice(sim: LunoSimulator) -> None:
    client, _ = await started(sim)
    sim.faults.fail_after_execute = 1
    ack = await client.place_order(OrderRequest.limit(BUY, D("0.01"), D("900000"), client_order_id="once"))
    mine = [o for o in sim.exchange.orders.values() if o.client_order_id == "once"]
    assert len(mine) == 1 and ack.id == mine[0].order_id and ack.status is OrderStatus.PENDING
    assert sim.stats["/api/1/postorder"] == 2  # the retry met 409 ErrDuplicateClientOrderID

    # the same request again (e.g. a strategy's own retry): still one order
    again = await client.place_order(OrderRequest.limit(BUY, D("0.01"), D("900000"), client_order_id="once"))
    assert again.id == ack.id
    assert len([o for o in sim.exchange.orders.values() if o.client_order_id == "once"]) == 1

    sim.faults.fail_before_execute = 10
    with pytest.raises(OrderStatusUnknown) as unknown:
        await client.place_order(OrderRequest.limit(BUY, D("0.01"), D("900000"), client_order_id="lost"))
    assert unknown.value.client_order_id == "lost"
    sim.faults.fail_before_execute = 0
    await client.close()


async def test_429_is_backed_off_and_retried(sim: LunoSimulator) -> None:
    client, _ = make_client(sim)
    sim.faults.rate_limited = 1  # no Retry-After: the client pauses 1 s, then retries
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    assert (await client.get_market_info()).symbol == PAIR
    assert loop.time() - started_at >= 0.9
    sim.faults.rate_limited, sim.faults.retry_after = 10, "0.05"
    with pytest.raises(RateLimited) as limited:
        await client.get_ticker()
    assert limited.value.retry_after == 0.05
    assert sim.stats["/api/1/ticker"] == 3
    await client.close()


async def test_market_status_updates_gate_orders(sim: LunoSimulator) -> None:
    client, events = await started(sim)
    sim.exchange.set_status(PAIR, "POSTONLY")
    await until(lambda: events.status_now is MarketStatus.OPEN_POST_ONLY, what="post-only mode")
    calls = sim.stats["/api/1/postorder"]
    with pytest.raises(MarketClosed):
        await client.place_order(OrderRequest.limit(BUY, D("0.01"), D("900000")))
    assert sim.stats["/api/1/postorder"] == calls  # refused before anything left
    posted = await client.place_order(OrderRequest.limit(BUY, D("0.01"), D("900000"), post_only=True))
    assert posted.status is OrderStatus.PENDING
    sim.exchange.set_status(PAIR, "DISABLED")
    await until(lambda: events.status_now is MarketStatus.CLOSED, what="disabled")
    with pytest.raises(MarketClosed):
        await client.place_order(OrderRequest.limit(BUY, D("0.01"), D("900000"), post_only=True))
    sim.exchange.set_status(PAIR, "ACTIVE")
    await until(lambda: events.status_now is MarketStatus.OPEN, what="active again")
    assert (await client.place_order(OrderRequest.limit(BUY, D("0.01"), D("900000")))).id
    await client.close()


async def test_open_orders_and_balances(sim: LunoSimulator) -> None:
    client, events = await started(sim)
    a = await client.place_order(OrderRequest.limit(BUY, D("0.01"), D("900000")))
    b = await client.place_order(OrderRequest.limit(SELL, D("0.02"), D("1100000")))
    await client.cancel_order(b)
    assert [o.id for o in await client.get_open_orders()] == [a.id]
    balances = await client.get_balances()
    assert balances["ZAR"].locked == D("9000") and balances["ZAR"].free == D("2000000") - D("9000")
    await until(lambda: any(x.asset == "ZAR" and x.locked == D("9000") for x in events.balance_updates),
                what="balance update over the user stream")
    await client.close()
