"""Entry point module: registers the example algos with Moonship."""

from __future__ import annotations

from moonship_core import TradingAlgo, hookimpl

from .log_market_info import LogMarketInfo
from .spread_quoter import SpreadQuoter


@hookimpl
def moonship_algos() -> dict[str, type[TradingAlgo]]:
    return {"log_market_info": LogMarketInfo, "spread_quoter": SpreadQuoter}
