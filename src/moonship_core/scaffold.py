"""`moonship init`: a commented starter config composed from the templates the installed plugins contribute
(hook `moonship_config_templates`); `moonship new-algo`: an installable algo plugin project."""

from __future__ import annotations

import keyword
import re
import string
import textwrap
from importlib import metadata
from pathlib import Path

from .config import ROOT, load_yaml, parse_config
from .errors import ConfigError
from .plugins import KNOWN_PROVIDERS, Plugins, install_command

#: the template of the offline market, and of the starter strategies (core templates)
SIM_TEMPLATE = "sim"
STRATEGIES_TEMPLATE = "strategies"
TEMPLATES = "config_templates"

HEADER = """\
# Moonship starter config, written by `{command}` (moonship-core {version}).
#
#   moonship config check     validate it (every problem at once, with its property path)
#   moonship run              run it (Ctrl-C or SIGTERM stops it cleanly)
#
# {what}
# A string value `$NAME` is read from environment variable NAME. Every property is described in the README
# of moonship-core and of each plugin (their pages on PyPI).
{root}:
  engine:
    name: paper                       # this engine's name (unique among running engines)
    summary_interval: 60              # seconds between each strategy's summary line (position, P/L, ...)
"""

FOOTER = """\
  # logging:                          # more detail from one strategy, or less from all:
  #   loggers:
  #     moonship.strategy.quoter: {level: DEBUG}
"""


def starter_config(plugins: Plugins, exchange: str | None = None, command: str = "moonship init") -> str:
    """The starter config: paper trading over the `sim` market, or over `exchange`'s live data."""
    templates: dict[str, str] = {k: v for k, v in plugins.registries.get(TEMPLATES, {}).items()}
    venue = exchange or SIM_TEMPLATE
    if venue not in templates:
        venues = ", ".join(sorted(n for n in templates if n in plugins.names("market_clients"))) or "none"
        distribution = KNOWN_PROVIDERS.get("market_clients", {}).get(venue)
        if distribution is not None and venue not in plugins.names("market_clients"):
            raise ConfigError(
                f"--exchange {venue}: it needs the {distribution} plugin ({install_command(distribution)}); "
                f"installed: {venues}"
            )
        raise ConfigError(f"--exchange {venue}: no installed plugin has a starter config for it; "
                          f"installed: {venues}")
    if STRATEGIES_TEMPLATE not in templates:
        raise ConfigError("no installed plugin has the starter strategies (moonship-core's builtin plugin)")
    market = templates[venue]
    try:
        markets = load_yaml(market)["markets"]
        name = next(iter(markets))
    except Exception as exc:
        raise ConfigError(f"the {venue!r} starter template defines no market: {exc}") from None
    if venue == SIM_TEMPLATE:
        what = "Paper trading over the offline `sim` market: no network, no keys, nothing real is traded."
    else:
        what = f"Paper trading over {venue}'s live market data (no keys needed): no order reaches it."
    text = (
        HEADER.format(command=command, version=_version(), what=what, root=ROOT)
        + textwrap.indent(market, "  ")
        + textwrap.indent(templates[STRATEGIES_TEMPLATE].replace("{market}", str(name)), "  ")
        + FOOTER
    )
    try:
        parse_config(load_yaml(text), substitute_env=False)
    except Exception as exc:  # a plugin's template that does not parse is that plugin's bug: say whose
        raise ConfigError(f"the starter config from the {venue!r} template is invalid: {exc}") from None
    return text


def write_starter_config(path: Path, text: str, *, force: bool) -> None:
    """Write `text` to `path`, never over an existing file unless `force`."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists: not overwritten (--force overwrites it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _version() -> str:
    try:
        return metadata.version("moonship-core")
    except metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------- new-algo

#: `moonship new-algo NAME`: the files of an installable algo plugin project, `${name}` (the algo's and the
#: package's name), `${Name}` (its class) and `${dist}` (the distribution) filled in. The README's plugin
#: guide shows these files for `dipper` (tests/core/test_new_algo.py keeps the two the same).
ALGO_PROJECT: dict[str, str] = {
    "pyproject.toml": """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "${dist}"
version = "0.1.0"
description = "The ${name} trading algorithm for Moonship"
requires-python = ">=3.11"
dependencies = ["moonship-core>=2,<3", "pydantic>=2.7"]

[project.optional-dependencies]
test = ["pytest>=8"]

# how Moonship finds the algo: the module with the @hookimpl, in entry point group `moonship`
[project.entry-points.moonship]
${name} = "${name}.plugin"

[tool.setuptools.packages.find]
where = ["src"]
""",
    "src/${name}/__init__.py": '''\
"""The ${name} trading algorithm for Moonship."""
''',
    "src/${name}/plugin.py": '''\
"""Registers the algo with Moonship (by reference: imported only when a strategy uses it)."""

from moonship_core import hookimpl


@hookimpl
def moonship_algos() -> dict[str, str]:
    return {"${name}": "${name}.algo:${Name}"}
''',
    "src/${name}/algo.py": '''\
"""${name}: rests a post-only bid `offset_bps` below the best bid, up to `max_position`."""

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from moonship_core import MarketStatus, Order, OrderRequest, Side, StrategyMarket, TradingAlgo


class ${Name}Settings(BaseModel):
    """The strategy's own properties (beside algo, auto_start and markets)."""

    model_config = ConfigDict(extra="forbid")  # a misspelled property is a config error, not ignored

    #: base quantity per order
    size: Decimal = Field(gt=0)
    #: how far below the best bid to bid, in basis points
    offset_bps: Decimal = Field(default=Decimal(5), ge=0)
    #: stop bidding at this long position
    max_position: Decimal = Field(default=Decimal(1), gt=0)


class ${Name}(TradingAlgo):
    settings_model = ${Name}Settings
    settings: ${Name}Settings

    async def on_order_book(self, market: StrategyMarket) -> None:
        bid = market.book.best_bid
        if bid is None or market.status is not MarketStatus.OPEN or market.open_orders:
            return
        if market.position.quantity >= self.settings.max_position:
            return
        price = bid * (1 - self.settings.offset_bps / 10000)
        await market.place_order(OrderRequest.limit(Side.BUY, self.settings.size, price, post_only=True))

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        if order.fills:
            self.publish(last_fill_price=order.fills[-1].price)

    async def on_stop(self) -> None:
        for order in list(self.market.open_orders):
            await self.market.cancel_order(order)
''',
    "tests/test_${name}.py": '''\
"""The algo on a real engine: paper trading over Moonship's offline sim market."""

import asyncio

import pytest

from moonship_core import ConfigError, MoonshipConfig, Plugins, TradingEngine

CONFIG = {
    "markets": {"btc": {"client": "paper", "real_client": "sim", "symbol": "BTCUSDT",
                        "balances": {"USDT": 100000}, "events_per_second": 50}},
    "strategies": {"${name}": {"algo": "${name}", "auto_start": True, "markets": ["btc"], "size": "0.001"}},
}


def test_the_plugin_is_installed() -> None:
    assert "${name}" in Plugins.load().names("algos")


def test_it_bids_on_paper() -> None:
    async def main() -> None:
        engine = TradingEngine.embedded(MoonshipConfig.model_validate(CONFIG))
        await engine.start()
        try:
            for _ in range(500):
                if engine.strategies["${name}"].info()["open_orders"]:
                    break
                await asyncio.sleep(0.01)
            assert engine.strategies["${name}"].info()["open_orders"] == 1
        finally:
            await engine.stop()

    asyncio.run(main())


def test_unknown_settings_are_refused() -> None:
    strategy = {**CONFIG["strategies"]["${name}"], "sise": "1"}
    with pytest.raises(ConfigError, match="sise: unknown property; did you mean size?"):
        TradingEngine.embedded(MoonshipConfig.model_validate({**CONFIG, "strategies": {"${name}": strategy}}))
''',
    "config.yml": """\
# Paper trading with ${name} over the offline sim market:  moonship run -c config.yml
moonship:
  markets:
    btc:
      client: paper
      real_client: sim
      symbol: BTCUSDT
      balances: {USDT: 100000}
  strategies:
    ${name}:
      algo: ${name}
      auto_start: true
      markets: [btc]
      size: 0.001
      offset_bps: 5
""",
    "README.md": """\
# ${dist}

The `${name}` trading algorithm for [Moonship](https://pypi.org/project/moonship-core/).

```bash
pip install -e '.[test]'      # or: pip install .
pytest                        # the algo on a real engine over the offline sim market
moonship run -c config.yml    # paper trading, no network, no keys
```

Use it in any Moonship config as `algo: ${name}`; its properties are `${Name}Settings` in
`src/${name}/algo.py` (an unknown property is a config error).
""",
}

#: what NAME may be: a Python package name that is also the algo's registry name
ALGO_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def algo_project(name: str) -> dict[str, str]:
    """The files (relative path -> text) of the algo plugin project `name`."""
    if not ALGO_NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(
            f"{name!r} is not a usable algo name: lower-case letters, digits and _, starting with a letter"
        )
    title = "".join(part.title() for part in name.split("_") if part)
    fields = {"name": name, "Name": title, "dist": name.replace("_", "-")}
    return {
        string.Template(path).substitute(fields): string.Template(text).substitute(fields)
        for path, text in ALGO_PROJECT.items()
    }


def write_algo_project(name: str, directory: Path) -> Path:
    """Write the project `name` into `directory`/`name` (which must not exist); returns its path."""
    files = algo_project(name)
    root = directory / name
    if root.exists():
        raise FileExistsError(f"{root} exists: not overwritten")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
