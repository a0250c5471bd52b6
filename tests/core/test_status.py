"""`moonship status` and `moonship strategy start|stop`: over a real redis-server against two engines, and
through the API of the process that runs the engine when the config has no Redis."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import bcrypt
import pytest
import yaml
from support.servers import redis

from moonship_core import MemoryBus, MemoryCache, Stores, TradingEngine
from moonship_core.cli import main
from moonship_core.config import parse_config
from moonship_core.contracts.service import ServiceContext
from moonship_core.control import ControlPlane
from moonship_core.plugins import Plugins
from moonship_core.testing import free_port

T = TypeVar("T")
MARKET = {
    "client": "paper", "real_client": "sim", "symbol": "BTCUSDT", "events_per_second": 20,
    "balances": {"BTC": 1, "USDT": 100000},
}
QUOTER = {
    "algo": "spread_quoter", "markets": ["btc"], "trade_quantity": "0.01", "spread_bps": 1,
    "max_position": "0.1", "max_drawdown": 500,
}


class Loop:
    """An event loop in a thread: the engines run there while the CLI runs in the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def engine_config(name: str, strategies: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"moonship": {
        "engine": {"name": name}, "markets": {"btc": MARKET}, "strategies": strategies,
        "journal": {"path": f"moonship-data/{name}.sqlite"}, **extra,
    }}


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    server = redis()
    server.start()
    yield server.url
    server.kill()


def test_status_and_strategy_commands_over_redis(
    loop: Loop, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    redis = {"redis": {"url": redis_url}}
    plans = {
        "one": {"quoter": {**QUOTER, "auto_start": True}, "idle": QUOTER},
        "two": {"other": {**QUOTER, "auto_start": True}},
    }
    engines: list[TradingEngine] = []

    async def start() -> None:
        for name, strategies in plans.items():
            config = parse_config(engine_config(name, strategies, **redis))
            engine = TradingEngine.embedded(config, stores=Plugins.load().stores(config))
            await engine.context.stores.open()
            await engine.start()
            engines.append(engine)

    async def stop() -> None:
        for engine in engines:
            await engine.stop()
            await engine.context.stores.close()

    loop.run(start())
    try:
        config_file = tmp_path / "cli.yml"
        config_file.write_text(yaml.safe_dump({"moonship": {"engine": {"name": "cli"}, **redis}}))
        control = engines[0].context.control
        for _ in range(200):  # both engines published their strategies, the auto-started ones active
            infos = loop.run(control.strategies())
            if len(infos) == 3 and sum(bool(i["active"]) for i in infos) == 2:
                break
            loop.run(asyncio.sleep(0.05))

        assert main(["status", "-c", str(config_file), "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert [e["name"] for e in status["engines"]] == ["one", "two"]
        by_name = {(s["engine"], s["name"]): s for s in status["strategies"]}
        assert set(by_name) == {("one", "quoter"), ("one", "idle"), ("two", "other")}
        assert by_name[("one", "quoter")]["active"] is True
        assert by_name[("one", "idle")]["active"] is False
        assert {"position", "total_profit", "open_orders", "trading_state"} <= set(by_name[("two", "other")])

        assert main(["status", "-c", str(config_file)]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split() == ["ENGINE", "TRADING", "STATE", "STARTED"]
        assert [line.split()[:3] for line in table if line.startswith(("one ", "two "))][2:] == [
            ["one", "idle", "False"], ["one", "quoter", "True"], ["two", "other", "True"]
        ]

        assert main(["strategy", "stop", "one", "quoter", "-c", str(config_file)]) == 0
        assert capsys.readouterr().out.strip() == "strategy quoter of engine one: stopped"
        assert engines[0].strategies["quoter"].active is False
        assert main(["strategy", "start", "two", "missing", "-c", str(config_file)]) == 1
        assert "moonship strategy start: " in capsys.readouterr().err
    finally:
        loop.run(stop())


def test_status_and_strategy_commands_through_the_api(
    loop: Loop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from moonship_api.service import ApiService

    monkeypatch.chdir(tmp_path)
    password_hash = bcrypt.hashpw(b"pass phrase", bcrypt.gensalt(rounds=4)).decode()
    api = {"host": "127.0.0.1", "port": free_port(), "user": "trader", "password": password_hash}
    document = engine_config("solo", {"quoter": {**QUOTER, "auto_start": True}}, api=api)
    started: list[Any] = []

    async def start() -> None:
        config = parse_config(document)
        stores = Stores(MemoryCache(), MemoryBus())
        engine = TradingEngine.embedded(config, stores=stores)
        await engine.start()
        context = ServiceContext(
            config=config, settings=api, sections={}, registry=Plugins.load(), stores=stores,
            control=ControlPlane(stores.cache, stores.bus),
        )
        service = ApiService(context)
        await service.start()
        started.extend([service, engine])

    async def stop() -> None:
        for part in started:
            await part.stop()

    loop.run(start())
    try:
        control = started[1].context.control
        for _ in range(200):  # the auto-started strategy is published active
            if [i["active"] for i in loop.run(control.strategies())] == [True]:
                break
            loop.run(asyncio.sleep(0.05))
        config_file = tmp_path / "config.yml"
        config_file.write_text(yaml.safe_dump(document))
        monkeypatch.delenv("MOONSHIP_API_USER", raising=False)
        assert main(["status", "-c", str(config_file)]) == 2
        assert "MOONSHIP_API_USER and MOONSHIP_API_PASSWORD" in capsys.readouterr().err

        monkeypatch.setenv("MOONSHIP_API_USER", "trader")
        monkeypatch.setenv("MOONSHIP_API_PASSWORD", "wrong")
        assert main(["status", "-c", str(config_file)]) == 1
        assert "Invalid user or password" in capsys.readouterr().err

        monkeypatch.setenv("MOONSHIP_API_PASSWORD", "pass phrase")
        assert main(["status", "-c", str(config_file), "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert [(s["engine"], s["name"], s["active"]) for s in status["strategies"]] == [
            ("solo", "quoter", True)
        ]
        assert main(["strategy", "stop", "solo", "quoter", "-c", str(config_file)]) == 0
        assert capsys.readouterr().out.strip() == "strategy quoter of engine solo: stopped"
        assert started[1].strategies["quoter"].active is False
        assert main(["strategy", "start", "solo", "quoter", "-c", str(config_file)]) == 0
        assert capsys.readouterr().out.strip() == "strategy quoter of engine solo: active"
    finally:
        loop.run(stop())
