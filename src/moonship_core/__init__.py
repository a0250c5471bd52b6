"""Moonship core: everything a plugin may import is re-exported here."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .algo import NoSettings, StrategyMarket, TradingAlgo
from .book import OrderBook
from .bus import MemoryBus, MessageBus
from .cache import MemoryCache, SharedCache
from .cache import dumps as json_dumps
from .cache import loads as json_loads
from .client import ClientContext, MarketClient, MarketEvents
from .config import MarketConfig, MoonshipConfig, StrategyConfig, format_errors, validate_model
from .control import ControlPlane
from .errors import (
    AuthenticationError,
    BookGap,
    CommandTimeout,
    ConfigError,
    ControlError,
    EngineUnavailable,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    MoonshipError,
    NetworkError,
    OrderNotFound,
    OrderStatusUnknown,
    PluginError,
    PostOnlyRejected,
    RateLimited,
    RequestTimeout,
)
from .hookspecs import hookimpl
from .model import (
    Balance,
    Candle,
    CandlePeriod,
    Fill,
    MarketInfo,
    MarketStatus,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Ticker,
    TimeInForce,
    Trade,
    fmt_decimal,
    utc_now,
)
from .net import Backoff, RateLimiter
from .orderlevel import LevelOrder, OrderLevelBook
from .plugins import Plugins
from .service import Service, ServiceContext
from .strategy import Position, Strategy

try:
    __version__ = version("moonship-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AuthenticationError",
    "Backoff",
    "Balance",
    "BookGap",
    "Candle",
    "CandlePeriod",
    "ClientContext",
    "CommandTimeout",
    "ConfigError",
    "ControlError",
    "ControlPlane",
    "EngineUnavailable",
    "ExchangeError",
    "Fill",
    "InsufficientFunds",
    "InvalidOrder",
    "LevelOrder",
    "MarketClient",
    "MarketClosed",
    "MarketConfig",
    "MarketEvents",
    "MarketInfo",
    "MarketStatus",
    "MemoryBus",
    "MemoryCache",
    "MessageBus",
    "MoonshipConfig",
    "MoonshipError",
    "NetworkError",
    "NoSettings",
    "Order",
    "OrderBook",
    "OrderLevelBook",
    "OrderNotFound",
    "OrderRequest",
    "OrderStatus",
    "OrderStatusUnknown",
    "OrderType",
    "PluginError",
    "Plugins",
    "Position",
    "PostOnlyRejected",
    "RateLimited",
    "RateLimiter",
    "RequestTimeout",
    "Service",
    "ServiceContext",
    "SharedCache",
    "Side",
    "Strategy",
    "StrategyConfig",
    "StrategyMarket",
    "Ticker",
    "TimeInForce",
    "Trade",
    "TradingAlgo",
    "__version__",
    "fmt_decimal",
    "format_errors",
    "hookimpl",
    "json_dumps",
    "json_loads",
    "utc_now",
    "validate_model",
]
