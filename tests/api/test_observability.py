"""GET /metrics (every engine, through the shared cache; a session or the metrics token), GET /health (no
session; 503 with Redis down), GET /alerts and the dashboard's event stream."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from moonship_api.settings import ApiSettings
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from support.servers import redis

from moonship_core import FIRED_ALERTS_KEY, Stores
from moonship_core.config import parse_config
from moonship_core.plugins import Plugins

from .harness import MAIN_STRATEGIES, OTHER_STRATEGIES, Certs, LoopThread, Stack, api_settings, build_stack

TOKEN = "metrics-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture(scope="module")
def metered(loop: LoopThread, certs: Certs) -> Iterator[Stack]:
    """Engines "main" and "other" and an API that takes the metrics token."""
    settings = api_settings(certs, metrics_token=TOKEN)
    engines = {"main": MAIN_STRATEGIES, "other": OTHER_STRATEGIES}
    stack = build_stack(loop, certs, settings=settings, engines=engines)
    stack.wait_for(lambda: len(stack.loop.run(stack.control.strategies({"active": "true"}))) == 2)
    stack.wait_for(lambda: len(stack.loop.run(stack.control.strategies())) == 3)
    yield stack
    stack.stop()


def test_metrics_need_a_session_or_the_metrics_token(metered: Stack) -> None:
    with metered.client() as anonymous:
        assert anonymous.get("/metrics").status_code == 401
    with metered.client("x" * 43) as wrong:
        assert wrong.get("/metrics").status_code == 401
    with metered.client(TOKEN) as prometheus:
        assert prometheus.get("/metrics").status_code == 200
        assert prometheus.get("/strategies").status_code == 401  # the token opens /metrics only
    with metered.client(metered.login()) as session:
        assert session.get("/metrics").status_code == 200


def test_metrics_cover_every_engine(metered: Stack) -> None:
    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with metered.client(TOKEN) as prometheus:
            reply = prometheus.get("/metrics")
        assert reply.headers["content-type"].startswith("text/plain; version=")
        return samples(reply.text)

    other = ("moonship_events_total", (("engine", "other"), ("kind", "book"), ("market", "btc")))
    metered.wait_for(lambda: other in scrape())
    found = scrape()
    assert found[("moonship_engine_up", (("engine", "main"),))] == 1
    assert found[("moonship_engine_up", (("engine", "other"),))] == 1
    assert found[("moonship_strategy_active", (("engine", "main"), ("strategy", "alpha")))] == 1
    assert found[("moonship_strategy_active", (("engine", "main"), ("strategy", "beta")))] == 0
    assert found[("moonship_strategy_active", (("engine", "other"), ("strategy", "gamma")))] == 1
    position = (("engine", "other"), ("market", "btc"), ("strategy", "gamma"))
    assert ("moonship_strategy_position", position) in found
    assert found[("moonship_cache_outages_total", (("engine", "main"),))] == 0
    assert ("moonship_tick_to_order_seconds_count", (("engine", "main"),)) in found
    book = ("moonship_events_total", (("engine", "main"), ("kind", "book"), ("market", "btc")))
    first = found[book]
    metered.wait_for(lambda: scrape()[book] > first)


def test_health_needs_no_session(metered: Stack) -> None:
    with metered.client() as anonymous:
        reply = anonymous.get("/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok"
    assert set(body["engines"]) == {"main", "other"}
    assert body["engines"]["main"]["trading_state"] == "ACTIVE"


def test_alerts_that_fired_are_listed(metered: Stack) -> None:
    key = json.dumps(["spread", "main", "alpha"])
    metered.loop.run(metered.cache.hset(FIRED_ALERTS_KEY, {key: {"time": "2026-12-05T06:00:00+00:00"}}))
    try:
        with metered.client(metered.login()) as session:
            alerts = session.get("/alerts").json()["alerts"]
        assert alerts == [
            {"alert": "spread", "engine": "main", "strategy": "alpha", "time": "2026-12-05T06:00:00+00:00"}
        ]
    finally:
        metered.loop.run(metered.cache.hdel(FIRED_ALERTS_KEY, key))


def test_the_event_stream_sends_the_picture(metered: Stack) -> None:
    with metered.client(metered.login()) as session, session.stream("GET", "/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                picture = json.loads(line.removeprefix("data: "))
                break
    assert {e["name"] for e in picture["engines"]} == {"main", "other"}
    assert {(s["engine"], s["name"]) for s in picture["strategies"]} == {
        ("main", "alpha"), ("main", "beta"), ("other", "gamma")
    }
    assert set(picture["prices"]) == {"main", "other"}
    with metered.client() as anonymous:
        assert anonymous.get("/events").status_code == 401


def test_the_dashboard_is_served_without_a_session(metered: Stack) -> None:
    with metered.client() as anonymous:
        page = anonymous.get("/")
        script = anonymous.get("/static/dashboard.js")
        chart = anonymous.get("/static/uplot.iife.min.js")
    assert page.status_code == 200
    assert 'form id="login"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "data-strategy" in script.text
    assert chart.status_code == 200


def test_a_short_metrics_token_is_a_config_error(certs: Certs) -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        ApiSettings.model_validate(api_settings(certs, metrics_token="short"))


def test_health_answers_503_while_redis_is_down(loop: LoopThread, certs: Certs) -> None:
    server = redis()
    server.start()

    def backend() -> Stores:
        config = parse_config({"moonship": {"redis": {"url": server.url}}})
        return Plugins.load(entry_points=False).stores(config)

    stack = build_stack(loop, certs, engines={"main": {}}, backend=backend)
    try:
        with stack.client() as anonymous:
            assert anonymous.get("/health").status_code == 200
            server.kill()
            reply = anonymous.get("/health")
            assert reply.status_code == 503
            assert reply.json()["status"] == "unavailable"
            server.start()
            stack.wait_for(lambda: anonymous.get("/health").status_code == 200, timeout=15)
    finally:
        stack.stop()
        server.kill()


def test_the_engine_listener_and_the_api_render_the_same_names(metered: Stack) -> None:
    engine = metered.engines[0]
    local = {name for name, _ in samples(engine.prometheus().decode())}
    with metered.client(TOKEN) as prometheus:
        shared = {name for name, _ in samples(prometheus.get("/metrics").text)}
    assert local <= shared
