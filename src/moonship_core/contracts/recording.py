"""Recording and replay contracts: what a venue client records of its raw input, and the parser that feeds a
recording back through the venue's own parsing and book code."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

#: the kind of a websocket frame as received (a venue may name its REST inputs as it likes, e.g. "rest:depth")
FRAME = "ws"


class Recorder(Protocol):
    """Where a client records its raw market input, as received: REST bodies (a book snapshot) and every
    websocket frame, each with its kind and its receive time (the clock's `epoch_ns()`). It never blocks."""

    def record(self, kind: str, data: str, receive_ns: int) -> None: ...


class FrameParser(ABC):
    """One market's recorded input applied to its `MarketEvents` with the venue's own parsing and book code
    (built by `MarketClient.replay_parser`): the same book, trades and status the live client produced."""

    @abstractmethod
    def feed(self, kind: str, data: str) -> None:
        """Apply one recorded input (`kind` as the client recorded it)."""
