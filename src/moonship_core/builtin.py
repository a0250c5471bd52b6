"""The plugins moonship-core ships: paper and sim clients, the engine service, memory and Redis backends."""

from __future__ import annotations

from typing import Any

from .bus import MemoryBus, MessageBus, RedisBus
from .cache import MemoryCache, RedisCache, SharedCache
from .client import MarketClient
from .config import MoonshipConfig
from .engine import TradingEngine
from .hookspecs import hookimpl
from .paper import PaperClient
from .service import Service
from .sim import SimClient


def memory_backend(config: MoonshipConfig) -> tuple[SharedCache, MessageBus]:
    """Cache and bus within this process."""
    return MemoryCache(), MemoryBus()


def redis_backend(config: MoonshipConfig) -> tuple[SharedCache, MessageBus]:
    """Cache and bus on the Redis server at `moonship.redis.url`."""
    url = config.redis.url
    assert url is not None
    verify = config.redis.ssl_verify_cert
    return RedisCache(url, verify_cert=verify), RedisBus(url, verify_cert=verify)


@hookimpl
def moonship_market_clients() -> dict[str, type[MarketClient]]:
    return {"paper": PaperClient, "sim": SimClient}


@hookimpl
def moonship_services() -> dict[str, type[Service]]:
    return {"engine": TradingEngine}


@hookimpl
def moonship_backends() -> dict[str, Any]:
    return {"memory": memory_backend, "redis": redis_backend, "rediss": redis_backend, "unix": redis_backend}
