"""examples/grafana-dashboard.json is valid JSON and queries only metrics that Moonship exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from moonship_core import EngineMetrics, render_metrics
from moonship_core.trading.counters import EngineCounters

DASHBOARD = Path(__file__).parents[2] / "examples" / "grafana-dashboard.json"
#: PromQL's own words, which are not metric names
PROMQL = {"sum", "by", "rate", "increase", "histogram_quantile", "le", "engine", "market", "kind", "strategy",
          "status", "error", "venue"}


def exported() -> set[str]:
    """Every sample name Moonship renders for an engine that counted something of each kind."""
    counters = EngineCounters()
    counters.market("btc").book += 1
    counters.venues.reconnected("binance")
    counters.venues.rate_limit_waited("binance")
    counters.order_ended("s", "btc", "FILLED", "")
    counters.filled("s", "btc")
    snapshot = {**counters.snapshot(), "prices": {"btc": "100"}}
    info = {"name": "s", "active": True, "position": "1", "total_profit": "2", "config": {"markets": ["btc"]}}
    text = render_metrics([EngineMetrics("e", True, snapshot, [info])]).decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(expressions) >= 13
    names = {
        word for expr in expressions for word in re.findall(r"[a-z_]+(?=[\[{(\s)]|$)", expr)
        if word not in PROMQL
    }
    assert names, "no metric names found"
    assert names <= exported(), names - exported()
    # and every metric Moonship exports has a panel (the histogram through its buckets)
    histogram = "moonship_tick_to_order_seconds"
    assert exported() - names == {f"{histogram}_sum", f"{histogram}_count"}
