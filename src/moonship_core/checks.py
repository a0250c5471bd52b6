"""Every validation `moonship run` does before it starts anything, run without starting anything: the
config's own models, the plugin sections, the services asked for, each market's client (built, not opened:
its keys, paper's keys and its real client) and each strategy's algo and settings. `moonship config check`
and `moonship run` both call `check`; all problems are reported at once, each with its property path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from .config import ROOT, MoonshipConfig, section_settings, validate_sections
from .contracts.algo import TradingAlgo
from .contracts.client import ClientContext, MarketClient
from .errors import ConfigError
from .plugins import SERVICE_DISTRIBUTIONS, Plugins, install_command

log = logging.getLogger("moonship.config")


def check(config: MoonshipConfig, plugins: Plugins, services: Iterable[str] = ("engine",)) -> list[str]:
    """Every problem `moonship run` with `services` would find in `config`, as `path: problem` lines."""
    return asyncio.run(_check(config, plugins, list(services)))


async def _check(config: MoonshipConfig, plugins: Plugins, services: list[str]) -> list[str]:
    # built inside a loop, as the engine builds them: a client may make loop-bound objects in __init__
    problems: list[str] = []
    sections = validate_sections(config, plugins.section_models(), problems)
    for name in services:
        if name not in plugins.names("services"):
            distribution = SERVICE_DISTRIBUTIONS.get(name)
            install = f"{distribution} plugin ({install_command(distribution)})" if distribution else ""
            needs = f": it needs the {install}" if install else ""
            problems.append(f"{ROOT}.{name}: the {name!r} service is not installed{needs}")
            continue
        try:
            service_class = plugins.resolve("services", name)
            if name not in sections:  # absent: its required settings are reported missing
                section_settings(sections, name, getattr(service_class, "settings_model", None))
        except ConfigError as exc:
            problems.append(str(exc))
    if "engine" in services:
        problems += await _check_markets(config, plugins, sections)
        problems += _check_strategies(config, plugins)
    return problems


async def _check_markets(config: MoonshipConfig, plugins: Plugins, sections: dict[str, Any]) -> list[str]:
    from .trading.market import Market  # the kernel, imported only by a check that builds markets

    def resolve_client(name: str) -> type[MarketClient]:
        client_class: type[MarketClient] = plugins.resolve("market_clients", name)
        return client_class

    problems: list[str] = []
    shared: dict[str, Any] = {}
    markets: list[Market] = []
    for name, market_config in config.markets.items():
        path = f"{ROOT}.markets.{name}"
        try:
            client_class = resolve_client(market_config.client)
        except ConfigError as exc:
            problems.append(f"{path}.client: {exc}")
            continue
        if not issubclass(client_class, MarketClient):
            problems.append(f"{path}.client: {market_config.client!r} is not a market client")
            continue
        try:  # as the engine builds it: an absent section is its model's defaults
            settings = section_settings(sections, client_class.name, client_class.settings_model)
        except ConfigError as exc:
            if str(exc) not in problems:
                problems.append(str(exc))
            continue
        context = ClientContext(
            market_name=name,
            config=market_config,
            settings=settings,
            resolve_client=resolve_client,
            sections=sections,
            shared=shared,
        )
        try:
            markets.append(Market(name, market_config, client_class, context))
        except ConfigError as exc:
            problems.append(str(exc))
        except Exception as exc:  # a client that fails to build for another reason fails at run too
            problems.append(
                f"{path}: the {market_config.client} client cannot be built: {type(exc).__name__}: {exc}"
            )
    for market in markets:  # never opened: closing releases whatever a constructor made
        try:
            await asyncio.wait_for(market.client.close(), 2)
        except Exception as exc:
            log.debug("closing the unopened client of %s: %s", market.name, exc)
    return problems


def _check_strategies(config: MoonshipConfig, plugins: Plugins) -> list[str]:
    from .trading.strategy import validate_settings

    problems: list[str] = []
    for name, strategy in config.strategies.items():
        try:
            algo_class = plugins.resolve("algos", strategy.algo)
        except ConfigError as exc:
            problems.append(f"{ROOT}.strategies.{name}.algo: {exc}")
            continue
        if not issubclass(algo_class, TradingAlgo):
            problems.append(f"{ROOT}.strategies.{name}.algo: {strategy.algo!r} is not a trading algo")
            continue
        try:
            validate_settings(name, algo_class, strategy.extra)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems
