"""Replay: a recording fed through each recorded venue's own parser (`MarketClient.replay_parser`) under a
SimClock that jumps to each input's receive time. No sleeps, no network.

`Replay` drives the time: before each input it wakes the clock's sleepers that are due (an order's latency,
an algo's timer) in time order, and after each it lets the event loop run until nothing more is ready, so
every strategy sees the market exactly as it stood after that input (inputs received at the same instant,
as the sim's under a SimClock, are delivered together, as live). `ReplayClient` is the market-data client
that a replayed market (or the paper client over it) gets in place of the venue's.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Iterator, Mapping
from itertools import repeat

from ..clock import SimClock, from_epoch_ns
from ..contracts.client import ClientContext, MarketClient, MarketEvents
from ..contracts.recording import FrameParser
from ..errors import ConfigError, ExchangeError
from ..model import Balance, MarketInfo, Order, OrderRequest, Ticker, Trade
from ..record.reader import Recording

#: the key of the running Replay in ClientContext.shared
REPLAY = "replay"
#: loop turns after one input before the replay gives up waiting for the loop to go quiet (a busy algo)
MAX_TURNS = 10_000
_NO_ORDERS = "a replayed market supplies market data only; its orders go to the paper client over it"

_Entry = tuple[int, str, str, str]  # (receive ns, market, kind, data)


class Replay:
    """Feeds `recording` to the markets whose clients attach, in receive-time order across markets."""

    def __init__(
        self, recording: Recording, clock: SimClock, venues: Mapping[str, type[MarketClient]]
    ) -> None:
        self.recording = recording
        self.clock = clock
        #: the venue's own client class by venue name (whose replay_parser parses its recordings)
        self.venues = venues
        self.parsers: dict[str, FrameParser] = {}
        self.events = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        streams = [_tagged(name, m.inputs()) for name, m in recording.markets.items()]
        self._inputs: Iterator[_Entry] = heapq.merge(*streams, key=lambda entry: entry[0])
        self._next: _Entry | None = next(self._inputs, None)

    def attach(self, market: str, parser: FrameParser) -> None:
        self.parsers[market] = parser

    def detach(self, market: str) -> None:
        self.parsers.pop(market, None)

    @property
    def next_ns(self) -> int | None:
        """The receive time of the next input (None at the end)."""
        return None if self._next is None else self._next[0]

    async def run(
        self,
        until_ns: int | None = None,
        *,
        count: bool = True,
        progress: Callable[[int], None] | None = None,
        every: int = 10_000,
    ) -> None:
        """Feed the inputs received up to `until_ns` (all by default); `count` them as the replay's events
        (not while warming up); `progress(events)` every `every` events."""
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)  # asyncio's queue of ready callbacks (None on other loops)
        parsers = self.parsers
        entry = self._next
        while entry is not None and (until_ns is None or entry[0] <= until_ns):
            ns, market, kind, data = entry
            await self._advance(ns)
            parser = parsers.get(market)
            if parser is not None:
                parser.feed(kind, data)
                if count:
                    self.events += 1
                    if self.first_ns is None:
                        self.first_ns = ns
                    self.last_ns = ns
                    if progress is not None and not self.events % every:
                        progress(self.events)
            entry = self._next = next(self._inputs, None)
            # inputs received at the same instant are one delivery: the loop runs after the last of them
            if (entry is None or entry[0] != ns) and (ready is None or ready):
                await _settle(ready)
        if until_ns is not None:
            await self._advance(until_ns)

    async def finish(self, work: Awaitable[None]) -> None:
        """Await `work` (the engine stopping) past the recording's end: simulated time moves on from one
        sleeper's deadline to the next (a cancel's latency) until it is done."""
        task = asyncio.ensure_future(work)
        while not task.done():
            await asyncio.wait((task,), timeout=0.001)
            wakeup = self.clock.next_wakeup
            if wakeup is not None and not task.done():
                self.clock.advance_to(wakeup)
        task.result()

    async def _advance(self, ns: int) -> None:
        """Move the clock to `ns`, waking what sleeps until then in time order."""
        clock = self.clock
        target = from_epoch_ns(ns)
        wakeup = clock.next_wakeup
        while wakeup is not None and wakeup <= target:
            clock.advance_to(wakeup)
            await _settle(getattr(asyncio.get_running_loop(), "_ready", None))
            wakeup = clock.next_wakeup
        clock.advance_to(target)


async def _settle(ready: object) -> None:
    """Let the loop run until no callback is ready (a fixed number of turns on a loop that does not say)."""
    if ready is None:
        for _ in range(20):
            await asyncio.sleep(0)
        return
    turns = 0
    await asyncio.sleep(0)
    while ready and turns < MAX_TURNS:
        await asyncio.sleep(0)
        turns += 1


def _tagged(market: str, inputs: Iterator[tuple[int, str, str]]) -> Iterator[_Entry]:
    for (ns, kind, data), name in zip(inputs, repeat(market)):
        yield ns, name, kind, data


class ReplayClient(MarketClient):
    """A recorded market's data, fed by the engine's Replay through the recorded venue's parser."""

    name = "replay"

    def __init__(self, context: ClientContext, events: MarketEvents) -> None:
        super().__init__(context, events)
        self._source: tuple[Replay, MarketInfo, FrameParser] | None = None

    def _recorded(self) -> tuple[Replay, MarketInfo, FrameParser]:
        """The engine's replay, the market's rules and its parser (looked up once, when the market opens)."""
        if self._source is not None:
            return self._source
        context = self.context
        replay = context.shared.get(REPLAY)
        if not isinstance(replay, Replay):
            raise ConfigError("the replay client runs only in a backtest (moonship backtest)")
        recorded = replay.recording.markets.get(context.market_name)
        if recorded is None:
            raise ConfigError(
                f"market {context.market_name} is not in the recording {replay.recording.directory} "
                f"(it holds {', '.join(sorted(replay.recording.markets)) or 'none'})"
            )
        if recorded.symbol != context.symbol:
            raise ConfigError(
                f"market {context.market_name} is {context.symbol}, the recording's is {recorded.symbol}"
            )
        if recorded.info is None:
            raise ConfigError(f"the recording has no market rules for {context.market_name}")
        parser = replay.venues[recorded.venue].replay_parser(context, self.events, recorded.info)
        self._source = (replay, recorded.info, parser)
        return self._source

    async def connect(self) -> None:
        replay, _, parser = self._recorded()
        replay.attach(self.context.market_name, parser)

    async def close(self) -> None:
        if self._source is not None:
            self._source[0].detach(self.context.market_name)

    async def get_market_info(self) -> MarketInfo:
        return self._recorded()[1]

    async def get_ticker(self) -> Ticker:
        book = self.events.book
        return Ticker(self.symbol, book.best_bid, book.best_ask, None, self.context.clock.now())

    async def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        return []

    async def place_order(self, request: OrderRequest) -> Order:
        raise ExchangeError(_NO_ORDERS)

    async def cancel_order(self, order: Order) -> Order:
        raise ExchangeError(_NO_ORDERS)

    async def get_order(self, order: Order) -> Order:
        raise ExchangeError(_NO_ORDERS)

    async def get_open_orders(self) -> list[Order]:
        return []

    async def get_balances(self) -> dict[str, Balance]:
        return {}
