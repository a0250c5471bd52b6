"""The kill switch over the API (real uvicorn, real engines on paper over the simulator): GET /engines,
POST /engines/{engine}/trading-state and /strategies/{engine}/{strategy}/trading-state, answered once the
state is in force."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from moonship_core import Order, OrderRequest, OrderStatus, Side
from moonship_core.trading.engine import TradingEngine

from .harness import Stack

COOKIE = "__Host-session_token"


def engine(stack: Stack, name: str) -> TradingEngine:
    (found,) = [e for e in stack.engines if e.engine_name == name]
    return found


def place(stack: Stack, name: str, strategy: str, price: str = "20000") -> Order:
    """A resting buy far below the simulator's book, as `strategy`'s."""
    market = engine(stack, name).markets["btc"]
    request = OrderRequest.limit(Side.BUY, Decimal("0.01"), Decimal(price))
    return stack.loop.run(market.place_order(request, strategy))


def open_orders(stack: Stack, name: str, strategy: str | None = None) -> list[Order]:
    return engine(stack, name).orders.open_orders(owner=strategy)


def ok(reply: httpx.Response) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def test_engines_lists_each_running_engine_with_its_trading_state(client: httpx.Client) -> None:
    engines = ok(client.get("/engines"))["engines"]
    assert [(e["name"], e["trading_state"], e["trading_state_reason"]) for e in engines] == [
        ("main", "ACTIVE", None), ("other", "ACTIVE", None)
    ]
    assert engines[0]["started"].endswith("+00:00") and engines[0]["instance"]


def test_halting_a_strategy_cancels_its_orders_before_the_reply(stack: Stack, client: httpx.Client) -> None:
    orders = [place(stack, "main", "alpha"), place(stack, "main", "alpha", "20001")]
    assert all(o.status is OrderStatus.PENDING for o in orders), orders
    reply = ok(client.post("/strategies/main/alpha/trading-state",
                           json={"state": "HALTED", "reason": "operator: stop it"}))
    assert (reply["name"], reply["trading_state"], reply["trading_state_reason"]) == (
        "alpha", "HALTED", "operator: stop it"
    )
    assert reply["open_orders"] == 0 and open_orders(stack, "main", "alpha") == []
    paper = engine(stack, "main").markets["btc"].client
    assert stack.loop.run(paper.get_open_orders()) == []  # cancelled at the (paper) exchange too
    # read-your-writes: the state is in the shared cache when the reply arrives
    assert ok(client.get("/strategies/main/alpha"))["trading_state"] == "HALTED"
    refused = place(stack, "main", "alpha")
    assert (refused.status, refused.error) == (OrderStatus.REJECTED, "RiskDenied")
    assert refused.reason == "trading_state: HALTED (operator: stop it)"
    stack.wait_for(lambda: ok(client.get("/strategies/main/alpha"))["risk_denials"] == {"trading_state": 1})

    reply = ok(client.post("/strategies/main/alpha/trading-state", json={"state": "ACTIVE"}))
    assert (reply["trading_state"], reply["trading_state_reason"]) == ("ACTIVE", None)
    resting = place(stack, "main", "alpha")
    assert resting.status is OrderStatus.PENDING
    stack.loop.run(engine(stack, "main").markets["btc"].cancel_order(resting))


def test_an_engines_trading_state_applies_to_its_strategies(stack: Stack, client: httpx.Client) -> None:
    place(stack, "other", "gamma")
    reply = ok(client.post("/engines/other/trading-state", json={"state": "REDUCING", "reason": "eod"}))
    assert reply == {"name": "other", "trading_state": "REDUCING", "trading_state_reason": "eod"}
    states = {e["name"]: e["trading_state"] for e in ok(client.get("/engines"))["engines"]}
    assert states == {"main": "ACTIVE", "other": "REDUCING"}
    gamma = ok(client.get("/strategies/other/gamma"))
    assert (gamma["trading_state"], gamma["trading_state_reason"]) == ("REDUCING", "engine: eod")
    assert len(open_orders(stack, "other")) == 1  # REDUCING cancels nothing
    assert place(stack, "other", "gamma").error == "RiskDenied"  # a buy with no position opens one

    ok(client.post("/engines/other/trading-state", json={"state": "HALTED", "reason": "stop"}))
    assert open_orders(stack, "other") == []
    reply = ok(client.post("/engines/other/trading-state", json={"state": "ACTIVE"}))
    assert reply == {"name": "other", "trading_state": "ACTIVE", "trading_state_reason": None}
    assert ok(client.get("/strategies/other/gamma"))["trading_state"] == "ACTIVE"


def test_bad_trading_state_requests(stack: Stack, client: httpx.Client) -> None:
    def error(reply: httpx.Response) -> tuple[int, str]:
        body = reply.json()
        assert set(body) == {"error", "status"} and body["status"] == reply.status_code
        return reply.status_code, body["error"]

    bad_state = (400, "Missing or bad state field: ACTIVE, REDUCING or HALTED")
    assert error(client.post("/engines/main/trading-state", json={"state": "STOP"})) == bad_state
    assert error(client.post("/engines/main/trading-state", json={})) == bad_state
    assert error(client.post("/engines/main/trading-state", json={"state": "HALTED", "x": 1})) == (
        400, "Unknown field: x"
    )
    assert error(client.post("/engines/main/trading-state", json={"state": "HALTED", "reason": 5})) == (
        400, "Missing or bad reason field"
    )
    too_long = {"state": "HALTED", "reason": "x" * 501}
    assert error(client.post("/engines/main/trading-state", json=too_long))[0] == 400
    json_type = {"Content-Type": "application/json"}
    assert error(client.post("/engines/main/trading-state", content=b"[]", headers=json_type)) == (
        400, "Missing or bad request body"
    )
    assert error(client.post("/strategies/main/nope/trading-state", json={"state": "HALTED"})) == (
        404, "No such strategy"
    )
    assert error(client.post("/engines/gone/trading-state", json={"state": "HALTED"})) == (
        404, "Engine 'gone' is not running"
    )
    assert error(client.get("/engines/main/trading-state"))[0] == 405
    # nothing changed
    assert {e["trading_state"] for e in ok(client.get("/engines"))["engines"]} == {"ACTIVE"}
    # no session: 401; the session cookie without the JSON content type: 415 (like every state change)
    with stack.client() as anonymous:
        assert anonymous.post("/engines/main/trading-state", json={"state": "HALTED"}).status_code == 401
        assert anonymous.get("/engines").status_code == 401
        token = stack.login()
        cookie = {"Cookie": f"{COOKIE}={token}"}
        reply = anonymous.post("/engines/main/trading-state", content=b'{"state": "HALTED"}', headers=cookie)
        assert reply.status_code == 415
        forged = {**cookie, "Content-Type": "application/json", "Origin": "https://evil.example"}
        assert anonymous.post("/engines/main/trading-state", json={"state": "HALTED"},
                              headers=forged).status_code == 403
    assert {e["trading_state"] for e in ok(client.get("/engines"))["engines"]} == {"ACTIVE"}


def test_openapi_describes_the_trading_state_endpoints(stack: Stack) -> None:
    document = stack.client().get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/engines"]) == {"get"}
    assert set(paths["/engines/{engine}/trading-state"]) == {"post"}
    assert set(paths["/strategies/{engine}/{strategy}/trading-state"]) == {"post"}
    schemas = document["components"]["schemas"]
    assert schemas["TradingStateBody"]["properties"]["state"]["enum"] == ["ACTIVE", "REDUCING", "HALTED"]
    assert "trading_state" in schemas["StrategyInfo"]["properties"]
