"""Registers the `valr` market client (imported only when a market uses it)."""

from __future__ import annotations

from moonship_core import hookimpl

#: `moonship init --exchange valr`: paper trading over the live market, keys for live trading
TEMPLATE = """\
markets:
  btc:
    # Paper trading over VALR's live market data: orders are simulated against the live book, none is
    # sent to VALR; no keys needed.
    client: paper
    real_client: valr
    symbol: BTCZAR
    balances: {BTC: 0.1, ZAR: 200000}  # the paper account's start balances
    fee_rate: 0.001                   # taker fee rate
    maker_fee_rate: 0
# Live trading: in the market above set client: valr and delete real_client, balances and the fee
# rates; export VALR_API_KEY and VALR_API_SECRET; uncomment:
# valr:
#   api_key: $VALR_API_KEY         # read from the environment
#   api_secret: $VALR_API_SECRET
"""


@hookimpl
def moonship_market_clients() -> dict[str, str]:
    return {"valr": "moonship_valr.client:ValrClient"}


@hookimpl
def moonship_config_templates() -> dict[str, str]:
    return {"valr": TEMPLATE}
