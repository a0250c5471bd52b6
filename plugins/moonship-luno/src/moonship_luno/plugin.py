"""The `luno` market client for Moonship's plugin registry (imported only when a market uses it)."""

from __future__ import annotations

from moonship_core import hookimpl

#: `moonship init --exchange luno`: paper trading over the live market, keys for live trading
TEMPLATE = """\
markets:
  btc:
    # Paper trading over Luno's live market data: orders are simulated against the live book, none is
    # sent to Luno. Luno's streams need an API key even for market data (a read-only key will do): set
    # LUNO_API_KEY and LUNO_API_SECRET in the environment.
    client: paper
    real_client: luno
    symbol: XBTZAR
    balances: {XBT: 0.1, ZAR: 200000}  # the paper account's start balances
    fee_rate: 0.001                   # taker fee rate
    maker_fee_rate: 0
luno:
  api_key: $LUNO_API_KEY            # read from the environment
  api_secret: $LUNO_API_SECRET
"""


@hookimpl
def moonship_market_clients() -> dict[str, str]:
    return {"luno": "moonship_luno.client:LunoClient"}


@hookimpl
def moonship_config_templates() -> dict[str, str]:
    return {"luno": TEMPLATE}
