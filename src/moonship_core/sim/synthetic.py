"""SimClient: an offline, deterministic synthetic market for demos, tests and benchmarks (no network).

The mid price is a seeded random walk; the book is a ladder of levels one to a few ticks apart that follows
it; trades print at the touch and take their quantity off that level. Prices and sizes are held as integer
ticks and lots (floats appear only as random draws), so the same seed gives the same prices and quantities.
Frames are built from the ticks and lots as the texts their JSON carries (each price and size formatted
once, in caches every sim of the process shares), with no Decimal arithmetic per event: a level's change is
noted as its [price, quantity] texts where it happens. They go to the sim's parser as decoded fields, and
are written as JSON text only when recorded (a replay parses that text). Every random draw is one
`random()` call but the mid's Gaussian move (a seed gives another market than before 2026-12-05).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import zlib
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from math import cos, log, sin, sqrt, tau

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..book import WireLevels
from ..config import ROOT, format_errors
from ..contracts.client import ClientContext, MarketClient, MarketEvents
from ..contracts.recording import FRAME, FrameParser, Recorder
from ..errors import ConfigError, ExchangeError
from ..model import Balance, MarketInfo, MarketStatus, Order, OrderRequest, Side, Ticker, Trade

QUOTE_ASSETS = ("USDT", "USDC", "BUSD", "ZAR", "EUR", "USD", "BTC", "ETH")
_SEPARATORS = ("/", "-", "_")
_GAPS = (1, 1, 1, 2, 3)  # ticks between neighbouring levels
_GAP_COUNT = len(_GAPS)
_SLACK = 4  # a side's far end is refilled once a quarter of its levels are gone
_TRADE_CHANCE = 0.5  # per event
_SWEEP_CHANCE = 0.25  # a trade takes the whole touch level
_LEVEL_NOTIONAL_MINIMUMS = 100  # a typical level is worth this many min_notionals
_TEXTS_MAX = 100_000  # cached price (and quantity) texts per sim
_BURST_SECONDS = 0.005  # a wake produces at most this long's worth of the events already due
_WAKE_SECONDS = 0.002  # a faster feed wakes this often and produces the events due (two at 1,000/s)
_NO_ORDERS = "the sim client supplies market data only; trade on it with client: paper and real_client: sim"


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a symbol such as "BTCUSDT", "XBTZAR" or "ETH/BTC"; unknown quotes split 3/3."""
    for sep in _SEPARATORS:
        if sep in symbol:
            base, _, quote = symbol.partition(sep)
            return base, quote
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol[:3], symbol[3:]


#: the keys a sim market's section may hold beside the sim's own: the market's and the paper client's
MARKET_KEYS = ("client", "symbol", "account", "enable_margin", "max_recent_trade_list_size", "candle_period",
               "real_client", "balances", "fee_rate", "maker_fee_rate", "latency_ms")


class SimSettings(BaseModel):
    """The sim's keys of `moonship.markets.NAME`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: default: a stable hash of the symbol
    seed: int | None = None
    #: the mid the random walk starts at
    start_price: Decimal = Field(Decimal(30000), gt=0)
    #: price step
    tick_size: Decimal = Field(Decimal("0.01"), gt=0)
    #: quantity step
    lot_size: Decimal = Field(Decimal("0.00001"), gt=0)
    #: smallest order value, in quote
    min_notional: Decimal = Field(Decimal(5), ge=0)
    #: market events per second
    events_per_second: Decimal = Field(Decimal(20), gt=0)
    #: levels per side (the far end is refilled once fewer than three quarters of them are left)
    levels: int = Field(50, ge=1)
    #: standard deviation of the mid's random walk per event, in basis points
    volatility_bps: Decimal = Field(Decimal(2), ge=0)


class _Texts(dict[int, str]):
    """n -> the text of n x `step` as Decimal's "f" format writes it ("30000.01"), formatted on first use;
    at most _TEXTS_MAX are kept. One per step text, shared by every sim in the process (`_texts`)."""

    __slots__ = ("_step",)

    def __init__(self, step: Decimal) -> None:
        super().__init__()
        self._step = step

    def __missing__(self, n: int) -> str:
        if len(self) >= _TEXTS_MAX:
            self.clear()
        text = self[n] = f"{self._step * n:f}"
        return text


_SHARED_TEXTS: dict[str, _Texts] = {}


def _texts(step: Decimal) -> _Texts:
    """The shared texts of the multiples of `step`, by its text (0.010 x 3 writes 0.030, 0.01 x 3 0.03)."""
    key = str(step)
    if (shared := _SHARED_TEXTS.get(key)) is None:
        shared = _SHARED_TEXTS[key] = _Texts(step)
    return shared


#: one side's changes in a frame: tick -> the [price, quantity] texts it is published as
_Changes = dict[int, tuple[str, str]]


class _Ladder:
    """One side of the sim's own book: tick -> lots, with the ticks kept sorted ascending."""

    __slots__ = ("lots", "prices", "quantities", "ticks")

    def __init__(self, prices: _Texts, quantities: _Texts) -> None:
        self.ticks: list[int] = []
        self.lots: dict[int, int] = {}
        self.prices = prices
        self.quantities = quantities

    def set(self, tick: int, lots: int, changes: _Changes) -> None:
        if lots <= 0:
            if self.lots.pop(tick, None) is not None:
                self.ticks.remove(tick)
                changes[tick] = (self.prices[tick], "0")
            return
        if tick not in self.lots:
            insort(self.ticks, tick)
        self.lots[tick] = lots
        changes[tick] = (self.prices[tick], self.quantities[lots])

    def drop(self, ticks: Iterable[int], changes: _Changes) -> None:
        """Remove the levels at `ticks`; the caller cuts them out of `ticks`."""
        lots, prices = self.lots, self.prices
        for tick in ticks:
            del lots[tick]
            changes[tick] = (prices[tick], "0")

    def wire(self, ticks: Iterable[int]) -> list[tuple[str, str]]:
        """The [price, quantity] texts of the levels at `ticks`."""
        lots, prices, quantities = self.lots, self.prices, self.quantities
        return [(prices[t], quantities[lots[t]]) for t in ticks]


class SimClient(MarketClient):
    """A synthetic market: sequenced book updates, trades and tickers at `events_per_second`."""

    name = "sim"

    def __init__(self, context: ClientContext, events: MarketEvents) -> None:
        super().__init__(context, events)
        try:
            settings = SimSettings.model_validate(context.config.extra)
        except ValidationError as exc:
            path = f"{ROOT}.markets.{context.market_name}"
            # a misspelled key may be meant for the market itself or for the paper client trading over sim
            raise ConfigError(format_errors(exc.errors(), path, SimSettings, MARKET_KEYS)) from None
        self.settings = settings
        symbol = context.symbol
        base, quote = split_symbol(symbol)
        self.info = MarketInfo(
            symbol, base, quote, settings.tick_size, settings.lot_size,
            min_quantity=settings.lot_size, min_notional=settings.min_notional,
        )
        seed = settings.seed if settings.seed is not None else zlib.crc32(symbol.encode())
        self._rng = random.Random(seed)
        self._random = self._rng.random
        self._normal: float | None = None  # the second normal of the last pair drawn
        self._vol = float(settings.volatility_bps) / 10_000
        self._fair = max(1, int((settings.start_price / settings.tick_size).to_integral_value()))
        level_notional = settings.min_notional * _LEVEL_NOTIONAL_MINIMUMS
        self._typical_lots = max(10, int(level_notional / (settings.start_price * settings.lot_size)))
        self._prices = _texts(settings.tick_size)
        self._quantities = _texts(settings.lot_size)
        self._bids = _Ladder(self._prices, self._quantities)  # ticks <= fair
        self._asks = _Ladder(self._prices, self._quantities)  # ticks > fair
        self._sequence = 0
        self._trade_id = 0
        self._trades: deque[Trade] = deque(maxlen=context.config.max_recent_trade_list_size)
        self._last_tick: int | None = None
        self._parser = SimParser(events, symbol, self._trades)
        self._published = False
        self._task: asyncio.Task[None] | None = None
        self._recentre({}, {})

    @classmethod
    def replay_parser(cls, context: ClientContext, events: MarketEvents, info: MarketInfo) -> FrameParser:
        return SimParser(events, context.symbol)

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._published = False  # the market may have a fresh book: start it from a snapshot
        self._task = asyncio.create_task(self._run(), name=f"sim:{self.symbol}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._published:
            self._published = False
            self.events.status(MarketStatus.CLOSED)

    async def _run(self) -> None:
        """One event every 1/events_per_second seconds of the context's clock (simulated time under a
        SimClock). A wake that finds more events due produces them at once, up to _BURST_SECONDS' worth, as
        a socket read hands over every frame that arrived meanwhile: a feed faster than one event per
        _WAKE_SECONDS wakes once per _WAKE_SECONDS (one timer and task switch per wake, not per event), and
        a busy loop that woke it late gets the events due without a wake per event."""
        clock = self.context.clock
        interval = 1 / float(self.settings.events_per_second)
        burst = max(1, int(_BURST_SECONDS / interval))
        gap = _WAKE_SECONDS if interval < _WAKE_SECONDS else 0.0
        step = self.step
        deadline = clock.monotonic()
        try:
            while True:
                step()
                deadline += interval
                now = clock.monotonic()
                for _ in range(burst - 1):
                    if deadline > now:
                        break
                    step()
                    deadline += interval
                delay = deadline - now
                if delay < -1.0:  # far behind (a stalled loop): resume the pace instead of bursting
                    deadline, delay = clock.monotonic(), 0.0
                await clock.sleep(max(delay, gap))
        except Exception:
            self.logger.exception("sim feed of %s failed", self.symbol)
            self.events.status(MarketStatus.CLOSED, "sim feed failed")

    # ------------------------------------------------------------------ the market
    def step(self) -> None:
        """Produce one event: the first one (after construction or a reconnect) publishes the snapshot,
        each later one moves the mid, re-centres the book, changes one level (another participant adds or
        cancels there) and may print a trade at the touch."""
        if not self._published:
            self._publish_snapshot()
            return
        random = self._random
        if self._vol:  # a Gaussian move, drawn as random.gauss draws it (two normals per two draws)
            if (z := self._normal) is None:
                angle, radius = random() * tau, sqrt(-2.0 * log(1.0 - random()))
                z, self._normal = cos(angle) * radius, sin(angle) * radius
            else:
                self._normal = None
            self._fair = max(1, self._fair + round(z * self._fair * self._vol))
        bid_changes: _Changes = {}
        ask_changes: _Changes = {}
        self._recentre(bid_changes, ask_changes)
        ladder, changes = (self._bids, bid_changes) if random() < 0.5 else (self._asks, ask_changes)
        if ticks := ladder.ticks:  # another participant changes an existing level
            tick = ticks[int(random() * len(ticks))]
            ladder.lots[tick] = lots = 1 + int(-log(1.0 - random()) * self._typical_lots)
            changes[tick] = (self._prices[tick], self._quantities[lots])
        self._publish(bid_changes, ask_changes)
        if random() < _TRADE_CHANCE:
            self._trade(random() < 0.5, random())

    def _recentre(self, bid_changes: _Changes, ask_changes: _Changes) -> None:
        """Drop levels the mid moved through, fill the gap to the mid, keep `levels` levels per side (at
        least three quarters of them).
        Each run of levels is cut from or spliced into the sorted tick lists at once (changes are noted in
        the order the levels are met from the end they are taken at); a side the move left alone costs a
        comparison. Sizes are exponential (`1 + int(expovariate(1.0) * typical)`), gaps uniform over _GAPS."""
        fair, n = self._fair, self.settings.levels
        bids, asks = self._bids, self._asks
        bid_ticks, ask_ticks, bid_lots, ask_lots = bids.ticks, asks.ticks, bids.lots, asks.lots
        random, typical, prices, quantities = self._random, self._typical_lots, self._prices, self._quantities
        if bid_ticks and bid_ticks[-1] > fair:
            cut = bisect_right(bid_ticks, fair)
            bids.drop(reversed(bid_ticks[cut:]), bid_changes)
            del bid_ticks[cut:]
        if ask_ticks and ask_ticks[0] <= fair:
            cut = bisect_right(ask_ticks, fair)
            asks.drop(ask_ticks[:cut], ask_changes)
            del ask_ticks[:cut]
        # near the mid: new levels down to the old best bid / up to the old best ask (the touch sits 0 or 1
        # tick from the mid)
        tick, stop = fair - (random() < 0.5), bid_ticks[-1] if bid_ticks else 0
        if tick > stop:
            added: list[int] = []
            while tick > stop and len(added) < n:
                bid_lots[tick] = lots = 1 + int(-log(1.0 - random()) * typical)
                bid_changes[tick] = (prices[tick], quantities[lots])
                added.append(tick)
                tick -= _GAPS[int(random() * _GAP_COUNT)]
            bid_ticks.extend(reversed(added))
        tick = fair + 1 + (random() < 0.5)
        stop = ask_ticks[0] if ask_ticks else tick + n * max(_GAPS) + 1
        if tick < stop:
            added = []
            while tick < stop and len(added) < n:
                ask_lots[tick] = lots = 1 + int(-log(1.0 - random()) * typical)
                ask_changes[tick] = (prices[tick], quantities[lots])
                added.append(tick)
                tick += _GAPS[int(random() * _GAP_COUNT)]
            ask_ticks[:0] = added
        # far from the mid: trim to `levels`; a side the mid's moves cut below `low` levels is extended back
        # to `levels` (in between, the far levels rest as a real book's do, instead of churning every move)
        low = n - n // _SLACK
        if len(bid_ticks) > n:
            cut = len(bid_ticks) - n
            bids.drop(bid_ticks[:cut], bid_changes)
            del bid_ticks[:cut]
        elif bid_ticks and len(bid_ticks) < low:
            added, tick = [], bid_ticks[0]
            while len(bid_ticks) + len(added) < n and (tick := tick - _GAPS[int(random() * _GAP_COUNT)]) > 0:
                bid_lots[tick] = lots = 1 + int(-log(1.0 - random()) * typical)
                bid_changes[tick] = (prices[tick], quantities[lots])
                added.append(tick)
            bid_ticks[:0] = reversed(added)
        if len(ask_ticks) > n:
            asks.drop(reversed(ask_ticks[n:]), ask_changes)
            del ask_ticks[n:]
        elif ask_ticks and len(ask_ticks) < low:
            tick = ask_ticks[-1]
            while len(ask_ticks) < n:
                tick += _GAPS[int(random() * _GAP_COUNT)]
                ask_lots[tick] = lots = 1 + int(-log(1.0 - random()) * typical)
                ask_changes[tick] = (prices[tick], quantities[lots])
                ask_ticks.append(tick)

    def _trade(self, buy: bool, draw: float) -> None:
        """A taker (a buyer if `buy`) takes part or all of the touch level: all of it when `draw` falls
        below _SWEEP_CHANCE, else a uniform 1 to all of its lots."""
        ladder = self._asks if buy else self._bids
        if not (ticks := ladder.ticks):
            return
        tick = ticks[0] if buy else ticks[-1]
        level = ladder.lots[tick]
        sweep = draw < _SWEEP_CHANCE
        lots = level if sweep else 1 + int((draw - _SWEEP_CHANCE) / (1 - _SWEEP_CHANCE) * level)
        self._trade_id += 1
        self._last_tick = tick
        trade_id, price, quantity = str(self._trade_id), self._prices[tick], self._quantities[lots]
        taker = "BUY" if buy else "SELL"
        micros = self.context.clock.epoch_ns() // 1000
        recorder = self.context.recorder
        if recorder is not None:
            frame = {"e": "trade", "i": trade_id, "p": price, "q": quantity, "s": taker, "T": micros}
            self._record(recorder, frame)
        self._parser.trade(trade_id, price, quantity, taker, micros)
        changes: _Changes = {}
        ladder.set(tick, level - lots, changes)
        if buy:
            self._publish({}, changes)
        else:
            self._publish(changes, {})
        bids, asks = self._bids.ticks, self._asks.ticks
        bid = self._prices[bids[-1]] if bids else None
        ask = self._prices[asks[0]] if asks else None
        if recorder is not None:
            self._record(recorder, {"e": "ticker", "b": bid, "a": ask, "l": price, "T": micros})
        self._parser.ticker(bid, ask, price, micros)

    # ------------------------------------------------------------------ publishing: wire frames
    def _record(self, recorder: Recorder, frame: Mapping[str, object]) -> None:
        """Record a frame as sent: its JSON text, which the sim's parser reads back in a replay."""
        recorder.record(FRAME, orjson.dumps(frame).decode(), self.context.clock.epoch_ns())

    def _publish_snapshot(self) -> None:
        self._sequence += 1
        self._published = True
        bids, asks = self._bids, self._asks
        bid_levels, ask_levels = bids.wire(reversed(bids.ticks)), asks.wire(asks.ticks)
        if (recorder := self.context.recorder) is not None:
            self._record(recorder, {"e": "snapshot", "u": self._sequence, "b": bid_levels, "a": ask_levels})
        self._parser.snapshot(bid_levels, ask_levels, self._sequence)

    def _publish(self, bid_changes: _Changes, ask_changes: _Changes) -> None:
        if not (bid_changes or ask_changes):
            return
        self._sequence += 1
        bids, asks = list(bid_changes.values()), list(ask_changes.values())
        if (recorder := self.context.recorder) is not None:
            self._record(recorder, {"e": "depth", "u": self._sequence, "b": bids, "a": asks})
        self._parser.depth(bids, asks, self._sequence)

    def _ticker(self) -> Ticker:
        bids, asks, last = self._bids.ticks, self._asks.ticks, self._last_tick
        return Ticker(
            self.symbol,
            self.settings.tick_size * bids[-1] if bids else None,
            self.settings.tick_size * asks[0] if asks else None,
            None if last is None else self.settings.tick_size * last,
            self.context.clock.now(),
        )

    # ------------------------------------------------------------------ requests
    async def get_market_info(self) -> MarketInfo:
        return self.info

    async def get_ticker(self) -> Ticker:
        return self._ticker()

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        """The last `limit` trades, oldest first."""
        trades = list(self._trades)
        return trades[-limit:] if limit > 0 else []

    async def place_order(self, request: OrderRequest) -> Order:
        raise ExchangeError(_NO_ORDERS)

    async def cancel_order(self, order: Order) -> Order:
        raise ExchangeError(_NO_ORDERS)

    async def get_order(self, order: Order) -> Order:
        raise ExchangeError(_NO_ORDERS)

    async def get_open_orders(self) -> list[Order]:
        raise ExchangeError(_NO_ORDERS)

    async def get_balances(self) -> dict[str, Balance]:
        return {}


class SimParser(FrameParser):
    """The sim's wire: JSON frames `snapshot` and `depth` (sequenced absolute levels), `trade` and `ticker`
    (times in epoch microseconds). Live, the sim hands each frame's decoded fields to the method of its kind
    (and records the frame's text); a replay decodes the text and calls the same method. Trade and ticker
    prices and sizes, which repeat, are converted to Decimal once per text."""

    __slots__ = ("_datetime", "_decimals", "_events", "_micros", "_symbol", "_trades")

    def __init__(self, events: MarketEvents, symbol: str, trades: deque[Trade] | None = None) -> None:
        self._events = events
        self._symbol = symbol
        self._trades = trades
        self._decimals: dict[str, Decimal] = {}
        self._micros = 0
        self._datetime = _EPOCH

    def feed(self, kind: str, data: str) -> None:
        msg = orjson.loads(data)
        event = msg["e"]
        if event == "depth":
            self.depth(msg["b"], msg["a"], msg["u"])
        elif event == "trade":
            self.trade(msg["i"], msg["p"], msg["q"], msg["s"], msg["T"])
        elif event == "ticker":
            self.ticker(msg["b"], msg["a"], msg["l"], msg["T"])
        elif event == "snapshot":
            self.snapshot(msg["b"], msg["a"], msg["u"])

    def depth(self, bids: WireLevels, asks: WireLevels, sequence: int) -> None:
        events = self._events
        events.book.apply_update(bids, asks, sequence, sequence)
        events.book_changed()

    def snapshot(self, bids: WireLevels, asks: WireLevels, sequence: int) -> None:
        events = self._events
        events.book.load_snapshot(bids, asks, sequence)
        events.book_changed()
        events.status(MarketStatus.OPEN)

    def trade(self, trade_id: str, price: str, quantity: str, taker: str, micros: int) -> None:
        decimal, when = self._decimal, self._time(micros)
        trade = Trade(trade_id, self._symbol, decimal(price), decimal(quantity), _SIDES[taker], when)
        if self._trades is not None:
            self._trades.append(trade)
        self._events.trade(trade)

    def ticker(self, bid: str | None, ask: str | None, last: str | None, micros: int) -> None:
        decimal = self._decimal
        self._events.ticker(Ticker(
            self._symbol, None if bid is None else decimal(bid), None if ask is None else decimal(ask),
            None if last is None else decimal(last), self._time(micros),
        ))  # fmt: skip

    def _decimal(self, text: str) -> Decimal:
        decimals = self._decimals
        value = decimals.get(text)
        if value is None:
            if len(decimals) > _TEXTS_MAX:
                decimals.clear()
            value = decimals[text] = Decimal(text)
        return value

    def _time(self, micros: int) -> datetime:
        """The datetime of epoch `micros` (a trade's ticker has its time)."""
        if micros != self._micros:
            self._micros, self._datetime = micros, _EPOCH + timedelta(microseconds=micros)
        return self._datetime


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SIDES = {side.value: side for side in Side}
