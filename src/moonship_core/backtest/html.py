"""report.html: one self-contained page (no scripts, no network) with inline SVG charts per strategy: the
equity curve, each market's mid with buy and sell markers, and the position over time."""

from __future__ import annotations

import html
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ..clock import from_epoch_ns
from ..model import Side
from .report import Collector, StrategyFigures

_WIDTH, _HEIGHT, _PAD = 900, 220, 40
_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:right}
td:first-child{text-align:left}
svg{background:#fafafa;border:1px solid #ddd;margin:.3em 0}h3{margin:.8em 0 .2em}"""


def page(report: dict[str, Any], collector: Collector) -> str:
    data = report["data"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Moonship backtest</title>",
        f"<style>{_STYLE}</style></head><body><h1>Moonship backtest</h1>",
        f"<p>{_e(data['from'])} to {_e(data['to'])}: {data['events']} events; latency "
        f"{_e(report['latency_ms'])} ms</p>",
    ]
    for name, figures in report["strategies"].items():
        parts.append(f"<h2>{_e(name)}</h2>{_table(figures)}")
        parts.append(_strategy_charts(collector.strategies[name]))
    parts.append("</body></html>\n")
    return "".join(parts)


def _table(figures: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_plain(v))}</td></tr>" for k, v in figures.items())
    return f"<table>{rows}</table>"


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


def _strategy_charts(figures: StrategyFigures) -> str:
    samples = figures.samples
    if not samples:
        return "<p>no data</p>"
    times = [s.time_ns for s in samples]
    parts = ["<h3>Equity</h3>", _chart(times, [s.equity for s in samples], "#1f77b4")]
    for market in samples[0].markets:
        mids = [s.markets.get(market, (None, Decimal(0)))[0] for s in samples]
        markers = [
            (row.time_ns, row.price, row.side) for row in figures.trades if row.market == market
        ]
        parts.append(f"<h3>{_e(market)}: mid, buys ▲ and sells ▼</h3>")
        parts.append(_chart(times, mids, "#555", markers))
        positions = [s.markets.get(market, (None, Decimal(0)))[1] for s in samples]
        parts.append(f"<h3>{_e(market)}: position</h3>")
        parts.append(_chart(times, positions, "#2ca02c"))
    return "".join(parts)


def _chart(
    times: Sequence[int],
    values: Sequence[Decimal | None],
    colour: str,
    markers: Sequence[tuple[int, Decimal, Side]] = (),
) -> str:
    known = [float(v) for v in values if v is not None] + [float(p) for _, p, _ in markers]
    if not known:
        return "<p>no data</p>"
    t0, t1 = times[0], max(times[-1], times[0] + 1)
    low, high = min(known), max(known)
    if high == low:
        high, low = high + 1, low - 1

    def x(t: int) -> float:
        return _PAD + (t - t0) / (t1 - t0) * (_WIDTH - 2 * _PAD)

    def y(v: float) -> float:
        return _HEIGHT - _PAD / 2 - (v - low) / (high - low) * (_HEIGHT - _PAD)

    pairs = zip(times, values, strict=True)
    points = " ".join(f"{x(t):.1f},{y(float(v)):.1f}" for t, v in pairs if v is not None)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{_HEIGHT}'>",
        f"<polyline fill='none' stroke='{colour}' stroke-width='1.2' points='{points}'/>",
        f"<text x='4' y='14' font-size='11'>{high:.8g}</text>",
        f"<text x='4' y='{_HEIGHT - 4}' font-size='11'>{low:.8g}</text>",
        f"<text x='{_PAD}' y='{_HEIGHT - 4}' font-size='11'>{_e(_time(t0))}</text>",
        f"<text x='{_WIDTH - _PAD}' y='{_HEIGHT - 4}' font-size='11' text-anchor='end'>"
        f"{_e(_time(t1))}</text>",
    ]
    for t, price, side in markers:
        px, py = x(t), y(float(price))
        if side is Side.BUY:
            parts.append(f"<path d='M{px:.1f},{py - 4:.1f}l4,7h-8z' fill='#2ca02c'/>")
        else:
            parts.append(f"<path d='M{px:.1f},{py + 4:.1f}l4,-7h-8z' fill='#d62728'/>")
    parts.append("</svg>")
    return "".join(parts)


def _time(ns: int) -> str:
    return from_epoch_ns(ns).strftime("%Y-%m-%d %H:%M:%S")


def _e(text: Any) -> str:
    return html.escape(str(text))
