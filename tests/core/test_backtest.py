"""Record, replay, backtest: a sim session recorded and replayed gives the book the live client held at every
input; `moonship backtest` is deterministic, its files add up, --from/--to select the range, and a strategy's
backtest fills are those of the live paper run on the same frames."""

from __future__ import annotations

import asyncio
import contextvars
import csv
import gzip
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from moonship_core import Order, OrderRequest, Side, StrategyMarket, TradingAlgo, hookimpl
from moonship_core.backtest.run import run_backtest
from moonship_core.cli import main
from moonship_core.clock import SimClock, epoch_ns, from_epoch_ns
from moonship_core.config import MarketConfig, MoonshipConfig, StrategyConfig
from moonship_core.contracts.client import ClientContext
from moonship_core.contracts.stores import FillRecord
from moonship_core.model import sequential_client_order_ids
from moonship_core.plugins import Plugins
from moonship_core.record.reader import Recording
from moonship_core.record.writer import RecordWriter
from moonship_core.sim.replay import Replay
from moonship_core.sim.synthetic import SimClient
from moonship_core.testing import BookTap, book_state
from moonship_core.trading.engine import TradingEngine
from moonship_core.trading.market import Market

D = Decimal
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RESOLVE = Plugins().resolve


def market_config(**extra: Any) -> dict[str, Any]:
    return {
        "client": "paper", "real_client": "sim", "symbol": "BTCUSDT", "balances": {"BTC": 1, "USDT": 100_000},
        "fee_rate": "0.001", "maker_fee_rate": "0.0002", "events_per_second": 50, "volatility_bps": 1,
        "seed": 5, "levels": 10, **extra,
    }


def config(record_dir: Path | None = None, **extra: Any) -> MoonshipConfig:
    return MoonshipConfig.model_validate({
        "engine": {"name": "bt", "summary_interval": 0},
        "markets": {"btc": market_config(**extra)},
        "strategies": {
            "quoter": {
                "algo": "spread_quoter", "auto_start": True, "markets": ["btc"], "trade_quantity": "0.01",
                "spread_bps": 1, "max_position": "0.05", "max_drawdown": 1000,
            },
        },
        "record": {"dir": str(record_dir) if record_dir else None},
    })


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


async def drive(clock: SimClock, seconds: float) -> None:
    """Jump from one sleeper's deadline to the next for `seconds` of simulated time."""
    end = clock.now() + timedelta(seconds=seconds)
    await settle()
    while (due := clock.next_wakeup) is not None and due <= end:
        clock.advance_to(due)
        await settle()
    clock.advance_to(end)
    await settle()


def live_session(directory: Path, seconds: float, **extra: Any) -> list[tuple[Any, ...]]:
    """A live paper run over sim under a SimClock, recording into `directory`; the quoter's fills."""
    fills: list[tuple[Any, ...]] = []

    async def session() -> None:
        clock = SimClock(START)
        with sequential_client_order_ids():
            engine = TradingEngine.embedded(config(directory, **extra), clock=clock)
            engine.orders.portfolio.listeners.append(lambda r, p: fills.append(_fill(r, p, clock)))
            await engine.start()
            try:
                await drive(clock, seconds)
            finally:
                await engine.stop()

    asyncio.run(session())
    return fills


def _fill(record: FillRecord, profit: Decimal | None, clock: SimClock) -> tuple[Any, ...]:
    f = record.fill
    return (
        clock.now(), record.strategy, record.client_order_id, record.side.value, f.price, f.quantity, f.fee,
        profit or D(0),
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[Any, ...]]]:
    directory = tmp_path_factory.mktemp("rec")
    return directory, live_session(directory, 30)


def test_a_recording_has_a_manifest_and_compressed_hourly_files(
    recorded: tuple[Path, list[tuple[Any, ...]]],
) -> None:
    directory, _ = recorded
    manifest = json.loads((directory / "manifest.json").read_text())
    entry = manifest["markets"]["btc"]
    assert entry["venue"] == "sim" and entry["symbol"] == "BTCUSDT"
    assert entry["info"]["tick_size"] == "0.01" and entry["plugin"]["name"] == "moonship-core"
    assert entry["files"] == ["btc/2024-05-01T12.jsonl.gz"]
    assert manifest["start"] == START.isoformat()
    assert manifest["moonship"]
    with gzip.open(directory / entry["files"][0]) as file:
        lines = file.read().splitlines()
    assert len(lines) == entry["frames"] > 1500  # 50 events/s for 30 s, trades and tickers besides
    ns, kind, data = json.loads(lines[0])
    assert ns == epoch_ns(START) and kind == "ws" and json.loads(data)["e"] == "snapshot"


def test_the_writer_rotates_hourly_and_adds_to_a_recording(tmp_path: Path) -> None:
    async def session(start_ns: int, count: int) -> None:
        writer = RecordWriter(tmp_path)
        recorder = writer.market("m", "BTCUSDT", SimClient)
        await writer.start(dict)
        for i in range(count):
            recorder.record("ws", f'{{"i":{i}}}', start_ns + i * 600_000_000_000)  # every 10 minutes
        await writer.close()

    base = epoch_ns(START)
    asyncio.run(session(base, 9))
    asyncio.run(session(base + 9 * 600_000_000_000, 3))
    recording = Recording(tmp_path)
    market = recording.markets["m"]
    assert [p.name for p in market.files] == [f"2024-05-01T{h}.jsonl.gz" for h in (12, 13)]
    assert market.frames == 12 and market.first_ns == base and market.last_ns == base + 11 * 600_000_000_000
    inputs = list(market.inputs())
    assert [json.loads(data)["i"] for _, _, data in inputs] == [*range(9), *range(3)]
    assert [ns for ns, _, _ in inputs] == [base + i * 600_000_000_000 for i in range(12)]


def test_a_file_cut_short_gives_its_whole_lines(tmp_path: Path) -> None:
    """A recorder killed mid-write leaves a gzip stream without its end: the lines before the cut are read."""
    lines = [orjson.dumps([i, "ws", "x" * 50]) for i in range(5000)]
    whole = gzip.compress(b"\n".join(lines) + b"\n")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.jsonl.gz").write_bytes(whole[: len(whole) * 2 // 3])
    (tmp_path / "manifest.json").write_bytes(orjson.dumps({"markets": {"m": {
        "venue": "sim", "symbol": "BTCUSDT", "files": ["m/a.jsonl.gz"], "frames": 5000,
    }}}))
    read = [ns for ns, _, _ in Recording(tmp_path).markets["m"].inputs()]
    assert 0 < len(read) < 5000 and read == list(range(len(read)))


def _sim_market(name: str, clock: SimClock) -> Market:
    cfg = MarketConfig.model_validate({"client": "sim", "symbol": "BTCUSDT", "seed": 3, "levels": 20})
    context = ClientContext(name, cfg, {}, lambda n: RESOLVE("market_clients", n), clock=clock)
    return Market(name, cfg, SimClient, context)


def test_the_replayed_book_equals_the_live_book_at_every_input(tmp_path: Path) -> None:
    clock = SimClock(START)
    live = _sim_market("btc", clock)

    async def record() -> BookTap:
        writer = RecordWriter(tmp_path)
        tap = BookTap(lambda: live.book, writer.market("btc", "BTCUSDT", SimClient))
        live.client.context.recorder = tap
        await writer.start(lambda: {"btc": live.info})
        live.info = await live.client.get_market_info()
        for _ in range(2000):
            clock.advance(0.01)
            live.client.step()  # type: ignore[attr-defined]
        tap.books.append(book_state(live.book))
        await writer.close()
        return tap

    tap = asyncio.run(record())
    replayed = _sim_market("btc", SimClock(START))
    info = Recording(tmp_path).markets["btc"].info
    assert info is not None
    parser = SimClient.replay_parser(replayed.client.context, replayed.client.events, info)
    inputs = list(Recording(tmp_path).markets["btc"].inputs())
    assert len(inputs) == len(tap.books) - 1 > 4000
    for i, (_, kind, data) in enumerate(inputs):
        assert book_state(replayed.book) == tap.books[i], f"before input {i}"
        parser.feed(kind, data)
    assert book_state(replayed.book) == tap.books[-1]
    assert len(replayed.trades) == len(live.trades) and replayed.trades[-1] == live.trades[-1]
    assert replayed.ticker == live.ticker


def backtest(data: Path, out: Path, *args: str, cfg: MoonshipConfig | None = None) -> None:
    path = out.parent / f"{out.name}.yml"
    path.write_text(json.dumps({"moonship": json.loads((cfg or config()).model_dump_json())}))
    assert main(["backtest", "-c", str(path), "--data", str(data), "--out", str(out), "-q", *args]) == 0


def test_a_backtest_gives_the_fills_of_the_live_paper_run(
    recorded: tuple[Path, list[tuple[Any, ...]]], tmp_path: Path
) -> None:
    directory, live_fills = recorded
    backtest(directory, tmp_path / "out")
    rows = list(csv.DictReader((tmp_path / "out" / "trades.csv").open()))
    assert len(live_fills) > 20
    replayed = [
        (datetime.fromisoformat(r["time"]), r["strategy"], r["client_order_id"], r["side"], D(r["price"]),
         D(r["quantity"]), D(r["fee"]), D(r["realized_profit"]))
        for r in rows
    ]
    assert replayed == live_fills


def test_a_backtest_is_deterministic_and_its_files_add_up(
    recorded: tuple[Path, list[tuple[Any, ...]]], tmp_path: Path
) -> None:
    directory, _ = recorded
    backtest(directory, tmp_path / "a", "--latency", "25")
    backtest(directory, tmp_path / "b", "--latency", "25")
    first = (tmp_path / "a" / "report.json").read_bytes()
    assert first == (tmp_path / "b" / "report.json").read_bytes()
    report = json.loads(first)
    figures = report["strategies"]["quoter"]
    rows = list(csv.DictReader((tmp_path / "a" / "trades.csv").open()))
    assert figures["trades"] == len(rows) > 10
    assert D(figures["volume"]) == sum(D(r["price"]) * D(r["quantity"]) for r in rows)
    assert D(figures["realized_profit"]) == sum(D(r["realized_profit"]) for r in rows)
    fees = {asset: D(fee) for asset, fee in figures["fees"].items()}
    assert fees == {"USDT": sum(D(r["fee"]) for r in rows)}
    position = sum(D(r["quantity"]) * (1 if r["side"] == "BUY" else -1) for r in rows)
    assert D(figures["final_position"]["btc"]) == position
    assert D(figures["total_profit"]) == D(figures["realized_profit"]) + D(figures["unrealized_profit"])
    assert figures["sharpe"] is None  # under two days
    assert D(figures["max_drawdown"]) >= 0
    equity = list(csv.DictReader((tmp_path / "a" / "equity.csv").open()))
    assert equity[-1]["strategy"] == "quoter" and D(equity[-1]["equity"]) == D(figures["total_profit"])
    assert report["data"]["events"] == Recording(directory).markets["btc"].frames
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["events"] == report["data"]["events"] and run["events_per_second"] > 0
    page = (tmp_path / "a" / "report.html").read_text()
    assert page.count("<svg") == 3 and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_latency_delays_each_order(recorded: tuple[Path, list[tuple[Any, ...]]], tmp_path: Path) -> None:
    directory, live_fills = recorded
    backtest(directory, tmp_path / "slow", "--latency", "500")
    rows = list(csv.DictReader((tmp_path / "slow" / "trades.csv").open()))
    assert rows and [r["time"] for r in rows] != [f[0].isoformat() for f in live_fills]


def test_from_and_to_select_the_range(recorded: tuple[Path, list[tuple[Any, ...]]], tmp_path: Path) -> None:
    directory, _ = recorded
    start, end = START + timedelta(seconds=10), START + timedelta(seconds=20)
    backtest(directory, tmp_path / "part", "--from", start.isoformat(), "--to", end.isoformat())
    report = json.loads((tmp_path / "part" / "report.json").read_text())
    inputs = list(Recording(directory).markets["btc"].inputs())
    inside = [ns for ns, _, _ in inputs if epoch_ns(start) <= ns <= epoch_ns(end)]
    assert report["data"]["events"] == len(inside) > 100
    assert report["data"]["from"] == from_epoch_ns(inside[0]).isoformat()
    assert report["data"]["to"] == from_epoch_ns(inside[-1]).isoformat()
    rows = list(csv.DictReader((tmp_path / "part" / "trades.csv").open()))
    assert rows and all(start <= datetime.fromisoformat(r["time"]) <= end for r in rows)


def test_moonship_record_records_sim_until_the_duration_ends(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    cfg = config(events_per_second=200)
    path.write_text(json.dumps({"moonship": json.loads(cfg.model_dump_json())}))
    assert main(["record", "-c", str(path), "--out", str(tmp_path / "rec"), "--duration", "1", "-q"]) == 0
    market = Recording(tmp_path / "rec").markets["btc"]
    inputs = list(market.inputs())
    assert market.frames == len(inputs) > 50 and market.info is not None
    assert market.last_ns is not None and market.first_ns is not None
    assert 0.5e9 < market.last_ns - market.first_ns < 1.5e9



class BuyOnce(TradingAlgo):
    """Notes every book (its best ask) and order update (its fill price) it sees; buys at market once, on
    the book whose best ask is 105."""

    seen: list[tuple[str, Decimal | None]] = []

    async def on_order_book(self, market: StrategyMarket) -> None:
        ask = market.book.best_ask
        BuyOnce.seen.append(("book", ask))
        if ask == D(105):
            await market.place_order(OrderRequest.market(Side.BUY, quantity=D("0.01")))

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        if order.status.is_final:
            BuyOnce.seen.append((order.status.value, order.average_price))


class _BuyOnceAlgos:
    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"buy_once": BuyOnce}


def _stepping_recording(directory: Path, steps: int) -> None:
    """A sim recording: a snapshot (bid 100, ask 101) and then, 1 ms apart, `steps` depth updates that each
    move the best ask one up (update i: ask 101 + i)."""
    t0 = epoch_ns(START)
    frames = [{"e": "snapshot", "u": 0, "b": [["100.00", "5"]], "a": [["101.00", "5"]]}]
    frames += [
        {"e": "depth", "u": i, "b": [], "a": [[f"{100 + i}.00", "0"], [f"{101 + i}.00", "5"]]}
        for i in range(1, steps + 1)
    ]
    lines = [orjson.dumps([t0 + i * 1_000_000, "ws", orjson.dumps(f).decode()]) for i, f in enumerate(frames)]
    (directory / "btc").mkdir(parents=True)
    with gzip.open(directory / "btc" / "2024-05-01T12.jsonl.gz", "wb") as file:
        file.write(b"\n".join(lines) + b"\n")
    last = t0 + steps * 1_000_000
    (directory / "manifest.json").write_bytes(orjson.dumps({
        "format": 1, "first_ns": t0, "last_ns": last,
        "markets": {"btc": {
            "venue": "sim", "symbol": "BTCUSDT", "files": ["btc/2024-05-01T12.jsonl.gz"],
            "frames": len(frames), "first_ns": t0, "last_ns": last,
            "info": {"symbol": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT", "tick_size": "0.01",
                     "lot_size": "0.00001", "min_quantity": "0.00001", "min_notional": "1"},
        }},
    }))


@pytest.mark.parametrize(
    ("latency", "fill"),
    [
        ("0", 105),  # at once, on the book it was placed on
        ("2.5", 107),  # 2.5 ms later: after the updates at +1 and +2 ms, before the one at +3 ms
        ("3", 107),  # due with the update at +3 ms: the order reaches the book before that update
    ],
)
def test_an_order_meets_the_book_as_it_stands_after_its_latency(
    tmp_path: Path, latency: str, fill: int
) -> None:
    _stepping_recording(tmp_path / "rec", 10)
    cfg = MoonshipConfig.model_validate({
        "engine": {"name": "bt", "summary_interval": 0},
        "markets": {"btc": {"client": "sim", "symbol": "BTCUSDT", "balances": {"BTC": 1, "USDT": 100_000}}},
        "strategies": {"buyer": {"algo": "buy_once", "auto_start": True, "markets": ["btc"]}},
    })
    plugins = Plugins.load()
    plugins.register(_BuyOnceAlgos(), "buy-once")
    BuyOnce.seen = []
    outcome = asyncio.run(run_backtest(cfg, tmp_path / "rec", latency_ms=D(latency), plugins=plugins))
    [trade] = outcome.collector.strategies["buyer"].trades
    assert trade.price == fill
    placed = epoch_ns(START) + 4_000_000  # the book of update 4 (ask 105)
    assert trade.time_ns == placed + int(D(latency) * 1_000_000)
    # every update is seen, in order, one callback each, but for those that came while the algo awaited its
    # order: they are one book notice, before the fill's update (conflated, as live)
    books = [("book", D(ask)) for ask in range(101, 112)]
    while_placing = [("book", D(fill))] if latency != "0" else []
    assert BuyOnce.seen == books[:5] + while_placing + [("FILLED", D(fill))] + books[fill - 100 :]


class Echo(TradingAlgo):
    """Notes every callback as it runs (time, book top, the task it runs as, the context's value); every
    25th book it quotes a buy at the best bid and awaits a 3 ms timer, and cancels once an order rests."""

    seen: list[tuple[Any, ...]] = []
    var: contextvars.ContextVar[int] = contextvars.ContextVar("echo", default=0)

    async def on_order_book(self, market: StrategyMarket) -> None:
        count = Echo.var.get() + 1
        Echo.var.set(count)  # the strategy task's context: its value carries from callback to callback
        task = asyncio.current_task()
        Echo.seen.append(
            ("book", self.clock.now(), market.book.best_bid, market.book.best_ask, count,
             task.get_name() if task else None)
        )
        if count % 25 == 0 and market.book.best_bid is not None:
            for order in market.open_orders:
                await market.cancel_order(order)
            await market.place_order(OrderRequest.limit(Side.BUY, D("0.01"), market.book.best_bid))
            await self.clock.sleep(0.003)
            Echo.seen.append(("slept", self.clock.now(), market.book.best_bid))

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        Echo.seen.append(("order", self.clock.now(), order.client_order_id, order.status.value))


class _EchoAlgos:
    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"echo": Echo}


def test_inline_delivery_gives_the_callbacks_the_task_gives(
    recorded: tuple[Path, list[tuple[Any, ...]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay delivers inputs to a waiting strategy inline (no task switch): the strategy sees the same
    callbacks, in the same order, at the same times, as its own task, with orders, latency and timers."""
    directory, _ = recorded
    cfg = config().model_copy(update={"strategies": {
        "echo": StrategyConfig.model_validate({"algo": "echo", "auto_start": True, "markets": ["btc"]}),
    }})
    plugins = Plugins.load()
    plugins.register(_EchoAlgos(), "echo")
    delivered = 0
    deliver = Replay.defer

    def counting(self: Replay, mailbox: Any) -> bool:
        nonlocal delivered
        taken = deliver(self, mailbox)
        delivered += taken
        return taken

    def run(pump: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        monkeypatch.setattr(Replay, "defer", pump)
        Echo.seen = []
        outcome = asyncio.run(run_backtest(cfg, directory, latency_ms=D(2), plugins=plugins))
        trades = outcome.collector.strategies["echo"].trades
        return Echo.seen, [(t.time_ns, t.side, t.price, t.quantity) for t in trades]

    inline, inline_trades = run(counting)
    on_task, task_trades = run(lambda self, mailbox: False)
    books = [s for s in inline if s[0] == "book"]
    assert len(books) > 1000 and delivered > len(books) // 2
    assert {s[5] for s in books} == {"strategy:echo"}
    assert [s[4] for s in books] == list(range(1, len(books) + 1))
    assert sum(s[0] == "slept" for s in inline) > 20 and any(s[0] == "order" for s in inline)
    assert inline_trades and inline_trades == task_trades
    assert inline == on_task
