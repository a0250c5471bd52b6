"""RecordWriter: every market's raw input as received, in `DIR/<market>/<YYYY-MM-DDTHH>.jsonl.gz` (one
`[receive_ns, kind, data]` JSON line per input, a file per UTC hour of receive time) and `DIR/manifest.json`.

Recording costs the event loop one list append per input: batches go to one writer thread (compression and
disk), every FLUSH_INTERVAL seconds or BATCH_LINES lines. A directory recorded into before is added to.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from ..clock import from_epoch_ns
from ..config import MarketConfig
from ..contracts.client import MarketClient
from ..model import MarketInfo, fmt_decimal

MANIFEST = "manifest.json"
FORMAT = 1
FLUSH_INTERVAL = 1.0
BATCH_LINES = 5000
_HOUR_NS = 3_600_000_000_000
logger = logging.getLogger("moonship.record")


def recorded_client(
    config: MarketConfig, client_class: type[MarketClient], resolve: Callable[[str], type[MarketClient]]
) -> type[MarketClient]:
    """The client class whose input a market records: the real client under `paper`, else its own."""
    if client_class.name == "paper":
        return resolve(str(config.extra.get("real_client", "")))
    return client_class


def distribution_of(client_class: type[MarketClient]) -> dict[str, str]:
    """The distribution (name and version) that provides a client class."""
    top = client_class.__module__.split(".")[0]
    names = metadata.packages_distributions().get(top, [])
    name = names[0] if names else top
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"name": name, "version": version}


def info_to_dict(info: MarketInfo) -> dict[str, str]:
    return {
        "symbol": info.symbol, "base_asset": info.base_asset, "quote_asset": info.quote_asset,
        "tick_size": fmt_decimal(info.tick_size), "lot_size": fmt_decimal(info.lot_size),
        "min_quantity": fmt_decimal(info.min_quantity), "min_notional": fmt_decimal(info.min_notional),
    }


class MarketRecorder:
    """The Recorder of one market (see contracts.recording.Recorder)."""

    __slots__ = ("_writer", "base", "count", "entry", "first_ns", "hour", "hours", "last_ns", "lines", "name")

    def __init__(self, writer: RecordWriter, name: str, entry: dict[str, Any]) -> None:
        self._writer = writer
        self.name = name
        self.entry = entry
        self.lines: list[bytes] = []
        self.hour = -1
        self.hours: list[int] = []
        self.base = int(entry["frames"])  # inputs recorded into the directory before
        self.count = 0
        self.first_ns: int | None = None
        self.last_ns = 0

    def record(self, kind: str, data: str, receive_ns: int) -> None:
        hour = receive_ns // _HOUR_NS
        if hour != self.hour:
            self.flush()
            self.hour = hour
            self.hours.append(hour)
        self.lines.append(orjson.dumps([receive_ns, kind, data]))
        self.count += 1
        if self.first_ns is None:
            self.first_ns = receive_ns
        self.last_ns = receive_ns
        if len(self.lines) >= BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            lines, self.lines = self.lines, []
            self._writer.submit(self.name, self.hour, lines)


class RecordWriter:
    """Records the markets of one engine into `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.markets: dict[str, MarketRecorder] = {}
        self._manifest = self._load_manifest()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moonship-record")
        #: market -> (hour, its open file); the writer thread's only
        self._files: dict[str, tuple[int, gzip.GzipFile]] = {}
        self._task: asyncio.Task[None] | None = None
        self._infos: Callable[[], Mapping[str, MarketInfo | None]] = dict
        self._closed = False

    def _load_manifest(self) -> dict[str, Any]:
        path = self.directory / MANIFEST
        if path.exists():
            manifest: dict[str, Any] = orjson.loads(path.read_bytes())
            return manifest
        return {"format": FORMAT, "markets": {}}

    def market(self, name: str, symbol: str, client_class: type[MarketClient]) -> MarketRecorder:
        """The recorder of market `name`, whose input `client_class` produces."""
        entry = self._manifest["markets"].setdefault(name, {"files": [], "frames": 0})
        venue = client_class.name
        if entry.get("symbol", symbol) != symbol or entry.get("venue", venue) != venue:
            raise ValueError(
                f"{self.directory} holds market {name} of {entry['venue']} {entry['symbol']}, not of "
                f"{client_class.name} {symbol}: record into another directory"
            )
        entry.update(venue=client_class.name, symbol=symbol, plugin=distribution_of(client_class))
        recorder = self.markets[name] = MarketRecorder(self, name, entry)
        return recorder

    async def start(self, infos: Callable[[], Mapping[str, MarketInfo | None]]) -> None:
        """Start the periodic flush; `infos` gives each market's rules for the manifest."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._infos = infos
        self._task = asyncio.create_task(self._flush_periodically(), name="record:flush")
        logger.info("recording %d markets into %s", len(self.markets), self.directory)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.flush()

    def flush(self) -> None:
        """Hand every buffered line to the writer thread and update the manifest after them."""
        for recorder in self.markets.values():
            recorder.flush()
        self._executor.submit(self._write_manifest, self._manifest_now()).add_done_callback(_failed)

    def submit(self, market: str, hour: int, lines: list[bytes]) -> None:
        self._executor.submit(self._write, market, hour, lines).add_done_callback(_failed)

    async def close(self) -> None:
        """Write out everything, close the files (complete gzip streams) and the manifest; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.flush()
        self._executor.submit(self._close_files)
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        frames = sum(r.count for r in self.markets.values())
        logger.info("recording closed: %d inputs in %s", frames, self.directory)

    # ------------------------------------------------------------------ the writer thread
    def _write(self, market: str, hour: int, lines: list[bytes]) -> None:
        current = self._files.get(market)
        if current is None or current[0] != hour:
            if current is not None:
                current[1].close()
            path = self.directory / market / _file_name(hour)
            path.parent.mkdir(parents=True, exist_ok=True)
            current = self._files[market] = (hour, gzip.open(path, "ab", compresslevel=5))  # noqa: SIM115
        current[1].write(b"\n".join(lines) + b"\n")

    def _close_files(self) -> None:
        for _, file in self._files.values():
            file.close()
        self._files.clear()

    def _manifest_now(self) -> dict[str, Any]:
        """The manifest as of now (on the loop: the writer thread writes a copy)."""
        infos = self._infos()
        for name, recorder in self.markets.items():
            entry = recorder.entry
            info = infos.get(name)
            if info is not None:
                entry["info"] = info_to_dict(info)
            for hour in recorder.hours:
                file = f"{name}/{_file_name(hour)}"
                if file not in entry["files"]:
                    entry["files"].append(file)
            if recorder.first_ns is not None:
                entry["first_ns"] = min(entry.get("first_ns", recorder.first_ns), recorder.first_ns)
                entry["last_ns"] = max(entry.get("last_ns", 0), recorder.last_ns)
            entry["frames"] = recorder.base + recorder.count
        manifest = self._manifest
        manifest["moonship"] = _version("moonship-core")
        entries = [e for e in manifest["markets"].values() if "first_ns" in e]
        if entries:
            manifest["first_ns"] = min(e["first_ns"] for e in entries)
            manifest["last_ns"] = max(e["last_ns"] for e in entries)
            manifest["start"] = from_epoch_ns(manifest["first_ns"]).isoformat()
            manifest["end"] = from_epoch_ns(manifest["last_ns"]).isoformat()
        return orjson.loads(orjson.dumps(manifest))  # type: ignore[no-any-return]

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        path = self.directory / MANIFEST
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        tmp.replace(path)


def _failed(future: Future[None]) -> None:
    """Log a write the writer thread could not make (a full disk): the recording goes on."""
    exc = future.exception()
    if exc is not None:
        logger.error("recording write failed: %s", exc)


def _file_name(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H") + ".jsonl.gz"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"
