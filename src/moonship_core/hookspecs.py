"""The hooks a Moonship plugin implements (pluggy project "moonship").

A plugin is a module named by an entry point in group `moonship`; it defines some of these functions,
decorated with `@hookimpl`. Each returns a dict; the results of all plugins are merged by name into the
registry named by the hook (`moonship_algos` fills "algos"). A value may
be the class itself or a `"package.module:Class"` reference, imported only when something uses it (so an
engine does not pay for the web server of an API it does not run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from .contracts.algo import TradingAlgo
from .contracts.client import MarketClient
from .contracts.service import Service
from .contracts.stores import Stores

PROJECT = "moonship"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def moonship_market_clients() -> dict[str, type[MarketClient] | str]:  # type: ignore[empty-body]
    """Market client classes by name, e.g. `{"binance": BinanceClient}` (`markets.NAME.client`)."""


@hookspec
def moonship_algos() -> dict[str, type[TradingAlgo] | str]:  # type: ignore[empty-body]
    """TradingAlgo subclasses by name (`strategies.NAME.algo`)."""


@hookspec
def moonship_services() -> dict[str, type[Service] | str]:  # type: ignore[empty-body]
    """Service classes run beside or instead of the engine, e.g. `{"api": ApiService}`."""


@hookspec
def moonship_backends() -> dict[str, Callable[[Any], Stores] | str]:  # type: ignore[empty-body]
    """Store factories (config -> Stores) by `moonship.redis.url` scheme, e.g. `{"redis": ...}`."""


@hookspec
def moonship_config_templates() -> dict[str, str]:  # type: ignore[empty-body]
    """Commented starter-config fragments for `moonship init`, by name. A venue's template is named after
    its market client (`moonship init --exchange valr`): YAML at the level of the `moonship:` root's
    children (init indents it), defining one market under `markets:` that paper-trades the venue's live
    data without keys, with the live-trading settings (keys as `$VENUE_API_KEY` references) commented out.
    The core contributes `sim` (the offline market) and `strategies` (the starter strategies)."""
