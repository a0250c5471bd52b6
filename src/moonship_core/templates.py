"""The starter-config templates moonship-core contributes to `moonship init` (see `scaffold.py`)."""

from __future__ import annotations

#: the offline market: paper trading over the seeded synthetic `sim` market (no network, no keys)
SIM = """\
markets:
  btc:
    # Paper trading: orders are simulated against this market's book (fills, fees, balances); nothing is
    # sent anywhere. The market data comes from the offline simulator: no network, no keys.
    client: paper
    real_client: sim
    symbol: BTCUSDT
    balances: {BTC: 1, USDT: 100000}  # the paper account's start balances
    fee_rate: 0.001                   # taker fee rate
    maker_fee_rate: 0.0002
    # the simulator: a random walk from start_price, reproducible by seed
    start_price: 30000
    events_per_second: 20
    volatility_bps: 0.5
    seed: 7
    # To use an exchange's live data instead: pip install moonship-valr (or -binance, -luno), then
    #   moonship init --exchange valr --force
"""

#: the starter strategies over the market `{market}` (replaced by init)
STRATEGIES = """\
strategies:
  quoter:
    # a market maker: one post-only bid and one ask around the mid, replaced as the mid moves
    algo: spread_quoter
    auto_start: true
    markets: [{market}]
    trade_quantity: 0.001             # base asset per order
    spread_bps: 2                     # bid-to-ask distance, in basis points of the mid
    max_position: 0.01                # no bid above this long position, no ask below minus this
    # max_drawdown: 100               # quote currency: stop when P/L falls this far below its peak
  info:
    # logs the book top, spread and last trade at INFO every `interval` seconds; places no orders
    algo: log_market_info
    auto_start: true
    markets: [{market}]
    interval: 10
"""


def templates() -> dict[str, str]:
    return {"sim": SIM, "strategies": STRATEGIES}
