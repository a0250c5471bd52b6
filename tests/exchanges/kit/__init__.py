"""What the venue simulators share: fault switches, the connection writer, a price-time book (their uvicorn
hosting is the test kit's AsgiServer)."""

from .book import BookSide
from .connection import Connection
from .faults import Faults

__all__ = ["BookSide", "Connection", "Faults"]
