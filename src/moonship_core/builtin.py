"""The plugins moonship-core ships: paper and sim clients, the engine service, memory and Redis backends."""

from __future__ import annotations

from typing import Any

from .bus import MemoryBus, MessageBus
from .cache import MemoryCache, SharedCache
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


@hookimpl
def moonship_market_clients() -> dict[str, type[MarketClient]]:
    return {"paper": PaperClient, "sim": SimClient}


@hookimpl
def moonship_services() -> dict[str, type[Service]]:
    return {"engine": TradingEngine}


@hookimpl
def moonship_backends() -> dict[str, Any]:
    redis = "moonship_core.redis_store:redis_backend"  # redis-py is imported only by those who use it
    return {"memory": memory_backend, "redis": redis, "rediss": redis, "unix": redis}
