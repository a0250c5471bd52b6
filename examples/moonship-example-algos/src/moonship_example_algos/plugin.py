"""Entry point module: registers the example algos with Moonship (imported lazily, by reference)."""

from __future__ import annotations

from moonship_core import hookimpl


@hookimpl
def moonship_algos() -> dict[str, str]:
    return {
        "log_market_info": "moonship_example_algos.log_market_info:LogMarketInfo",
        "spread_quoter": "moonship_example_algos.spread_quoter:SpreadQuoter",
    }
