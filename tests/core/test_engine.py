"""Engine, market, strategy and control plane working together in memory, over a scripted client."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from moonship_core import (
    ConfigError,
    ControlError,
    ControlPlane,
    EngineUnavailable,
    MarketClient,
    Order,
    OrderRequest,
    OrderStatus,
    Side,
    StrategyMarket,
    Trade,
    TradingAlgo,
    hookimpl,
)
from moonship_core.config import parse_config
from moonship_core.testing import ScriptedClient, build_engine, until
from moonship_core.trading.engine import TradingEngine

D = Decimal


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: Decimal = D("0.5")


class Recorder(TradingAlgo):
    """Buys once on the first book it sees; records everything."""

    settings_model = Settings
    settings: Settings
    seen: dict[str, Recorder] = {}

    async def on_start(self) -> None:
        self.books: list[Decimal | None] = []
        self.orders: list[Order] = []
        self.placed: Order | None = None
        Recorder.seen[self.name] = self

    async def on_order_book(self, market: StrategyMarket) -> None:
        self.books.append(market.book.best_bid)
        if self.placed is None:
            self.placed = await market.place_order(
                OrderRequest.limit(Side.BUY, self.settings.size, D("100.009"))
            )

    async def on_order_update(self, market: StrategyMarket, order: Order) -> None:
        self.orders.append(order)


class Exploder(TradingAlgo):
    async def on_order_book(self, market: StrategyMarket) -> None:
        raise RuntimeError("boom")


class Quitter(TradingAlgo):
    """An algo that calls sys.exit in a callback."""

    async def on_order_book(self, market: StrategyMarket) -> None:
        raise SystemExit(3)


class Sleeper(TradingAlgo):
    """A strategy slower than the feed."""

    seen: list[Decimal | None] = []

    async def on_order_book(self, market: StrategyMarket) -> None:
        Sleeper.seen.append(market.book.best_bid)
        await asyncio.sleep(0.05)


class Tape(TradingAlgo):
    """Reads the public trades (and nothing else)."""

    seen: list[Trade] = []

    async def on_trade(self, market: StrategyMarket, trade: Trade) -> None:
        Tape.seen.append(trade)


class TestPlugin:
    @hookimpl
    def moonship_market_clients(self) -> dict[str, type[MarketClient]]:
        return {"scripted": ScriptedClient}

    @hookimpl
    def moonship_algos(self) -> dict[str, type[TradingAlgo]]:
        return {"recorder": Recorder, "exploder": Exploder, "sleeper": Sleeper, "quitter": Quitter,
                "tape": Tape}


def make_engine(strategies: dict[str, Any], name: str = "main") -> tuple[TradingEngine, ControlPlane]:
    ScriptedClient.instances.clear()
    moonship = {
        "engine": {"name": name},
        "markets": {"btc": {"client": "scripted", "symbol": "BTCUSDT"}},
        "strategies": strategies,
    }
    engine = build_engine(moonship, TestPlugin())
    return engine, engine.context.control




def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def test_strategy_trades_and_tracks_fills_and_profit() -> None:
    async def main() -> None:
        engine, control = make_engine({"s1": {"algo": "recorder", "auto_start": True, "markets": ["btc"]}})
        await engine.start()
        try:
            algo = Recorder.seen["s1"]
            await until(lambda: algo.placed is not None)
            client = ScriptedClient.instances[0]
            sent = client.placed[0]
            assert sent.price == D("100.00")  # a buy is rounded down to the tick
            assert sent.quantity == D("0.500")
            assert algo.placed is not None
            await until(lambda: len(algo.orders) == 1)
            assert algo.orders[0].status is OrderStatus.PENDING  # the acknowledgement
            order = client.fill(algo.placed, "100.00", "0.2", fee="0.02")
            await until(lambda: len(algo.orders) == 2)
            assert algo.orders[1].status is OrderStatus.PARTIALLY_FILLED
            client.fill(order, "100.00", "0.3", fee="0.03")
            await until(lambda: len(algo.orders) == 3)
            # a duplicate (replayed) update is not delivered twice
            client.events.order_update(algo.orders[-1])
            client.events.order_update(algo.orders[1])
            await asyncio.sleep(0.02)
            assert len(algo.orders) == 3 and algo.orders[-1].status is OrderStatus.FILLED
            # sell half at a profit: realised (110 - 100.1) * 0.25 - fee 0.0275
            sell = await engine.strategies["s1"].algo.market.place_order(  # type: ignore[union-attr]
                OrderRequest.limit(Side.SELL, D("0.25"), D("110.001"))
            )
            assert client.placed[-1].price == D("110.01")  # a sell is rounded up to the tick
            client.fill(sell, "110.00", "0.25", fee="0.0275")
            await until(lambda: len(algo.orders) == 5)
            await until(lambda: engine.strategies["s1"].info()["total_profit"] != 0)
            info = engine.strategies["s1"].info()
            assert info["position"] == D("0.25")
            assert info["total_profit"] == D("2.4475")
            assert info["last_trade_profit"] == D("2.4475")
            await asyncio.sleep(0.3)  # one publish interval
            cached = await control.strategy("main", "s1")
            assert cached["active"] is True and cached["total_profit"] == "2.4475"
            assert cached["config"]["algo"] == "recorder" and cached["config"]["markets"] == ["btc"]
            assert cached["fees"] == {"USDT": "0.0775"} and cached["open_orders"] == 0
            # the journal, through the control plane: newest first, decimals as exact text
            orders = await control.orders("main", strategy="s1")
            assert [(o["side"], o["status"], o["filled_quantity"]) for o in orders] == [
                ("SELL", "FILLED", "0.25"), ("BUY", "FILLED", "0.5")
            ]
            assert orders[0]["engine"] == "main" and orders[0]["market"] == "btc"
            assert orders[1]["average_price"] == "100.00" and orders[1]["fees"] == {"USDT": "0.05"}
            assert await control.orders(status="open") == []
            fills = await control.fills("main", limit=2)
            assert [(f["side"], f["quantity"], f["fee"]) for f in fills] == [
                ("SELL", "0.25", "0.0275"), ("BUY", "0.3", "0.03")
            ]
        finally:
            await engine.stop()
        assert engine.strategies["s1"].info()["active"] is False

    run(main)


def test_journal_queries_are_checked() -> None:
    async def main() -> None:
        engine, control = make_engine({})
        await engine.start()
        try:
            for query, problem in [
                ({"limit": 0}, "Bad limit"), ({"limit": "5"}, "Bad limit"),
                ({"since": "yesterday"}, "Bad since"), ({"status": "done"}, "Bad status"),
                ({"sort": "price"}, "Unknown query field: sort"),
            ]:
                with pytest.raises(ControlError, match=problem) as err:
                    await control.orders("main", **query)
                assert err.value.status == 400
            with pytest.raises(ControlError, match="Unknown query field: status"):
                await control.fills("main", status="open")
            assert await control.fills("main", since="2020-01-01T00:00:00") == []
        finally:
            await engine.stop()

    run(main)


def test_market_refuses_orders_below_minimums_before_the_client() -> None:
    async def main() -> None:
        engine, _ = make_engine({"s1": {"algo": "recorder", "markets": ["btc"]}})
        await engine.start()
        try:
            market = engine.markets["btc"]
            await market.open()
            client = ScriptedClient.instances[0]
            lot = await market.place_order(OrderRequest.limit(Side.BUY, D("0.0009"), D("100")))
            assert (lot.status, lot.error) == (OrderStatus.REJECTED, "InvalidOrder")
            assert lot.reason is not None and lot.reason.startswith("lot_size: ")
            small = await market.place_order(OrderRequest.limit(Side.BUY, D("0.05"), D("100")))
            assert (small.status, small.error) == (OrderStatus.REJECTED, "InvalidOrder")
            assert small.reason is not None and small.reason.startswith("min_notional: ")
            assert client.placed == []
        finally:
            await engine.stop()

    run(main)


@pytest.mark.parametrize(("algo", "reason"), [("exploder", "boom"), ("quitter", "SystemExit(3)")])
def test_raising_strategy_is_stopped_with_reason_and_others_go_on(algo: str, reason: str) -> None:
    async def main() -> None:
        engine, _ = make_engine(
            {
                "bad": {"algo": algo, "auto_start": True, "markets": ["btc"]},
                "good": {"algo": "recorder", "auto_start": True, "markets": ["btc"], "size": "0.2"},
            }
        )
        await engine.start()
        try:
            await until(lambda: not engine.strategies["bad"].active)
            assert reason in (engine.strategies["bad"].stop_reason or "")
            client = ScriptedClient.instances[0]
            client.move("99.50", "100.50", 2)
            await until(lambda: D("99.50") in Recorder.seen["good"].books)
            assert engine.strategies["good"].active
        finally:
            await engine.stop()

    run(main)


def test_slow_strategy_sees_conflated_latest_book() -> None:
    async def main() -> None:
        Sleeper.seen.clear()
        engine, _ = make_engine({"slow": {"algo": "sleeper", "auto_start": True, "markets": ["btc"]}})
        await engine.start()
        try:
            client = ScriptedClient.instances[0]
            for i in range(150):
                client.move(str(D("99.01") + D("0.01") * i), "200.00", 2 + i)
                if i % 20 == 0:
                    await asyncio.sleep(0)
            last = D("99.01") + D("0.01") * 149
            await until(lambda: Sleeper.seen and Sleeper.seen[-1] == last)
            assert len(Sleeper.seen) < 40  # 150 updates, a handful of callbacks
            assert len(engine.strategies["slow"].mailbox.queue) == 0
        finally:
            await engine.stop()

    run(main)


def test_events_wake_only_strategies_with_a_callback_for_them() -> None:
    """A trade reaches the strategy whose algo has on_trade; it never enters the mailbox of one that only
    has on_order_book (TradingAlgo's own on_trade does nothing), which still sees every book."""

    async def main() -> None:
        Tape.seen.clear()
        Sleeper.seen.clear()
        engine, _ = make_engine({
            "tape": {"algo": "tape", "auto_start": True, "markets": ["btc"]},
            "books": {"algo": "sleeper", "auto_start": True, "markets": ["btc"]},
        })  # fmt: skip
        await engine.start()
        try:
            await until(lambda: len(Sleeper.seen) == 1)
            client = ScriptedClient.instances[0]
            now = engine.context.clock.now()
            for i in range(3):
                client.events.trade(Trade(str(i), "BTCUSDT", D("100"), D("1"), Side.BUY, now))
            books = engine.strategies["books"].mailbox
            assert (list(books.queue), books.trades) == ([], 0)
            assert [kind for kind, _, _ in engine.strategies["tape"].mailbox.queue] == ["trade"] * 3
            await until(lambda: [t.id for t in Tape.seen] == ["0", "1", "2"])
            client.move("99.50", "100.50", 2)
            await until(lambda: D("99.50") in Sleeper.seen)
        finally:
            await engine.stop()

    run(main)


def test_commands_add_update_start_stop_remove() -> None:
    async def main() -> None:
        engine, control = make_engine({})
        await engine.start()
        try:
            info = await control.add("main", "s2", {"algo": "recorder", "markets": ["btc"], "size": "0.3"})
            assert info["active"] is False and info["config"]["size"] == "0.3"
            with pytest.raises(ControlError) as err:
                await control.add("main", "s2", {"algo": "recorder", "markets": ["btc"]})
            assert err.value.status == 400
            with pytest.raises(ControlError) as err:
                await control.add("main", "s3", {"algo": "recorder", "markets": ["eth"]})
            assert err.value.status == 400 and "unknown market 'eth'" in str(err.value)
            with pytest.raises(ControlError) as err:
                await control.add("main", "s3", {"algo": "recorder", "markets": ["btc"], "sise": 1})
            assert "moonship.strategies.s3.sise: unknown property" in str(err.value)
            await control.start("main", "s2")
            assert engine.strategies["s2"].active
            await control.update("main", "s2", {"size": "0.4"})
            assert engine.strategies["s2"].active  # restarted after the update
            assert engine.strategies["s2"].settings.size == D("0.4")  # type: ignore[attr-defined]
            await control.stop("main", "s2")
            assert not engine.strategies["s2"].active
            assert engine.strategies["s2"].stop_reason == "stopped by command"
            # a command replies once its state is in the cache: no wait for the publisher
            listed = await control.strategies({"engine": "main", "active": "false"})
            assert [s["name"] for s in listed] == ["s2"]
            assert await control.strategies({"active": "true"}) == []
            await control.remove("main", "s2")
            assert "s2" not in engine.strategies
            with pytest.raises(ControlError) as err:
                await control.strategy("main", "s2")
            assert err.value.status == 404
            with pytest.raises(ControlError) as err:
                await control.start("main", "nope")
            assert err.value.status == 404
            with pytest.raises(EngineUnavailable):
                await control.start("other", "s2")
        finally:
            await engine.stop()

    run(main)


def test_retried_command_runs_once() -> None:
    async def main() -> None:
        engine, control = make_engine({})
        await engine.start()
        try:
            config = {"algo": "recorder", "markets": ["btc"]}
            first = await control.send("main", "add", "s9", config, command_id="abc")
            again = await control.send("main", "add", "s9", config, command_id="abc")
            assert first == again  # not "already exists": the retry got the first reply
            with pytest.raises(ControlError):
                await control.send("main", "add", "s9", config, command_id="def")
        finally:
            await engine.stop()

    run(main)


def test_unknown_algo_and_client_name_the_property() -> None:
    with pytest.raises(ConfigError, match=r"moonship.strategies.s1.algo: .*nope"):
        make_engine({"s1": {"algo": "nope", "markets": ["btc"]}})
    with pytest.raises(ConfigError, match=r"moonship.strategies.s1.size: "):
        make_engine({"s1": {"algo": "recorder", "markets": ["btc"], "size": "lots"}})


def test_order_update_for_unknown_order_is_ignored() -> None:
    async def main() -> None:
        engine, _ = make_engine({})
        await engine.start()
        try:
            market = engine.markets["btc"]
            await market.open()
            stray = Order(
                "x",
                "someone-else",
                "BTCUSDT",
                Side.BUY,
                dataclasses.replace(OrderRequest.limit(Side.BUY, D(1), D(1))).type,
                OrderStatus.FILLED,
                created=engine.clock.now(),
                updated=engine.clock.now(),
            )
            ScriptedClient.instances[0].events.order_update(stray)
            assert market.open_orders() == []
        finally:
            await engine.stop()

    run(main)


def test_paper_quoter_without_funds_keeps_running_on_rejections(caplog: pytest.LogCaptureFixture) -> None:
    """A paper account that cannot pay for a quote rejects it; the quoter hears REJECTED and goes on quoting
    (it used to stop on the first InsufficientFunds)."""

    def rejections() -> list[str]:
        return [r.getMessage() for r in caplog.records if "REJECTED" in r.getMessage()]

    async def main() -> None:
        config = parse_config(
            {
                "moonship": {
                    "engine": {"name": "broke"},
                    "markets": {
                        "btc": {
                            "client": "paper", "real_client": "sim", "symbol": "BTCUSDT", "seed": 3,
                            "events_per_second": 200, "balances": {"USDT": "1"},
                        }
                    },
                    "strategies": {
                        "q": {
                            "algo": "spread_quoter", "auto_start": True, "markets": ["btc"],
                            "trade_quantity": "0.01", "spread_bps": 2,
                        }
                    },
                }
            }
        )
        engine = TradingEngine.embedded(config)
        await engine.start()
        try:
            await until(lambda: len(rejections()) >= 4)
            assert all("(InsufficientFunds: " in line for line in rejections())
            assert engine.strategies["q"].active and engine.strategies["q"].stop_reason is None
        finally:
            await engine.stop()

    with caplog.at_level("WARNING", "moonship.market"):
        run(main)


def test_fills_after_a_stop_are_still_booked() -> None:
    """A strategy stops while its order rests; the order fills afterwards: the fill is booked to the stopped
    strategy's position and journaled (it used to be lost with the mailbox)."""

    async def main() -> None:
        engine, control = make_engine({"s1": {"algo": "recorder", "auto_start": True, "markets": ["btc"]}})
        await engine.start()
        try:
            algo = Recorder.seen["s1"]
            await until(lambda: algo.placed is not None and len(algo.orders) == 1)
            assert algo.placed is not None
            await control.stop("main", "s1")
            client = ScriptedClient.instances[0]
            client.fill(algo.placed, "100.00", "0.5", fee="0.05")
            strategy = engine.strategies["s1"]
            assert not strategy.active and strategy.positions["btc"].quantity == D("0.5")
            assert strategy.info()["fees"] == {"USDT": D("0.05")} and len(algo.orders) == 1  # not delivered
            fills = await control.fills("main", strategy="s1")
            assert [(f["quantity"], f["price"]) for f in fills] == [("0.5", "100.00")]
        finally:
            await engine.stop()

    run(main)
