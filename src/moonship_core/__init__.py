"""Moonship core: everything a plugin may import is re-exported here."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .backoff import Backoff
from .book import OrderBook
from .clock import Clock, LiveClock, SimClock
from .codec import json_dumps, json_loads
from .config import MarketConfig, MoonshipConfig, StrategyConfig, format_errors, validate_model
from .contracts.algo import AlgoContext, NoSettings, PositionView, StrategyMarket, TradingAlgo
from .contracts.client import ClientContext, Features, MarketClient, MarketEvents, Sessions, VenueCounters
from .contracts.recording import FRAME, FrameParser, Recorder
from .contracts.service import Registry, Service, ServiceContext
from .contracts.stores import FIRED_ALERTS_KEY, MessageBus, SharedCache, Stores
from .control import ControlPlane
from .errors import (
    AuthenticationError,
    BookGap,
    CommandTimeout,
    ConfigError,
    ControlError,
    DuplicateClientOrderId,
    EngineUnavailable,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    MarketClosed,
    MoonshipError,
    NetworkError,
    NotSupported,
    OrderNotFound,
    OrderStatusUnknown,
    PostOnlyRejected,
    RateLimited,
    RequestTimeout,
    RiskDenied,
)
from .hookspecs import hookimpl, hookspec
from .limits import (
    MAX_DEPTH,
    STRATEGY_NAME_PATTERN,
    STRATEGY_NAME_RULE,
    printable,
    too_deep,
    valid_strategy_name,
)
from .listener import bind_listener
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import EngineMetrics
from .metrics import render as render_metrics
from .model import (
    ZERO,
    Balance,
    Candle,
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
    from_ms,
    round_to_step,
    utc_now,
)
from .orderlevel import LevelOrder, OrderLevelBook
from .plugins import Plugins
from .stores.memory import MemoryBus, MemoryCache
from .trading.engine import TradingEngine
from .venues.errors import ErrorRule, ErrorTable
from .venues.ratelimit import Ban, Pool, RateLimits, RateTable, parse_retry_after
from .venues.servertime import ServerClock
from .venues.settings import VenueSettings

if TYPE_CHECKING:
    from .venues.picows_transport import PicowsTransport
    from .venues.session import VenueSession
    from .venues.transport import Connection, Transport, UpgradeRefused
    from .venues.websocket import ReconnectingWebSocket, SilenceProbe, SilenceWatch, default_transport
    from .venues.websockets_transport import WebsocketsTransport

#: names imported on first use: their modules pull in httpx, picows and websockets, which an engine without a
#: venue client (paper over the simulator) never needs
_LAZY = {
    "VenueSession": ".venues.session",
    **dict.fromkeys(["Connection", "Transport", "UpgradeRefused"], ".venues.transport"),
    **dict.fromkeys(
        ["ReconnectingWebSocket", "SilenceProbe", "SilenceWatch", "default_transport"], ".venues.websocket"
    ),
    "PicowsTransport": ".venues.picows_transport",
    "WebsocketsTransport": ".venues.websockets_transport",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(import_module(module, __name__), name)
    return value


try:
    __version__ = version("moonship-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "FIRED_ALERTS_KEY",
    "FRAME",
    "MAX_DEPTH",
    "METRICS_CONTENT_TYPE",
    "STRATEGY_NAME_PATTERN",
    "STRATEGY_NAME_RULE",
    "ZERO",
    "AlgoContext",
    "AuthenticationError",
    "Backoff",
    "Balance",
    "Ban",
    "BookGap",
    "Candle",
    "ClientContext",
    "Clock",
    "CommandTimeout",
    "ConfigError",
    "Connection",
    "ControlError",
    "ControlPlane",
    "DuplicateClientOrderId",
    "EngineMetrics",
    "EngineUnavailable",
    "ErrorRule",
    "ErrorTable",
    "ExchangeError",
    "Features",
    "Fill",
    "FrameParser",
    "InsufficientFunds",
    "InvalidOrder",
    "LevelOrder",
    "LiveClock",
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
    "NotSupported",
    "Order",
    "OrderBook",
    "OrderLevelBook",
    "OrderNotFound",
    "OrderRequest",
    "OrderStatus",
    "OrderStatusUnknown",
    "OrderType",
    "PicowsTransport",
    "Plugins",
    "Pool",
    "PositionView",
    "PostOnlyRejected",
    "RateLimited",
    "RateLimits",
    "RateTable",
    "ReconnectingWebSocket",
    "Recorder",
    "Registry",
    "RequestTimeout",
    "RiskDenied",
    "ServerClock",
    "Service",
    "ServiceContext",
    "Sessions",
    "SharedCache",
    "Side",
    "SilenceProbe",
    "SilenceWatch",
    "SimClock",
    "Stores",
    "StrategyConfig",
    "StrategyMarket",
    "Ticker",
    "TimeInForce",
    "Trade",
    "TradingAlgo",
    "TradingEngine",
    "Transport",
    "UpgradeRefused",
    "VenueCounters",
    "VenueSession",
    "VenueSettings",
    "WebsocketsTransport",
    "__version__",
    "bind_listener",
    "default_transport",
    "fmt_decimal",
    "format_errors",
    "from_ms",
    "hookimpl",
    "hookspec",
    "json_dumps",
    "json_loads",
    "parse_retry_after",
    "printable",
    "render_metrics",
    "round_to_step",
    "too_deep",
    "utc_now",
    "valid_strategy_name",
    "validate_model",
]
