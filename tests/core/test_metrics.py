"""The engine's metrics: counters that move while a strategy trades on the offline simulator, served on the
engine's own listener (`moonship.metrics.port`) and parsed with prometheus-client's parser; a busy port
refused before trading starts; rate-limit waits counted."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from moonship_core import MoonshipConfig, SimClock, TradingEngine
from moonship_core.cli import main
from moonship_core.config import parse_config
from moonship_core.launcher import run
from moonship_core.plugins import Plugins
from moonship_core.venues.ratelimit import RateLimiter

MARKET = {
    "client": "paper", "real_client": "sim", "symbol": "BTCUSDT", "balances": {"BTC": 1, "USDT": 100000},
    "events_per_second": 200, "volatility_bps": 2, "seed": 3,
}
QUOTER = {
    "algo": "spread_quoter", "auto_start": True, "markets": ["btc"], "trade_quantity": "0.01",
    "spread_bps": 1, "max_position": "0.1", "max_drawdown": 500,
}


def config(**metrics: Any) -> MoonshipConfig:
    return parse_config({"moonship": {
        "engine": {"name": "metered"}, "markets": {"btc": MARKET}, "strategies": {"quoter": QUOTER},
        "metrics": metrics,
    }})


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, sorted labels), through prometheus-client's own parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


async def scrape(port: int) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    return parse(reply.text)


def test_counters_move_while_a_strategy_trades() -> None:
    async def main() -> tuple[Samples, Samples, int]:
        engine = TradingEngine.embedded(config(port=0))
        await engine.start()
        try:
            assert engine.metrics_server is not None
            port = engine.metrics_server.address[1]
            first = await scrape(port)
            for _ in range(200):  # until the quoter has been filled a few times
                await asyncio.sleep(0.05)
                if sum(engine.counters.fills.values()) >= 2:
                    break
            second = await scrape(port)
            async with httpx.AsyncClient(timeout=5) as client:
                missing = (await client.get(f"http://127.0.0.1:{port}/other")).status_code
        finally:
            await engine.stop()
        return first, second, missing

    first, second, missing = asyncio.run(main())
    assert missing == 404
    assert second[("moonship_engine_up", (("engine", "metered"),))] == 1
    book = {"engine": "metered", "market": "btc", "kind": "book"}
    assert total(second, "moonship_events_total", **book) > total(first, "moonship_events_total", **book) > 0
    assert total(second, "moonship_events_total", kind="order") > 0
    # every order handed to the client came from a book event: the histogram counts each one
    sent = total(second, "moonship_tick_to_order_seconds_count", engine="metered")
    assert sent > 0
    assert total(second, "moonship_tick_to_order_seconds_bucket", engine="metered", le="+Inf") == sent
    assert 0 < total(second, "moonship_tick_to_order_seconds_sum") < sent  # each well under a second
    assert total(second, "moonship_fills_total", strategy="quoter", market="btc") >= 2
    assert total(second, "moonship_orders_total", strategy="quoter", status="FILLED") >= 1
    assert second[("moonship_strategy_active", (("engine", "metered"), ("strategy", "quoter")))] == 1
    position = (("engine", "metered"), ("market", "btc"), ("strategy", "quoter"))
    assert ("moonship_strategy_position", position) in second
    assert ("moonship_strategy_profit", (("engine", "metered"), ("strategy", "quoter"))) in second
    assert total(second, "moonship_market_price", market="btc") > 0
    assert total(second, "moonship_cache_outages_total", engine="metered") == 0


def test_an_order_refused_counts_as_rejected_by_its_error() -> None:
    refused = {**QUOTER, "risk": {"max_order_quantity": "0.001"}}  # every quote is too large

    async def main() -> Samples:
        engine = TradingEngine.embedded(parse_config({"moonship": {
            "markets": {"btc": MARKET}, "strategies": {"quoter": refused},
        }}))
        await engine.start()
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if engine.counters.orders:
                    break
            return parse(engine.prometheus().decode())
        finally:
            await engine.stop()

    samples = asyncio.run(main())
    assert total(samples, "moonship_orders_total", status="REJECTED", error="RiskDenied") > 0
    # refused before the client: never handed to it, so no tick-to-order
    assert total(samples, "moonship_tick_to_order_seconds_count") == 0


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_a_busy_metrics_port_stops_the_start_before_trading(
    busy_port: int, capsys: pytest.CaptureFixture[str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = run(config(port=busy_port), Plugins.load(), ["engine"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"the engine's metrics cannot listen on 127.0.0.1:{busy_port}: Address already in use" in err
    assert "started" not in err  # nothing traded
    assert not (tmp_path / "moonship-data").exists()  # not even the journal was opened


def test_rate_limit_waits_are_counted_once_per_waiting_request() -> None:
    async def main() -> int:
        clock = SimClock(datetime(2026, 1, 1, tzinfo=UTC))
        waits: list[str] = []
        limiter = RateLimiter(2, 1.0, clock=clock, on_wait=lambda: waits.append("venue"))
        await limiter.acquire()
        await limiter.acquire()
        assert waits == []  # within the limit: no wait
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        clock.advance(1.0)
        await asyncio.sleep(0)
        await waiter
        limiter.pause(5)
        paused = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        clock.advance(5.0)
        await asyncio.sleep(0)
        await paused
        return len(waits)

    assert asyncio.run(main()) == 2


def test_config_check_finds_the_busy_metrics_port(
    busy_port: int, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config_file = tmp_path / "config.yml"
    metrics = {"port": busy_port}
    config_file.write_text(yaml.safe_dump({"moonship": {
        "markets": {"btc": MARKET}, "strategies": {"quoter": QUOTER}, "metrics": metrics,
    }}))
    assert main(["config", "check", "-c", str(config_file)]) == 1
    assert f"the engine's metrics cannot listen on 127.0.0.1:{busy_port}" in capsys.readouterr().err
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        metrics["port"] = free.getsockname()[1]
    config_file.write_text(yaml.safe_dump({"moonship": {
        "markets": {"btc": MARKET}, "strategies": {"quoter": QUOTER}, "metrics": metrics,
    }}))
    assert main(["config", "check", "-c", str(config_file)]) == 0
