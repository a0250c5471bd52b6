"""Hostile and careless requests against a real uvicorn over TLS in front of a real engine (issue 15): one
request must never be able to kill or bloat the engine."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from moonship_core import StrategyMarket, TradingAlgo, hookimpl
from moonship_core.plugins import Plugins

from .harness import Certs, LoopThread, Stack, build_stack


class Exits(TradingAlgo):
    async def on_start(self) -> None:
        raise SystemExit(2)

    async def on_order_book(self, market: StrategyMarket) -> None:
        pass


class FailsToStart(Exits):
    async def on_start(self) -> None:
        raise RuntimeError("no start today")


class HostilePlugin:
    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"exits": Exits, "fails": FailsToStart}


@pytest.fixture(scope="module")
def hard(loop: LoopThread, certs: Certs) -> Iterator[Stack]:
    """Engine "main" with "alpha" (marker, active); the algos "exits" and "fails" registered too."""
    strategies = {"alpha": {"algo": "marker", "auto_start": True, "markets": ["btc"]}}
    stack = build_stack(loop, certs, engines={"main": strategies})
    plugins = stack.engines[0].context.registry
    assert isinstance(plugins, Plugins)
    plugins.register(HostilePlugin(), "hostile")
    yield stack
    stack.stop()


@pytest.fixture
def client(hard: Stack) -> Iterator[httpx.Client]:
    with hard.client(hard.login()) as client:
        yield client
    for name in list(hard.engines[0].strategies):
        if name != "alpha":
            hard.loop.run(hard.control.remove("main", name))


def error(reply: httpx.Response) -> tuple[int, str]:
    assert reply.headers["content-type"] == "application/json", reply.text
    body = reply.json()
    assert set(body) == {"error", "status"} and body["status"] == reply.status_code
    return reply.status_code, body["error"]


def assert_alive(hard: Stack, client: httpx.Client) -> None:
    """The engine still answers commands: list, stop and start."""
    assert [s["name"] for s in client.get("/strategies").json()["strategies"]] == ["alpha"]
    assert client.post("/strategies/main/alpha/stop").json()["active"] is False
    assert client.post("/strategies/main/alpha/start").json()["active"] is True
    assert hard.engines[0].strategies["alpha"].active


# ---------------------------------------------------------------------- item 1: only registered names
@pytest.mark.parametrize(
    "algo",
    ["this.x", "subprocess.Popen", "builtins.type", "moonship_binance.client.BinanceClient",
     "venv.__main__.x", "paramiko.Transport", "api.harness.Marker"],
)
def test_dotted_algo_paths_are_refused_and_nothing_is_imported(
    hard: Stack, client: httpx.Client, algo: str
) -> None:
    before = set(sys.modules)
    reply = client.post("/strategies/main/x", json={"config": {"algo": algo, "markets": ["btc"]}})
    status, message = error(reply)
    assert status == 400
    assert message.startswith(f"moonship.strategies.x.algo: unknown algo {algo!r}: only registered names")
    assert "dotted class paths only in the config file" in message
    assert "available: exits, fails, marker" in message
    assert "Traceback" not in reply.text
    # the same through an update that would switch alpha's algo
    status, message = error(client.patch("/strategies/main/alpha", json={"config": {"algo": algo}}))
    assert status == 400 and "only registered names" in message
    assert set(sys.modules) == before  # nothing was imported
    assert_alive(hard, client)


def test_an_algo_that_exits_does_not_end_the_engine(hard: Stack, client: httpx.Client) -> None:
    config = {"algo": "exits", "markets": ["btc"], "auto_start": True}
    reply = client.post("/strategies/main/x", json={"config": config})
    assert error(reply) == (500, "Internal error: SystemExit")
    assert error(client.get("/strategies/main/x"))[0] == 404
    stopped = {**config, "auto_start": False}
    assert client.post("/strategies/main/x", json={"config": stopped}).status_code == 200
    assert error(client.post("/strategies/main/x/start")) == (500, "Internal error: SystemExit")
    assert client.delete("/strategies/main/x").status_code == 200
    assert_alive(hard, client)


def test_a_failed_auto_start_add_leaves_no_strategy(hard: Stack, client: httpx.Client) -> None:
    config = {"algo": "fails", "markets": ["btc"], "auto_start": True}
    assert error(client.post("/strategies/main/x", json={"config": config})) == (
        500, "strategy x failed to start: no start today"
    )
    assert "x" not in hard.engines[0].strategies
    assert error(client.get("/strategies/main/x"))[0] == 404
    assert error(client.post("/strategies/main/x/start")) == (404, "No such strategy")
    reply = client.post("/strategies/main/x", json={"config": {**config, "algo": "marker"}})
    assert reply.status_code == 200 and reply.json()["active"] is True  # not "already exists"
