"""Entry point module: registers this distribution's algos with Moonship (imported lazily, by reference)."""

from __future__ import annotations

from moonship_core import hookimpl


@hookimpl
def moonship_algos() -> dict[str, str]:
    return {"price_alert": "moonship_example_algos.price_alert:PriceAlert"}
