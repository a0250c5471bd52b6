"""The distributed deployment over a real redis-server: cache and bus contracts, several engine processes
controlled through the bus, an engine riding out a Redis outage, command timeouts and name conflicts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from support.servers import moonship, redis

from moonship_core import CommandTimeout, ControlError, ControlPlane, EngineUnavailable
from moonship_core.contracts.stores import MessageBus, SharedCache, heartbeat_key
from moonship_core.stores.memory import MemoryBus, MemoryCache
from moonship_core.stores.redis import RedisBus, RedisCache, commands_key
from moonship_core.testing import RedisServer, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = redis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def engine_config(tmp_path: Path, name: str, url: str, strategies: str = "quoter") -> Path:
    blocks = {
        "quoter": """
    quoter:
      algo: spread_quoter
      auto_start: true
      markets: [btc]
      trade_quantity: 0.01
      spread_bps: 2""",
        "idle": """
    idle:
      algo: log_market_info
      markets: [btc]""",
    }
    path = tmp_path / f"{name}.yml"
    path.write_text(f"""
moonship:
  engine:
    name: {name}
  redis:
    url: {url}
  markets:
    btc:
      client: paper
      real_client: sim
      symbol: BTCUSDT
      balances: {{BTC: 10, USDT: 1000000}}
      events_per_second: 50
  strategies:{"".join(blocks[s] for s in strategies.split(","))}
""")
    return path


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15) -> Any:
    """Poll `check` until it returns something truthy (raising AssertionError in between is fine)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except (AssertionError, ControlError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


@pytest.fixture(params=["memory", "redis"])
def cache_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], SharedCache]]:
    if request.param == "memory":
        yield MemoryCache
        return
    server = redis()
    server.start()
    try:
        yield lambda: RedisCache(server.url)
    finally:
        server.kill()


def test_cache_contract(cache_factory: Callable[[], SharedCache]) -> None:
    async def main() -> None:
        cache = cache_factory()
        await cache.open()
        try:
            when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
            await cache.set("k", {"price": Decimal("0.10"), "at": when, "n": 1, "ok": True})
            assert await cache.get("k") == {
                "price": "0.10",
                "at": "2026-01-02T03:04:05+00:00",
                "n": 1,
                "ok": True,
            }
            assert await cache.get("missing") is None
            await cache.set("short", 1, ttl=0.2)
            assert await cache.get("short") == 1
            await asyncio.sleep(0.35)
            assert await cache.get("short") is None
            assert await cache.expire("k", 0.2) is True
            assert await cache.expire("missing", 1) is False
            await asyncio.sleep(0.35)
            assert await cache.get("k") is None
            assert [await cache.incr("n", ttl=0.3) for _ in range(3)] == [1, 2, 3]
            assert await cache.get("n") == 3
            await asyncio.sleep(0.45)
            assert await cache.incr("n") == 1  # expired: counts again from 0
            await cache.hset("h", {"a": 1, "b": {"x": [1, 2]}})
            await cache.hset("h", {"a": 2})
            assert await cache.hgetall("h") == {"a": 2, "b": {"x": [1, 2]}}
            assert await cache.hget("h", "b") == {"x": [1, 2]}
            assert await cache.hget("h", "zz") is None
            await cache.hdel("h", "a")
            assert await cache.hgetall("h") == {"b": {"x": [1, 2]}}
            await cache.delete("h")
            assert await cache.hgetall("h") == {}
        finally:
            await cache.close()

    run(main())


def test_bus_reply_timeout_unavailable_and_malformed(redis_server: RedisServer) -> None:
    async def main() -> None:
        cache, bus = RedisCache(redis_server.url), RedisBus(redis_server.url)
        calls: list[dict[str, Any]] = []

        async def handler(command: dict[str, Any]) -> dict[str, Any]:
            calls.append(command)
            if command["command"] == "slow":
                await asyncio.sleep(1.5)
            return {"id": command["id"], "ok": True, "result": command["command"]}

        try:
            with pytest.raises(EngineUnavailable):  # no heartbeat: a clear error at once, not a hang
                await bus.request("e1", {"id": "1", "command": "list"}, 5)
            await cache.set(heartbeat_key("e1"), {"instance": "x"}, ttl=30)
            await bus.serve("e1", handler)
            # a malformed entry on the stream is ignored, not fatal
            await bus.redis.xadd(commands_key("e1"), {"command": b"{not json"})
            reply = await bus.request("e1", {"id": "2", "command": "list"}, 5)
            assert reply == {"id": "2", "ok": True, "result": "list"}
            started = time.monotonic()
            with pytest.raises(CommandTimeout):
                await bus.request("e1", {"id": "3", "command": "slow"}, 0.3)
            assert time.monotonic() - started < 1.2
            assert [c["id"] for c in calls] == ["2", "3"]
        finally:
            await bus.close()
            await cache.close()

    run(main())


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_control_plane_maps_timeout_and_outage(backend: str, tmp_path: Path) -> None:
    async def main(url: str | None) -> None:
        cache: SharedCache = RedisCache(url) if url else MemoryCache()
        bus: MessageBus = RedisBus(url) if url else MemoryBus()
        control = ControlPlane(cache, bus, timeout=0.3)

        async def never(command: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(5)
            return {}

        try:
            await cache.set(heartbeat_key("e1"), {"instance": "x"}, ttl=30)
            await bus.serve("e1", never)
            with pytest.raises(CommandTimeout) as err:
                await control.start("e1", "s")
            assert err.value.status == 504 and str(err.value) == "Operation timeout"
        finally:
            await bus.close()
            await cache.close()

    if backend == "memory":
        run(main(None))
        return
    server = redis()
    server.start()
    try:
        run(main(server.url))
        url = server.url
    finally:
        server.kill()

    async def down() -> None:  # Redis gone: a 503-style error naming the outage, not a hang
        control = ControlPlane(RedisCache(url), RedisBus(url), timeout=1)
        with pytest.raises(ControlError) as err:
            await control.strategies()
        assert err.value.status == 503 and "unavailable" in str(err.value)

    run(down())


def services_config(tmp_path: Path, url: str, port: int) -> Path:
    """The API (plain HTTP on loopback) and a monitor whose alert has no actions (it logs when it fires)."""
    password = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
    path = tmp_path / "services.yml"
    path.write_text(f"""
moonship:
  redis:
    url: {url}
  api:
    host: 127.0.0.1
    port: {port}
    user: ops
    password: "{password}"
  monitor:
    poll_interval: 0.2
    alerts:
      stopped:
        condition: not active and start_time != null
""")
    return path


def test_two_engine_processes_controlled_through_the_bus(redis_server: RedisServer, tmp_path: Path) -> None:
    e1 = moonship("run", "-c", str(engine_config(tmp_path, "e1", redis_server.url, "quoter,idle")))
    e2 = moonship("run", "-c", str(engine_config(tmp_path, "e2", redis_server.url, "quoter,idle")))
    port = free_port()
    services = moonship(
        "run", "-a", "-m", "-c", str(services_config(tmp_path, redis_server.url, port))
    )
    try:
        services.wait_for("monitor started", 30)

        async def main() -> None:
            cache, bus = RedisCache(redis_server.url), RedisBus(redis_server.url)
            control = ControlPlane(cache, bus, timeout=10)
            try:

                async def both_listed() -> bool:
                    listed = await control.strategies()
                    names = {(s["engine"], s["name"]) for s in listed}
                    active = {(s["engine"], s["name"]) for s in listed if s["active"]}
                    everything = {("e1", "quoter"), ("e1", "idle"), ("e2", "quoter"), ("e2", "idle")}
                    return names == everything and active == {("e1", "quoter"), ("e2", "quoter")}

                await eventually(both_listed)
                assert await control.engines() == ["e1", "e2"]
                # through the API process, which has no engine of its own
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as api:
                    login = await api.post("/login", json={"user": "ops", "password": "secret"})
                    api.headers["Authorization"] = f"Bearer {login.json()['session_token']}"
                    listed = (await api.get("/strategies")).json()["strategies"]
                    assert {(s["engine"], s["name"]) for s in listed} == {
                        ("e1", "quoter"),
                        ("e1", "idle"),
                        ("e2", "quoter"),
                        ("e2", "idle"),
                    }
                    assert (await api.post("/strategies/e1/idle/start")).status_code == 200
                    assert (await api.post("/strategies/e2/quoter/stop")).status_code == 200
                    reply = await api.get("/strategies", params={"active": "true"})
                    active = {(s["engine"], s["name"]) for s in reply.json()["strategies"]}
                    assert active == {("e1", "quoter"), ("e1", "idle")}
                    assert (await api.post("/strategies/e3/quoter/start")).status_code == 404

                async def states() -> bool:
                    active = {(s["engine"], s["name"]) for s in await control.strategies({"active": "true"})}
                    return active == {("e1", "quoter"), ("e1", "idle")}

                await eventually(states)
                stopped = await control.strategy("e2", "quoter")
                assert stopped["stop_reason"] == "stopped by command"
                assert (await control.strategies({"engine": "e2", "name": "quoter"}))[0]["active"] is False
                added = await control.add("e2", "extra", {"algo": "log_market_info", "markets": ["btc"]})
                assert added["engine"] == "e2" and added["active"] is False
                with pytest.raises(ControlError) as err:
                    await control.add("e2", "extra", {"algo": "log_market_info", "markets": ["btc"]})
                assert err.value.status == 400
                await control.remove("e2", "extra")
                with pytest.raises(EngineUnavailable):
                    await control.start("e3", "quoter")
            finally:
                await bus.close()
                await cache.close()

        run(main())
        services.wait_for("alert stopped triggered for quoter@e2", 10)  # the monitor, over Redis
        assert services.count("alert stopped triggered") == 1
        assert e1.stop() == 0 and e2.stop() == 0 and services.stop() == 0

        async def gone() -> None:
            control = ControlPlane(RedisCache(redis_server.url), RedisBus(redis_server.url))
            assert await control.engines() == []  # stopped engines deregister
            assert await control.strategies() == []
            await control.cache.close()
            await control.bus.close()

        run(gone())
    finally:
        e1.kill()
        e2.kill()
        services.kill()


def test_engine_keeps_trading_through_a_redis_outage_and_republishes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    engine = moonship("run", "-c", str(engine_config(tmp_path, "e1", redis_server.url, "quoter,idle")))
    try:
        engine.wait_for("FILLED: filled", 30)
        redis_server.kill()
        mark = len(engine.lines)
        engine.wait_for("shared cache unreachable", 10, after=mark)
        engine.wait_for("FILLED: filled", 30, after=len(engine.lines))  # trading went on without Redis
        time.sleep(2)  # several publish attempts during the outage...
        assert engine.count("shared cache unreachable") == 1  # ...logged once
        assert engine.process.poll() is None
        redis_server.start()  # an empty Redis on the same port
        engine.wait_for("shared cache reachable again", 30)

        async def full_state() -> None:
            control = ControlPlane(RedisCache(redis_server.url), RedisBus(redis_server.url), timeout=10)
            try:

                async def republished() -> bool:
                    infos = {s["name"]: s for s in await control.strategies()}
                    return set(infos) == {"quoter", "idle"} and infos["quoter"]["active"] is True

                await eventually(republished)
                # the cache follows the engine again: a command goes through and its effect is published
                await control.start("e1", "idle")

                async def idle_active() -> bool:
                    return bool((await control.strategy("e1", "idle"))["active"])

                await eventually(idle_active)
            finally:
                await control.cache.close()
                await control.bus.close()

        run(full_state())
        assert engine.stop() == 0
    finally:
        engine.kill()


def test_second_engine_with_the_same_name_is_refused(redis_server: RedisServer, tmp_path: Path) -> None:
    first = moonship("run", "-c", str(engine_config(tmp_path, "e1", redis_server.url, "idle")))
    try:
        first.wait_for("engine e1 started", 30)
        dup = engine_config(tmp_path, "dup", redis_server.url, "idle")
        dup.write_text(dup.read_text().replace("name: dup", "name: e1"))
        second = moonship("run", "-c", str(dup))
        assert second.process.wait(30) == 1
        assert "in use by a running engine" in second.output
        assert first.process.poll() is None
        assert first.stop() == 0
    finally:
        first.kill()


def test_restarted_engine_replaces_its_old_state(redis_server: RedisServer, tmp_path: Path) -> None:
    async def names() -> set[str]:
        control = ControlPlane(RedisCache(redis_server.url), RedisBus(redis_server.url))
        try:
            return {s["name"] for s in await control.strategies()}
        finally:
            await control.cache.close()
            await control.bus.close()

    first = moonship("run", "-c", str(engine_config(tmp_path, "e1", redis_server.url, "quoter,idle")))
    try:
        first.wait_for("engine e1 started", 30)
        assert asyncio.run(eventually(lambda: _equals(names, {"quoter", "idle"})))
        first.kill()  # a crash: no deregistration
    finally:
        first.kill()
    again = moonship("run", "-c", str(engine_config(tmp_path, "e1", redis_server.url, "idle")))
    try:
        again.wait_for("engine e1 started", 40)  # after the crashed engine's heartbeat expired
        assert asyncio.run(eventually(lambda: _equals(names, {"idle"})))
        assert again.stop() == 0
    finally:
        again.kill()


async def _equals(get: Callable[[], Awaitable[Any]], expected: Any) -> bool:
    return bool(await get() == expected)
