"""The strategy endpoints against real engines: list and filters, get, add, update, remove, start, stop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .harness import Stack


def names(reply: httpx.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [s["name"] for s in reply.json()["strategies"]]


def error(reply: httpx.Response) -> tuple[int, str]:
    body = reply.json()
    assert set(body) == {"error", "status"} and body["status"] == reply.status_code
    assert reply.headers["content-type"] == "application/json"
    return reply.status_code, body["error"]


def cached(stack: Stack, engine: str, name: str) -> dict[str, Any] | None:
    """The strategy as the shared cache holds it, None if absent."""
    found = stack.loop.run(stack.control.strategies({"engine": engine, "name": name}))
    return found[0] if found else None


@pytest.fixture
def scratch(stack: Stack, client: httpx.Client) -> Iterator[str]:
    """A strategy name in engine main, removed after the test if it was added."""
    yield "scratch"
    client.delete("/strategies/main/scratch")
    stack.wait_for(lambda: cached(stack, "main", "scratch") is None)


def test_list_returns_every_engines_strategies(client: httpx.Client) -> None:
    reply = client.get("/strategies")
    assert names(reply) == ["alpha", "beta", "gamma"]
    alpha = reply.json()["strategies"][0]
    assert alpha["engine"] == "main" and alpha["active"] is True and alpha["label"] == "a"
    assert alpha["config"] == {"algo": "marker", "auto_start": True, "markets": ["btc"], "label": "a"}
    assert alpha["total_profit"] == "0" and alpha["last_trade_profit"] is None  # exact decimals as text
    assert alpha["start_time"].endswith("+00:00")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"engine": "main"}, ["alpha", "beta"]),
        ({"engine": "other"}, ["gamma"]),
        ({"engine": "nope"}, []),
        ({"active": "true"}, ["alpha", "gamma"]),
        ({"active": "True"}, ["alpha", "gamma"]),
        ({"active": "false"}, ["beta"]),
        ({"active": "1"}, []),  # a boolean matches only true/false
        ({"engine": "main", "active": "true"}, ["alpha"]),
        ({"engine": "other", "active": "false"}, []),
        ({"name": "beta"}, ["beta"]),
        ({"label": "g"}, ["gamma"]),  # a field the algo publishes
        ({"total_profit": "0"}, ["alpha", "beta", "gamma"]),
        ({"total_profit": "0.000"}, ["alpha", "beta", "gamma"]),  # numbers compare as values
        ({"total_profit": "abc"}, []),
        ({"position": "1e-30"}, []),
        ({"start_time": "null"}, ["beta"]),
        ({"last_trade_profit": "null"}, ["alpha", "beta", "gamma"]),
        ({"no_such_field": "x"}, []),
        ({"config": "x"}, []),
    ],
)
def test_query_parameters_filter_by_field(
    client: httpx.Client, query: dict[str, str], expected: list[str]
) -> None:
    assert names(client.get("/strategies", params=query)) == expected


def test_repeated_filter_uses_the_last_value(client: httpx.Client) -> None:
    assert names(client.get("/strategies?engine=main&engine=other")) == ["gamma"]


def test_get_one_strategy(client: httpx.Client) -> None:
    reply = client.get("/strategies/main/beta")
    assert reply.status_code == 200
    assert reply.json()["name"] == "beta" and reply.json()["config"]["size"] == "0.5"
    assert error(client.get("/strategies/main/nope")) == (404, "No such strategy")
    assert error(client.get("/strategies/nope/beta")) == (404, "No such strategy")
    assert error(client.get("/strategies/stuck/beta")) == (404, "No such strategy")


def test_add_a_strategy(stack: Stack, client: httpx.Client, scratch: str) -> None:
    config = {"algo": "marker", "markets": ["btc"], "label": "s", "size": 2.5}
    reply = client.post(f"/strategies/main/{scratch}", json={"config": config})
    assert reply.status_code == 200, reply.text
    info = reply.json()
    assert info["name"] == scratch and info["engine"] == "main" and info["active"] is False
    assert info["config"] == {**config, "auto_start": False}
    stack.wait_for(lambda: client.get(f"/strategies/main/{scratch}").status_code == 200)
    assert client.get(f"/strategies/main/{scratch}").json()["config"]["label"] == "s"
    assert names(client.get("/strategies", params={"engine": "main"})) == ["alpha", "beta", scratch]
    again = client.post(f"/strategies/main/{scratch}", json={"config": config})
    assert error(again) == (400, f"Strategy {scratch} already exists")


def test_add_with_auto_start_starts_it(client: httpx.Client, scratch: str) -> None:
    config = {"algo": "marker", "markets": "btc", "auto_start": True}
    reply = client.post(f"/strategies/main/{scratch}", json={"config": config})
    assert reply.status_code == 200 and reply.json()["active"] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Missing or bad config field"),
        ({"config": None}, "Missing or bad config field"),
        ({"config": ["algo"]}, "Missing or bad config field"),
        ({"config": {"markets": ["btc"]}}, "moonship.strategies.scratch.algo: field required"),
        ({"config": {"algo": "marker", "markets": []}}, "moonship.strategies.scratch.markets: "),
        ({"config": {"algo": "marker", "markets": ["eth"]}}, "markets: unknown market 'eth'"),
        ({"config": {"algo": "nope", "markets": ["btc"]}}, "moonship.strategies.scratch.algo: unknown algo"),
        ({"config": {"algo": "marker", "markets": ["btc"], "sise": 1}}, "scratch.sise: unknown property"),
        ({"config": {"algo": "marker", "markets": ["btc"], "size": "lots"}}, "scratch.size: "),
        ({"config": {"algo": "marker", "markets": ["btc"], "auto_start": "maybe"}}, "scratch.auto_start: "),
    ],
)
def test_add_with_a_bad_config_names_the_field(
    client: httpx.Client, scratch: str, body: dict[str, Any], message: str
) -> None:
    status, text = error(client.post(f"/strategies/main/{scratch}", json=body))
    assert status == 400
    assert message in text
    assert error(client.get(f"/strategies/main/{scratch}"))[0] == 404


def test_bodies_that_are_not_json_objects_are_refused(client: httpx.Client) -> None:
    for body in (b"", b"{", b'"config"', b"[]", b"{\"config\": NaN}"):
        reply = client.post("/strategies/main/scratch", content=body)
        assert error(reply) == (400, "Missing or bad request body")
        reply = client.patch("/strategies/main/alpha", content=body)
        assert error(reply) == (400, "Missing or bad request body")
    reply = client.post("/strategies/main/scratch", json={"config": {"x": "y" * (1 << 20)}})
    assert error(reply) == (413, "Request body too large")


def test_commands_to_an_engine_that_is_not_running(client: httpx.Client) -> None:
    body = {"config": {"algo": "marker", "markets": ["btc"]}}
    message = "Engine 'nope' is not running"
    assert error(client.post("/strategies/nope/x", json=body)) == (404, message)
    assert error(client.patch("/strategies/nope/x", json=body)) == (404, message)
    assert error(client.delete("/strategies/nope/x")) == (404, message)
    assert error(client.post("/strategies/nope/x/start")) == (404, message)
    assert error(client.post("/strategies/nope/x/stop")) == (404, message)


def test_commands_to_an_unknown_strategy(client: httpx.Client) -> None:
    assert error(client.patch("/strategies/main/nope", json={"config": {}})) == (404, "No such strategy")
    assert error(client.delete("/strategies/main/nope")) == (404, "No such strategy")
    assert error(client.post("/strategies/main/nope/start")) == (404, "No such strategy")
    assert error(client.post("/strategies/main/nope/stop")) == (404, "No such strategy")


def test_start_and_stop(stack: Stack, client: httpx.Client, scratch: str) -> None:
    client.post(f"/strategies/main/{scratch}", json={"config": {"algo": "marker", "markets": ["btc"]}})
    reply = client.post(f"/strategies/main/{scratch}/start")
    assert reply.status_code == 200 and reply.json()["active"] is True
    started = reply.json()["start_time"]
    again = client.post(f"/strategies/main/{scratch}/start")  # already active: no change
    assert again.status_code == 200 and again.json()["start_time"] == started
    stack.wait_for(lambda: client.get(f"/strategies/main/{scratch}").json().get("active") is True)
    reply = client.post(f"/strategies/main/{scratch}/stop")
    assert reply.status_code == 200
    assert reply.json()["active"] is False and reply.json()["stop_reason"] == "stopped by command"
    assert client.post(f"/strategies/main/{scratch}/stop").status_code == 200
    stack.wait_for(lambda: client.get(f"/strategies/main/{scratch}").json().get("active") is False)


def test_update_restarts_an_active_strategy(stack: Stack, client: httpx.Client, scratch: str) -> None:
    config = {"algo": "marker", "markets": ["btc"], "auto_start": True, "label": "old", "size": "1"}
    first = client.post(f"/strategies/main/{scratch}", json={"config": config}).json()
    time.sleep(0.01)
    reply = client.patch(f"/strategies/main/{scratch}", json={"config": {"label": "new"}})
    assert reply.status_code == 200, reply.text
    info = reply.json()
    assert info["active"] is True and info["start_time"] > first["start_time"]  # stopped and started again
    assert info["config"] == {**config, "label": "new"}  # merged over the old config
    assert info["label"] == "new"  # the new algo instance is running
    stack.wait_for(lambda: cached(stack, "main", scratch) == info)


def test_update_keeps_an_inactive_strategy_inactive(client: httpx.Client, scratch: str) -> None:
    client.post(f"/strategies/main/{scratch}", json={"config": {"algo": "marker", "markets": ["btc"]}})
    reply = client.patch(f"/strategies/main/{scratch}", json={"config": {"size": "3"}})
    assert reply.status_code == 200 and reply.json()["active"] is False
    assert reply.json()["config"]["size"] == "3"


def test_update_with_a_bad_config_changes_nothing(stack: Stack, client: httpx.Client, scratch: str) -> None:
    client.post(f"/strategies/main/{scratch}", json={"config": {"algo": "marker", "markets": ["btc"]}})
    assert error(client.patch(f"/strategies/main/{scratch}", json={})) == (400, "Missing or bad config field")
    status, message = error(client.patch(f"/strategies/main/{scratch}", json={"config": {"size": "x"}}))
    assert status == 400 and "moonship.strategies.scratch.size: " in message
    status, message = error(client.patch(f"/strategies/main/{scratch}", json={"config": {"markets": "eth"}}))
    assert status == 400 and "unknown market 'eth'" in message
    assert stack.engines[0].strategies[scratch].config.model_dump() == {
        "algo": "marker", "auto_start": False, "markets": ["btc"]
    }


def test_remove_stops_and_deletes(stack: Stack, client: httpx.Client, scratch: str) -> None:
    config = {"algo": "marker", "markets": ["btc"], "auto_start": True}
    assert client.post(f"/strategies/main/{scratch}", json={"config": config}).json()["active"] is True
    engine = stack.engines[0]
    strategy = engine.strategies[scratch]
    reply = client.delete(f"/strategies/main/{scratch}")
    assert reply.status_code == 200 and reply.json() == {}
    assert not strategy.active and strategy.stop_reason == "removed"
    stack.wait_for(lambda: client.get(f"/strategies/main/{scratch}").status_code == 404)
    assert error(client.delete(f"/strategies/main/{scratch}")) == (404, "No such strategy")


def test_an_engine_that_does_not_answer_gives_504(stack: Stack, client: httpx.Client) -> None:
    started = time.monotonic()
    assert error(client.patch("/strategies/stuck/x", json={"config": {}})) == (504, "Operation timeout")
    assert 2 <= time.monotonic() - started < 4  # the control plane's timeout: 2 s


def test_unknown_path_and_method(client: httpx.Client) -> None:
    assert error(client.get("/nope")) == (404, "Not found")
    assert error(client.get("/strategies/main")) == (404, "Not found")
    reply = client.put("/strategies/main/alpha", json={})
    assert error(reply) == (405, "Method not allowed")
    assert set(reply.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "PATCH", "DELETE"}
    assert error(client.get("/strategies/main/alpha/start")) == (405, "Method not allowed")
    assert error(client.get("/login")) == (405, "Method not allowed")


def test_internal_errors_never_leak_details(
    stack: Stack, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(*args: Any) -> Any:
        raise RuntimeError("secret detail at /home/trader/keys.txt")

    monkeypatch.setattr(stack.control, "strategies", boom)
    reply = client.get("/strategies")
    assert error(reply) == (500, "Internal server error")
    assert "secret" not in reply.text and "Traceback" not in reply.text

    async def down(*args: Any) -> Any:
        raise ConnectionError("redis: connection refused")

    monkeypatch.setattr(stack.control, "strategies", down)
    assert error(client.get("/strategies")) == (503, "Shared cache or message bus unavailable")


def test_engine_failures_keep_their_message_not_other_statuses(stack: Stack, client: httpx.Client) -> None:
    async def broken(command: dict[str, Any]) -> dict[str, Any]:
        status = int(command["strategy"])
        return {"id": command["id"], "ok": False, "error": f"failed with {status}", "status": status}

    stack.loop.run(stack.bus.serve("broken", broken))
    try:
        assert error(client.post("/strategies/broken/500/start")) == (500, "failed with 500")
        assert error(client.post("/strategies/broken/400/start")) == (400, "failed with 400")
        assert error(client.post("/strategies/broken/404/start")) == (404, "failed with 404")
        assert error(client.post("/strategies/broken/418/start")) == (500, "failed with 418")
        assert error(client.post("/strategies/broken/302/start")) == (500, "failed with 302")
    finally:
        stack.loop.run(stack.bus.unserve("broken"))


def test_a_cache_outage_during_the_session_check_is_a_503(
    stack: Stack, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: Any) -> Any:
        raise ConnectionError("redis: connection refused")

    monkeypatch.setattr(stack.cache, "get", down)
    assert error(client.get("/strategies")) == (503, "Shared cache or message bus unavailable")
