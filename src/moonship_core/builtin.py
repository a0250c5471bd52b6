"""The plugins moonship-core ships: paper and sim clients, the engine service, memory and Redis backends, and
the reference algorithms (log_market_info, spread_quoter)."""

from __future__ import annotations

from typing import Any

from .contracts.client import MarketClient
from .contracts.service import Service
from .hookspecs import hookimpl
from .sim.paper import PaperClient
from .sim.synthetic import SimClient
from .stores.memory import memory_backend
from .templates import templates
from .trading.engine import TradingEngine


@hookimpl
def moonship_market_clients() -> dict[str, type[MarketClient]]:
    return {"paper": PaperClient, "sim": SimClient}


@hookimpl
def moonship_algos() -> dict[str, str]:
    # by reference: imported only by an engine whose strategies use them
    return {
        "log_market_info": "moonship_core.algos.log_market_info:LogMarketInfo",
        "spread_quoter": "moonship_core.algos.spread_quoter:SpreadQuoter",
    }


@hookimpl
def moonship_services() -> dict[str, type[Service]]:
    return {"engine": TradingEngine}


@hookimpl
def moonship_backends() -> dict[str, Any]:
    redis = "moonship_core.stores.redis:redis_backend"  # redis-py is imported only by those who use it
    return {"memory": memory_backend, "redis": redis, "rediss": redis, "unix": redis}


@hookimpl
def moonship_config_templates() -> dict[str, str]:
    return templates()
