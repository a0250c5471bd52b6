"""Makes tests/ importable so test modules can use the simulators (`from exchanges.binance import ...`); the
fixtures every folder shares."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def anyio_backend() -> str:
    """The code under test is asyncio code."""
    return "asyncio"
