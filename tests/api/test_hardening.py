"""Hostile and careless requests against a real uvicorn over TLS in front of a real engine (issue 15): one
request must never be able to kill or bloat the engine."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from moonship_core import MAX_DEPTH, STRATEGY_NAME_RULE, StrategyMarket, TradingAlgo, hookimpl
from moonship_core.plugins import Plugins

from .harness import Certs, LoopThread, MakeStack, Stack, build_stack


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
    assert "available: exits, fails, log_market_info, marker, spread_quoter" in message
    assert "Traceback" not in reply.text
    # the same through an update that would switch alpha's algo
    status, message = error(client.patch("/strategies/main/alpha", json={"config": {"algo": algo}}))
    assert status == 400 and "only registered names" in message
    assert set(sys.modules) == before  # nothing was imported
    assert_alive(hard, client)


def test_an_algo_that_exits_does_not_end_the_engine(hard: Stack, client: httpx.Client) -> None:
    config = {"algo": "exits", "markets": ["btc"], "auto_start": True}
    reply = client.post("/strategies/main/x", json={"config": config})
    # the algo's SystemExit ends only its start, not the engine
    assert error(reply) == (500, "strategy x failed to start: SystemExit(2)")
    assert error(client.get("/strategies/main/x"))[0] == 404
    stopped = {**config, "auto_start": False}
    assert client.post("/strategies/main/x", json={"config": stopped}).status_code == 200
    started = client.post("/strategies/main/x/start")
    assert error(started) == (500, "strategy x failed to start: SystemExit(2)")
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


# ---------------------------------------------------------------------- item 2: bounded state
def test_thousands_of_unknown_names_leave_no_per_name_state(hard: Stack, client: httpx.Client) -> None:
    """The count of per-name entries (command locks, loggers), not RSS or a timing."""
    engine = hard.engines[0]
    loggers = len(logging.Logger.manager.loggerDict)
    for i in range(2000):
        assert error(client.post(f"/strategies/main/unknown-{i}/stop")) == (404, "No such strategy")
    assert engine.commands._locks == {}
    assert len(logging.Logger.manager.loggerDict) == loggers
    assert_alive(hard, client)


@pytest.mark.parametrize(
    "name",
    ["a%20b", "a%0Ab", "abc%0A", "a%00b", "%1B%5B31mred", "caf%C3%A9", "x" * 65, "x" * 10_000, "a:b",
     "a%25b"],
)
def test_bad_strategy_names_are_refused(hard: Stack, client: httpx.Client, name: str) -> None:
    config = {"config": {"algo": "marker", "markets": ["btc"]}}
    expected = (400, f"Bad strategy name: it must be {STRATEGY_NAME_RULE}")
    assert error(client.post(f"/strategies/main/{name}", json=config)) == expected
    assert error(client.get(f"/strategies/main/{name}")) == expected
    assert error(client.patch(f"/strategies/main/{name}", json=config)) == expected
    assert error(client.delete(f"/strategies/main/{name}")) == expected
    assert error(client.post(f"/strategies/main/{name}/start")) == expected
    assert error(client.post(f"/strategies/main/{name}/stop")) == expected
    assert hard.engines[0].strategies.keys() == {"alpha"}
    longest = "A-z_0.9" + "x" * 57
    assert client.post(f"/strategies/main/{longest}", json=config).status_code == 200


@pytest.mark.parametrize("depth", [40, 250, 900, 2000])
def test_deeply_nested_bodies_are_refused(hard: Stack, client: httpx.Client, depth: int) -> None:
    label = "[" * depth + "1" + "]" * depth
    content = f'{{"config": {{"algo": "marker", "markets": ["btc"], "label": {label}}}}}'.encode()
    headers = {"Content-Type": "application/json"}
    expected = (400, f"Request body nested more than {MAX_DEPTH} levels deep")
    if depth > 1024:  # past what the JSON parser takes at all
        expected = (400, "Missing or bad request body")
    assert error(client.post("/strategies/main/x", content=content, headers=headers)) == expected
    assert error(client.patch("/strategies/main/alpha", content=content, headers=headers)) == expected
    assert error(client.post("/login", content=content, headers=headers)) == expected
    assert_alive(hard, client)


@pytest.mark.parametrize(
    ("size", "problem"),
    [
        ("1e999999999", "number out of range (magnitude 1e-100 to 1e100)"),
        ("-1e999999999", "number out of range"),
        ("1e-999999999", "number out of range"),
        ("Infinity", "input should be a finite number"),
        ("NaN", "input should be a finite number"),
    ],
)
def test_overflowing_numbers_are_refused(hard: Stack, client: httpx.Client, size: str, problem: str) -> None:
    config = {"algo": "marker", "markets": ["btc"], "auto_start": True, "size": size}
    status, message = error(client.post("/strategies/main/x", json={"config": config}))
    assert status == 400 and message.startswith(f"moonship.strategies.x.size: {problem}")
    status, message = error(client.patch("/strategies/main/alpha", json={"config": {"size": size}}))
    assert status == 400 and message.startswith(f"moonship.strategies.alpha.size: {problem}")
    assert hard.engines[0].strategies["alpha"].settings.size == 1  # type: ignore[attr-defined]
    assert_alive(hard, client)


def test_request_text_is_escaped_in_the_access_log(
    hard: Stack, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "moonship.api")
    # header bytes 0x80-0xFF pass HTTP parsing; read as latin-1, 0x85 is NEL (a line break) and 0x9B is CSI
    forged = b"agent\x85[01/Jan/2030] forged line \x9b31m"
    assert client.get("/strategies", headers={"User-Agent": forged}).status_code == 200
    hard.wait_for(lambda: "forged line" in caplog.text)
    line = next(r.getMessage() for r in caplog.records if "forged line" in r.getMessage())
    assert "agent\\x85[01/Jan/2030] forged line \\x9b31m" in line
    assert "\x85" not in line and "\x9b" not in line


# ---------------------------------------------------------------------- item 7: secrets stay secret
def test_values_from_environment_variables_are_masked(
    make_stack: MakeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARDEN_API_LABEL", "label-from-env")
    monkeypatch.setenv("HARDEN_API_SIZE", "2.5")
    strategies = {"sec": {"algo": "marker", "markets": ["btc"], "label": "$HARDEN_API_LABEL",
                          "size": "$HARDEN_API_SIZE"}}
    stack = make_stack(engines={"main": strategies})
    engine = stack.engines[0]
    assert engine.strategies["sec"].settings.size == Decimal("2.5")  # type: ignore[attr-defined]
    with stack.client(stack.login()) as client:
        stack.wait_for(lambda: client.get("/strategies/main/sec").status_code == 200)
        masked = {"algo": "marker", "auto_start": False, "markets": ["btc"], "label": "***", "size": "***"}
        assert client.get("/strategies/main/sec").json()["config"] == masked
        assert client.get("/strategies").json()["strategies"][0]["config"] == masked
        reply = client.patch("/strategies/main/sec", json={"config": {"size": "3"}})
        assert reply.status_code == 200 and reply.json()["config"] == {**masked, "size": "3"}
        assert "label-from-env" not in client.get("/strategies").text
