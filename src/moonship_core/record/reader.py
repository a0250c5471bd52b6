"""Reading a recording: its manifest and each market's inputs in receive order."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from ..errors import ConfigError
from ..model import MarketInfo
from .writer import MANIFEST

#: one recorded input: (receive time in epoch ns, kind, data)
Input = tuple[int, str, str]
#: bytes read from a recording file at a time
_READ_SIZE = 1 << 16


@dataclass(frozen=True)
class RecordedMarket:
    name: str
    venue: str
    symbol: str
    info: MarketInfo | None
    files: tuple[Path, ...]
    frames: int
    first_ns: int | None
    last_ns: int | None

    def inputs(self) -> Iterator[Input]:
        """Every input in the order recorded; a file cut short (the recorder was killed) ends early."""
        for path in self.files:
            if not path.exists():
                continue
            # lines split by io's C reader over large reads: GzipFile's own readline costs ~2 us a line
            with io.BufferedReader(gzip.GzipFile(path, "rb"), _READ_SIZE) as file:
                try:
                    for line in file:
                        if line.endswith(b"\n"):
                            ns, kind, data = orjson.loads(line)
                            yield ns, kind, data
                except (EOFError, gzip.BadGzipFile, zlib.error):
                    continue


class Recording:
    """A recording directory (see writer.py)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        path = directory / MANIFEST
        try:
            self.manifest: dict[str, Any] = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"{directory} is not a recording: it has no {MANIFEST}") from None
        self.markets = {
            name: RecordedMarket(
                name, entry["venue"], entry["symbol"], _info(entry.get("info")),
                tuple(directory / f for f in sorted(entry["files"])), int(entry["frames"]),
                entry.get("first_ns"), entry.get("last_ns"),
            )
            for name, entry in self.manifest["markets"].items()
        }


def _info(data: dict[str, str] | None) -> MarketInfo | None:
    if data is None:
        return None
    return MarketInfo(
        data["symbol"], data["base_asset"], data["quote_asset"], Decimal(data["tick_size"]),
        Decimal(data["lot_size"]), Decimal(data["min_quantity"]), Decimal(data["min_notional"]),
    )
