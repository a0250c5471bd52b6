"""Across processes: API replicas sharing sessions through Redis, and `moonship run -a` controlling an engine
process over Redis with its port from `$PORT`."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from moonship_api.auth import Sessions
from moonship_api.service import ApiService
from support.servers import moonship, redis

from moonship_core import Stores
from moonship_core.config import parse_config
from moonship_core.contracts.service import ServiceContext
from moonship_core.control import ControlPlane
from moonship_core.plugins import Plugins
from moonship_core.testing import free_port

from .harness import (
    MAIN_STRATEGIES,
    PASSWORD,
    PASSWORD_HASH,
    USER,
    Certs,
    LoopThread,
    Stack,
    api_settings,
    build_stack,
)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = redis()
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


def redis_backend(url: str) -> Stores:
    return Plugins.load(entry_points=False).stores(parse_config({"moonship": {"redis": {"url": url}}}))


@pytest.fixture
def replicas(loop: LoopThread, certs: Certs, redis_url: str) -> Iterator[tuple[Stack, str]]:
    """Engine "main" and API replica A in one stack, and replica B with its own Redis connections."""
    engines = {"main": MAIN_STRATEGIES}
    stack = build_stack(loop, certs, engines=engines, backend=lambda: redis_backend(redis_url))

    async def start_b() -> ApiService:
        stores = redis_backend(redis_url)
        cache, bus = stores.cache, stores.bus
        context = ServiceContext(
            config=parse_config({"moonship": {}}), settings=api_settings(certs), sections={},
            registry=Plugins(), stores=stores, control=ControlPlane(cache, bus, timeout=5),
        )
        api = ApiService(context)
        await api.start()
        return api

    b = loop.run(start_b())
    try:
        yield stack, f"https://127.0.0.1:{b.port}"
    finally:
        loop.run(b.stop())
        loop.run(b.context.bus.close())
        loop.run(b.context.cache.close())
        stack.stop()


def test_replicas_share_sessions_and_throttling(replicas: tuple[Stack, str], certs: Certs) -> None:
    a, b_url = replicas
    token = a.login()
    with httpx.Client(base_url=b_url, verify=certs.client_context()) as b:
        bearer = {"Authorization": f"Bearer {token}"}
        a.wait_for(lambda: len(b.get("/strategies", headers=bearer).json()["strategies"]) == 2)
        reply = b.post("/strategies/main/beta/start", headers=bearer)
        assert reply.status_code == 200 and reply.json()["active"] is True
        assert b.post("/logout", headers=bearer).status_code == 200
        with a.client(token) as client:
            assert client.get("/strategies").status_code == 401  # logged out on B, gone on A too
        address = {"X-Forwarded-For": "203.0.113.50"}
        with a.client() as client:
            for _ in range(5):
                reply = client.post("/login", json={"user": USER, "password": "x"}, headers=address)
                assert reply.status_code == 401
        started = time.perf_counter()  # B knows of the lock A set: the right password waits it out
        reply = b.post("/login", json={"user": USER, "password": PASSWORD}, headers=address)
        assert reply.status_code == 200 and time.perf_counter() - started > 0.8


def test_sessions_end_when_the_credentials_change(
    loop: LoopThread, certs: Certs, redis_url: str
) -> None:
    """Issue 15: after the password hash (or user) was changed and the API restarted, old tokens worked."""

    def start(**settings: str) -> Stack:
        return build_stack(
            loop, certs, settings=api_settings(certs, **settings), backend=lambda: redis_backend(redis_url)
        )

    first = start()
    try:
        token = first.login()
        with first.client(token) as client:
            assert client.get("/strategies").status_code == 200
        # stored with a TTL although idle_session_expiry is 0: the 12 h lifetime
        pttl = loop.run(first.cache.redis.pttl(Sessions.key(token)))  # type: ignore[attr-defined]
        assert 12 * 3600_000 - 60_000 < pttl <= 12 * 3600_000
        kept = first.login()
    finally:
        first.stop()
    rehashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()  # same password
    second = start(password=rehashed)
    try:
        with second.client(token) as client:
            assert client.get("/strategies").status_code == 401
        assert loop.run(second.cache.get(Sessions.key(token))) is None  # and gone from Redis
        fresh = second.login()
        with second.client(fresh) as client:
            assert client.get("/strategies").status_code == 200
    finally:
        second.stop()
    third = start(password=rehashed, user="operator")
    try:
        for old in (fresh, kept):
            with third.client(old) as client:
                assert client.get("/strategies").status_code == 401
    finally:
        third.stop()


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.slow
def test_api_process_controls_an_engine_process(redis_url: str, certs: Certs, tmp_path: Path) -> None:
    market = """
  markets:
    btc: {client: paper, real_client: sim, symbol: BTCUSDT, balances: {BTC: 1, USDT: 100000}}"""
    engine_config = write_config(tmp_path / "engine.yml", f"""
moonship:
  engine: {{name: e1}}
  redis: {{url: "{redis_url}"}}{market}
  strategies:
    idle: {{algo: log_market_info, markets: [btc]}}
""")
    api_config = write_config(tmp_path / "api.yml", f"""
moonship:
  redis: {{url: "{redis_url}"}}
  api:
    host: 127.0.0.1
    port: $PORT
    user: {USER}
    password: "{PASSWORD_HASH}"
    ssl_cert: {certs.cert}
    ssl_key: {certs.key}
    idle_session_expiry: 30
""")
    port = free_port()
    engine = moonship("run", "-e", "-c", str(engine_config))
    api = moonship("run", "-a", "-c", str(api_config), env={"PORT": str(port)})
    try:
        api.wait_for(f"API listening on https://127.0.0.1:{port}")
        engine.wait_for("engine e1 started")
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=certs.client_context()) as client:
            reply = client.post("/login", json={"user": USER, "password": PASSWORD})
            assert reply.status_code == 200
            token = reply.json()["session_token"]
            client.headers["Authorization"] = f"Bearer {token}"
            reply = client.post("/strategies/e1/idle/start")
            assert reply.status_code == 200 and reply.json()["active"] is True
            reply = client.get("/strategies", params={"engine": "e1", "active": "true"})
            # the engine publishes within 0.25 s
            assert [s["name"] for s in reply.json()["strategies"]] in ([], ["idle"])
            assert client.post("/strategies/e1/idle/stop").json()["active"] is False
            assert client.post("/strategies/e9/idle/stop").json() == {
                "error": "Engine 'e9' is not running", "status": 404,
            }
        assert api.stop(signal.SIGTERM) == 0
        assert "API stopped" in api.output
        for secret in (PASSWORD, PASSWORD_HASH, token):
            assert secret not in api.output
        assert engine.stop(signal.SIGINT) == 0
    finally:
        api.kill()
        engine.kill()
