"""A recorder for record-and-replay tests: each input as recorded, and the live book just before it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..book import OrderBook
from ..contracts.recording import Recorder
from ..model import Side


def book_state(book: OrderBook) -> tuple[Any, ...]:
    """What a replayed book must equal: its sequence and every level of both sides."""
    return book.sequence, book.depth(Side.BUY, 1000), book.depth(Side.SELL, 1000)


class BookTap:
    """A Recorder keeping every input (kind, data, receive_ns) and `book_state` of the live book just before
    it; it passes each input on to `inner` when given (a real recording)."""

    def __init__(self, book: Callable[[], OrderBook], inner: Recorder | None = None) -> None:
        self.book = book
        self.inner = inner
        self.inputs: list[tuple[str, str, int]] = []
        self.books: list[tuple[Any, ...]] = []

    def record(self, kind: str, data: str, receive_ns: int) -> None:
        self.books.append(book_state(self.book()))
        self.inputs.append((kind, data, receive_ns))
        if self.inner is not None:
            self.inner.record(kind, data, receive_ns)
