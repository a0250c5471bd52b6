"""`moonship record`: open every configured market with no strategy and record its raw input until the
duration ends, Ctrl-C or SIGTERM; the files are complete either way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from ..config import MoonshipConfig
from ..plugins import Plugins
from ..trading.engine import TradingEngine

logger = logging.getLogger("moonship.record")


def recording_config(config: MoonshipConfig, out: Path) -> MoonshipConfig:
    """`config`'s markets recording into `out`, without strategies."""
    data = config.model_dump()
    data["record"] = {"dir": str(out)}
    data["strategies"] = {}
    return MoonshipConfig.model_validate(data)


async def record(config: MoonshipConfig, out: Path, duration: float | None, plugins: Plugins) -> int:
    """Record until `duration` seconds have passed (forever if None) or a signal stops it; the exit code."""
    engine = TradingEngine.embedded(recording_config(config, out), plugins)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await engine.start()
    failed = 0
    try:
        results = await asyncio.gather(*(m.open() for m in engine.markets.values()), return_exceptions=True)
        for market, result in zip(engine.markets.values(), results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
                logger.error("market %s did not open: %s", market.name, result)
        if failed < len(results):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
    finally:
        await engine.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return 1 if failed else 0
