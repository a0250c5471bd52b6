"""A real API server (uvicorn over HTTPS with a test CA) in front of real in-process trading engines.

The servers run on an event loop in a background thread; tests drive them with httpx from the main thread.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import bcrypt
import httpx
from moonship_api.service import ApiService
from pydantic import BaseModel, ConfigDict

from moonship_core import (
    ControlPlane,
    MemoryBus,
    MemoryCache,
    MessageBus,
    SharedCache,
    Stores,
    StrategyMarket,
    TradingAlgo,
    hookimpl,
)
from moonship_core.config import parse_config
from moonship_core.contracts.service import ServiceContext
from moonship_core.plugins import Plugins
from moonship_core.trading.engine import TradingEngine

T = TypeVar("T")

USER = "trader"
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()

MARKET = {
    "client": "paper", "real_client": "sim", "symbol": "BTCUSDT", "events_per_second": 5,
    "balances": {"BTC": 1, "USDT": 100000},
}
MAIN_STRATEGIES: dict[str, dict[str, Any]] = {
    "alpha": {"algo": "marker", "auto_start": True, "markets": ["btc"], "label": "a"},
    "beta": {"algo": "marker", "markets": ["btc"], "size": "0.5"},
}
OTHER_STRATEGIES: dict[str, dict[str, Any]] = {
    "gamma": {"algo": "marker", "auto_start": True, "markets": ["btc"], "label": "g"},
}


class MarkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = "none"
    size: Decimal = Decimal("1")


class Marker(TradingAlgo):
    """Publishes its label when started; otherwise idle."""

    settings_model = MarkerSettings
    settings: MarkerSettings

    async def on_start(self) -> None:
        self.publish(label=self.settings.label)

    async def on_order_book(self, market: StrategyMarket) -> None:
        pass


class AlgoPlugin:
    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"marker": Marker}


class LoopThread:
    """An asyncio loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class StuckEngine:
    """An engine that receives commands and never answers (until released)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        await self.release.wait()
        return {"id": command["id"], "ok": False, "error": "released", "status": 500}


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@dataclass
class Stack:
    """Engines and one API service sharing a cache and a bus."""

    loop: LoopThread
    certs: Certs
    cache: SharedCache
    bus: MessageBus
    control: ControlPlane
    api: ApiService
    engines: list[TradingEngine] = field(default_factory=list)
    stuck: StuckEngine | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.api.settings.ssl_cert else "http"
        return f"{scheme}://127.0.0.1:{self.api.port}"

    def client(self, token: str | None = None, headers: dict[str, str] | None = None) -> httpx.Client:
        """An httpx client trusting the test CA; with `token`, it sends it as a bearer token."""
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        context = self.certs.client_context()
        return httpx.Client(base_url=self.url, verify=context, headers=headers, timeout=10)

    def login(self, **headers: str) -> str:
        with self.client() as client:
            reply = client.post("/login", json={"user": USER, "password": PASSWORD}, headers=headers)
        assert reply.status_code == 200, reply.text
        token: str = reply.json()["session_token"]
        return token

    def wait_for(self, check: Callable[[], Any], timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            time.sleep(0.05)

    def stop(self) -> None:
        async def stop() -> None:
            await self.api.stop()
            if self.stuck is not None:
                self.stuck.release.set()
            for engine in self.engines:
                await engine.stop()
            await self.bus.close()
            await self.cache.close()

        self.loop.run(stop())


MakeStack = Callable[..., Stack]


def api_settings(certs: Certs | None, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "user": USER, "password": PASSWORD_HASH}
    if certs is not None:
        settings.update(ssl_cert=str(certs.cert), ssl_key=str(certs.key))
    settings.update(overrides)
    return settings


def build_stack(
    loop: LoopThread,
    certs: Certs,
    *,
    settings: dict[str, Any] | None = None,
    engines: dict[str, dict[str, Any]] | None = None,
    stuck: bool = False,
    timeout: float = 2.0,
    backend: Callable[[], Stores] = lambda: Stores(MemoryCache(), MemoryBus()),
) -> Stack:
    """Start `engines` (name -> strategies), optionally an engine "stuck" that never answers, and the API."""
    plugins = Plugins.load(entry_points=False)
    plugins.register(AlgoPlugin(), "test")

    async def start() -> Stack:
        stores = backend()
        cache, bus = stores.cache, stores.bus
        await cache.open()
        await bus.open()
        control = ControlPlane(cache, bus, timeout=timeout)

        def context(config: Any, api: Any = None) -> ServiceContext:
            return ServiceContext(
                config=config, settings=api or {}, sections={}, registry=plugins,
                stores=stores, control=control,
            )

        started = []
        for name, strategies in (engines or {}).items():
            config = parse_config({"moonship": {
                "engine": {"name": name}, "markets": {"btc": MARKET}, "strategies": strategies,
            }})
            engine = TradingEngine(context(config))
            await engine.start()
            started.append(engine)
        blocked = None
        if stuck:
            blocked = StuckEngine()
            await bus.serve("stuck", blocked.handle)
        api = ApiService(context(parse_config({"moonship": {}}), settings or api_settings(certs)))
        await api.start()
        return Stack(loop, certs, cache, bus, control, api, started, blocked)

    return loop.run(start())
