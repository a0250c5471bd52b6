"""`moonship backtest`: the run with a progress bar on a terminal, the files, and the summary table."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..config import MoonshipConfig
from ..plugins import Plugins
from ..record.reader import Recording
from .html import page
from .report import report, write_files
from .run import run_backtest


async def backtest(
    config: MoonshipConfig,
    data: Path,
    out: Path,
    *,
    start: datetime | None,
    end: datetime | None,
    latency_ms: Decimal,
    plugins: Plugins,
) -> int:
    console = Console(stderr=False)
    total = sum(m.frames for m in Recording(data).markets.values())
    progress = Progress(
        TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, disable=not sys.stdout.isatty(), transient=True,
    )
    with progress:
        task = progress.add_task("replay", total=total)
        outcome = await run_backtest(
            config, data, start=start, end=end, latency_ms=latency_ms, plugins=plugins,
            progress=lambda events: progress.update(task, completed=events),
        )
    collector = outcome.collector
    data_report = report(collector, outcome.events, outcome.first_ns, outcome.last_ns, latency_ms)
    rate = outcome.events / outcome.wall_seconds if outcome.wall_seconds > 0 else 0.0
    run: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "wall_seconds": round(outcome.wall_seconds, 3),
        "events": outcome.events,
        "events_per_second": round(rate),
    }
    write_files(out, data_report, collector, run)
    (out / "report.html").write_text(page(data_report, collector), encoding="utf-8")
    console.print(_summary(data_report))
    console.print(
        f"{outcome.events} events in {outcome.wall_seconds:.2f} s ({rate:,.0f} events/s); "
        f"report: {out / 'report.html'}"
    )
    return 0


def _summary(data_report: dict[str, Any]) -> Table:
    table = Table(title=f"backtest {data_report['data']['from']} to {data_report['data']['to']}")
    columns = ("trades", "volume", "fees", "realized_profit", "unrealized_profit", "total_profit",
               "max_drawdown", "sharpe", "win_rate", "final_position")
    table.add_column("strategy")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for name, figures in data_report["strategies"].items():
        table.add_row(name, *(_cell(figures[column]) for column in columns))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)
