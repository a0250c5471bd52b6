"""Moonship plugin entry point: registers the `binance` market client (imported when a market uses it)."""

from __future__ import annotations

from moonship_core import hookimpl

#: `moonship init --exchange binance`: paper trading over the live market, keys for live trading
TEMPLATE = """\
markets:
  btc:
    # Paper trading over Binance's live market data: orders are simulated against the live book, none is
    # sent to Binance; no keys needed.
    client: paper
    real_client: binance
    symbol: BTCUSDT
    balances: {BTC: 0.1, USDT: 10000}  # the paper account's start balances
    fee_rate: 0.001                   # taker fee rate
    maker_fee_rate: 0.001
# Live trading: in the market above set client: binance and delete real_client, balances and the fee
# rates; export BINANCE_API_KEY and BINANCE_API_SECRET; uncomment:
# binance:
#   api_key: $BINANCE_API_KEY         # read from the environment
#   api_secret: $BINANCE_API_SECRET
#   testnet: true                   # Binance's spot testnet (keys from testnet.binance.vision)
"""


@hookimpl
def moonship_market_clients() -> dict[str, str]:
    return {"binance": "moonship_binance.client:BinanceClient"}


@hookimpl
def moonship_config_templates() -> dict[str, str]:
    return {"binance": TEMPLATE}
