"""The fault switches every simulator honours, under one set of names (a venue's Faults adds its own)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Switches a test flips; each counter is used up, one per request it affects (`take`)."""

    #: the next N requests are answered 429 before anything is done (with Retry-After: `retry_after`, if set)
    rate_limited: int = 0
    #: the next N order placements alone are answered so (the client's other requests go through)
    orders_rate_limited: int = 0
    #: the Retry-After header of those 429s, as sent (seconds or an HTTP-date)
    retry_after: str | None = None
    #: the next N order placements execute, then answer a 5xx: the outcome is unknown to the client
    fail_after_execute: int = 0
    #: websocket upgrades are refused
    refuse_connections: bool = False

    def take(self, counter: str) -> bool:
        """Use up one of `counter` (a field name): whether there was one left."""
        left: int = getattr(self, counter)
        if left <= 0:
            return False
        setattr(self, counter, left - 1)
        return True
