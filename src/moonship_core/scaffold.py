"""`moonship init`: a commented starter config composed from the templates the installed plugins contribute
(hook `moonship_config_templates`)."""

from __future__ import annotations

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
