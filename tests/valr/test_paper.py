"""`paper` over `valr`: a TradingEngine whose market takes VALR's live data from the simulator and
simulates its orders; plus the plugin's registration (entry point, seed alias, config validation)."""

from __future__ import annotations

import logging
from typing import Any

import moonship_valr.plugin
import pytest
from exchanges.valr import Participants
from moonship_valr.client import ValrClient, ValrSession, ValrSettings

from moonship_core import (
    ClientContext,
    ConfigError,
    MarketConfig,
    OrderRequest,
    OrderStatus,
    Side,
    StrategyMarket,
)
from moonship_core.config import parse_config, validate_sections
from moonship_core.plugins import Plugins
from moonship_core.testing import LocalPlugin, ScriptedAlgo, build_engine, started, until
from moonship_core.trading.engine import TradingEngine

from .harness import API_KEY, SECRET, D, venue

pytestmark = pytest.mark.anyio


class BidOnce(ScriptedAlgo):
    """Bids one tick under the best ask, post-only, on the first synced book."""

    def opening(self, market: StrategyMarket) -> list[OrderRequest]:
        ask = market.book.best_ask
        return [] if ask is None else [OrderRequest.limit(Side.BUY, D("0.01"), ask - 1, post_only=True)]


def _engine(config: dict[str, Any]) -> TradingEngine:
    return build_engine(config, moonship_valr.plugin, LocalPlugin({"bid_once": BidOnce}))


async def test_paper_trades_on_valr_market_data() -> None:
    async with venue() as (sim, server):
        house = Participants(sim.exchange, "BTCZAR", mid=D(1_000_000))
        house.seed_book(10)
        engine = _engine(
            {
                "valr": {
                    "api_key": API_KEY,
                    "api_secret": SECRET,
                    "rest_url": server.rest_url,
                    "ws_url": server.ws_url,
                },
                "markets": {
                    "btc": {
                        "client": "paper",
                        "real_client": "valr",
                        "symbol": "BTCZAR",
                        "balances": {"ZAR": "100000", "BTC": "0"},
                        "fee_rate": "0.001",
                    }
                },
                "strategies": {"s": {"algo": "bid_once", "auto_start": True, "markets": ["btc"]}},
            }
        )
        try:
            market = engine.markets["btc"]
            (algo,) = await started(engine, "s")
            await until(lambda: algo.placed, what="placed")
            assert algo.placed[0].id.startswith("paper-") and algo.placed[0].price == D(1_000_000)
            assert market.book.best_bid == D(999_999)  # VALR's book, through the valr client
            # a real taker prints through our paper bid: the paper client fills it
            sim.exchange.place(house.account, "BTCZAR", "sell", kind="market", quantity=D(1))
            await until(
                lambda: algo.updates and algo.updates[-1].status is OrderStatus.FILLED, what="paper fill"
            )
            assert algo.updates[-1].filled_quantity == D("0.01")
            assert not any(o.account.name.startswith(API_KEY) for o in sim.exchange.orders.values())
            assert not any(path.startswith("/v2/orders") for _, path in sim.requests)
        finally:
            await engine.stop()
        assert not sim.trade_conns


def test_registered_under_its_name_and_the_seed_alias() -> None:
    plugins = Plugins.load()
    assert plugins.resolve("market_clients", "valr") is ValrClient
    assert plugins.resolve("market_clients", "moonship.client.valr.ValrClient") is ValrClient
    assert ValrClient.settings_model is ValrSettings


def test_config_errors_name_the_property() -> None:
    parsed = parse_config({"moonship": {"valr": {"api_key": "k", "rest_url": "ftp://x"}}})
    plugins = Plugins.load(entry_points=False)
    plugins.register(moonship_valr.plugin, "valr")
    with pytest.raises(ConfigError, match=r"moonship\.valr\.rest_url"):
        validate_sections(parsed, plugins.section_models())
    with pytest.raises(ConfigError, match="api_key and api_secret"):
        _engine({"valr": {"api_key": "k"}, "markets": {"btc": {"client": "valr", "symbol": "BTCZAR"}}})
    with pytest.raises(ConfigError, match=r"moonship\.markets\.btc\.sub_acount: unknown property"):
        _engine({"markets": {"btc": {"client": "valr", "symbol": "BTCZAR", "sub_acount": "1"}}})


def test_the_hub_leaves_the_httpx_logger_to_the_logging_config(monkeypatch: pytest.MonkeyPatch) -> None:
    httpx_log = logging.getLogger("httpx")
    monkeypatch.setattr(httpx_log, "level", logging.NOTSET)
    ValrSession(ValrSettings(), logging.getLogger("moonship.valr"))
    assert httpx_log.level == logging.NOTSET


def test_a_raw_section_given_to_the_client_is_worded_by_the_core() -> None:
    raw = {"rest_url": "ftp://x", "ws_url": None, "api_kye": "k"}
    with pytest.raises(ConfigError) as checked:
        validate_sections(parse_config({"moonship": {"valr": raw}}), {"valr": ValrSettings})
    market = MarketConfig.model_validate({"client": "valr", "symbol": "BTCZAR"})
    context = ClientContext("btc", market, raw, Plugins().resolve)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as unchecked:
        ValrClient(context, None)  # type: ignore[arg-type]
    assert str(unchecked.value) == str(checked.value)
    assert str(unchecked.value) == (
        "moonship.valr.rest_url: must be https or http://host[:port] without a path\n"
        "moonship.valr.ws_url: input should be a valid string\n"
        "moonship.valr.api_kye: unknown property; did you mean api_key?"
    )
