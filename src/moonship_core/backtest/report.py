"""The backtest's figures: every fill and an equity series per strategy (Collector), and the files made from
them: report.json, trades.csv, equity.csv (and run.json with the timings, which vary run to run)."""

from __future__ import annotations

import asyncio
import csv
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..clock import SimClock, epoch_ns, from_epoch_ns
from ..contracts.stores import FillRecord
from ..model import ZERO, Side, fmt_decimal

if TYPE_CHECKING:
    from ..trading.engine import TradingEngine

_RATIO = Decimal("0.0001")
_DAYS_PER_YEAR = Decimal(365)
TRADE_COLUMNS = (
    "time", "strategy", "market", "side", "price", "quantity", "fee", "fee_asset", "client_order_id",
    "realized_profit",
)


@dataclass(frozen=True)
class TradeRow:
    time_ns: int
    strategy: str
    market: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    client_order_id: str
    realized_profit: Decimal


@dataclass(frozen=True)
class Sample:
    """A strategy's state at one time: equity, and each market's mid and position."""

    time_ns: int
    equity: Decimal
    markets: dict[str, tuple[Decimal | None, Decimal]]


@dataclass
class StrategyFigures:
    trades: list[TradeRow] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


class Collector:
    """Listens to the engine's portfolio for fills and samples each strategy's equity every `interval_ns` of
    simulated time and at every fill."""

    def __init__(self, engine: TradingEngine, clock: SimClock, interval_ns: int) -> None:
        self.engine = engine
        self.clock = clock
        self.interval = interval_ns / 1e9
        self.strategies = {name: StrategyFigures() for name in engine.strategies}
        #: each market's mid when the replay ended (the mark of unrealised P/L)
        self.final_mids: dict[str, Decimal | None] = {}
        self._task: asyncio.Task[None] | None = None
        engine.orders.portfolio.listeners.append(self._on_fill)

    def start(self) -> None:
        self.sample()
        self._task = asyncio.create_task(self._sample_periodically(), name="backtest:samples")

    def finish(self) -> None:
        """The last sample and mids, before the markets close."""
        if self._task is not None:
            self._task.cancel()
        self.sample()
        self.final_mids = {name: market.book.mid for name, market in self.engine.markets.items()}

    async def _sample_periodically(self) -> None:
        while True:
            await self.clock.sleep(self.interval)
            self.sample()

    def _on_fill(self, record: FillRecord, profit: Decimal | None) -> None:
        figures = self.strategies.get(record.strategy)
        if figures is None:
            return
        fill = record.fill
        figures.trades.append(TradeRow(
            epoch_ns(self.clock.now()), record.strategy, record.market, record.side, fill.price,
            fill.quantity, fill.fee, fill.fee_asset, record.client_order_id, profit or ZERO,
        ))
        self._sample(record.strategy)

    def sample(self) -> None:
        for name in self.strategies:
            self._sample(name)

    def _sample(self, name: str) -> None:
        strategy = self.engine.strategies[name]
        portfolio = self.engine.orders.portfolio
        equity = portfolio.total_profit(name)
        markets: dict[str, tuple[Decimal | None, Decimal]] = {}
        for market_name, market in strategy.markets.items():
            position = strategy.positions[market_name]
            mid = market.book.mid
            if mid is not None:
                equity += position.unrealized(mid)
            markets[market_name] = (mid, position.quantity)
        samples = self.strategies[name].samples
        sample = Sample(epoch_ns(self.clock.now()), equity, markets)
        if samples and samples[-1].time_ns == sample.time_ns:
            samples[-1] = sample
        else:
            samples.append(sample)


def strategy_report(collector: Collector, name: str) -> dict[str, Any]:
    """The report.json figures of one strategy (all derivable from its trades.csv rows and the last mids)."""
    figures = collector.strategies[name]
    trades = figures.trades
    fees: dict[str, Decimal] = {}
    for row in trades:
        if row.fee:
            fees[row.fee_asset] = fees.get(row.fee_asset, ZERO) + row.fee
    realized = sum((row.realized_profit for row in trades), ZERO)
    strategy = collector.engine.strategies[name]
    unrealized = ZERO
    for market_name in strategy.markets:
        mid = collector.final_mids.get(market_name)
        if mid is not None:
            unrealized += strategy.positions[market_name].unrealized(mid)
    closing = [row.realized_profit for row in trades if row.realized_profit]
    wins = sum(1 for profit in closing if profit > 0)
    return {
        "trades": len(trades),
        "volume": _text(sum((row.price * row.quantity for row in trades), ZERO)),
        "fees": {asset: _text(fee) for asset, fee in sorted(fees.items())},
        "realized_profit": _text(realized),
        "unrealized_profit": _text(unrealized),
        "total_profit": _text(realized + unrealized),
        "max_drawdown": _text(_max_drawdown(figures.samples)),
        "sharpe": _sharpe(figures.samples),
        "win_rate": _text((Decimal(wins) / len(closing)).quantize(_RATIO)) if closing else None,
        "final_position": {m: _text(p.quantity) for m, p in sorted(strategy.positions.items())},
    }


def _text(value: Decimal) -> str:
    return fmt_decimal(value)


def _max_drawdown(samples: list[Sample]) -> Decimal:
    peak, worst = ZERO, ZERO  # equity starts at 0
    for sample in samples:
        peak = max(peak, sample.equity)
        worst = max(worst, peak - sample.equity)
    return worst


def _sharpe(samples: list[Sample]) -> str | None:
    """Annualised Sharpe ratio of the daily changes of equity (null under two days of data)."""
    closes: dict[int, Decimal] = {}
    for sample in samples:
        closes[sample.time_ns // 86_400_000_000_000] = sample.equity
    if len(closes) < 2:
        return None
    returns, previous = [], ZERO
    for day in sorted(closes):
        returns.append(closes[day] - previous)
        previous = closes[day]
    mean = sum(returns, ZERO) / len(returns)
    variance = sum(((r - mean) ** 2 for r in returns), ZERO) / (len(returns) - 1)
    if not variance:
        return None
    return _text((mean / variance.sqrt() * _DAYS_PER_YEAR.sqrt()).quantize(_RATIO))


def report(collector: Collector, events: int, first_ns: int | None, last_ns: int | None,
           latency_ms: Decimal) -> dict[str, Any]:
    """report.json: the data range and event count, and each strategy's figures."""
    return {
        "data": {
            "from": None if first_ns is None else from_epoch_ns(first_ns).isoformat(),
            "to": None if last_ns is None else from_epoch_ns(last_ns).isoformat(),
            "events": events,
            "markets": {name: m.symbol for name, m in sorted(collector.engine.markets.items())},
        },
        "latency_ms": _text(latency_ms),
        "strategies": {
            name: strategy_report(collector, name) for name in sorted(collector.strategies)
        },
    }


def write_files(out: Path, report_data: dict[str, Any], collector: Collector, run: dict[str, Any]) -> None:
    """report.json, trades.csv, equity.csv and run.json in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(orjson.dumps(report_data, option=orjson.OPT_INDENT_2) + b"\n")
    (out / "run.json").write_bytes(orjson.dumps(run, option=orjson.OPT_INDENT_2) + b"\n")
    with (out / "trades.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(TRADE_COLUMNS)
        for name, figures in sorted(collector.strategies.items()):
            for row in figures.trades:
                writer.writerow((
                    _iso(row.time_ns), name, row.market, row.side.value, _text(row.price),
                    _text(row.quantity), _text(row.fee), row.fee_asset, row.client_order_id,
                    _text(row.realized_profit),
                ))
    with (out / "equity.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(("time", "strategy", "equity"))
        for name, figures in sorted(collector.strategies.items()):
            for sample in figures.samples:
                writer.writerow((_iso(sample.time_ns), name, _text(sample.equity)))


def _iso(ns: int) -> str:
    return from_epoch_ns(ns).isoformat()
