"""Replay: a recording fed through each recorded venue's own parser (`MarketClient.replay_parser`) under a
SimClock that jumps to each input's receive time. No sleeps, no network.

`Replay` drives the time: before each input it wakes the clock's sleepers that are due (an order's latency,
an algo's timer) in time order, and after each it runs what became ready until nothing more is, so every
strategy sees the market exactly as it stood after that input (inputs received at the same instant, as the
sim's under a SimClock, are delivered together, as live). What became ready runs from inside the replay's
task, first in first out as the event loop's own turns would run it, without a loop turn per input (see
`_run_ready`); the loop itself gets a turn every `YIELD_EVERY` inputs. A strategy waiting for the market
while nothing else is pending is not woken on its task: its wake-up is deferred (`defer`, the pump of its
Mailbox) and its callbacks run inline in that same order, a task switch saved per input. `ReplayClient` is
the market-data client that a replayed market (or the paper client over it) gets in place of the venue's.
"""

from __future__ import annotations

import asyncio
import heapq
from asyncio.tasks import _enter_task, _leave_task
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from itertools import repeat
from typing import Any, Protocol

from ..clock import SimClock
from ..contracts.client import ClientContext, MarketClient, MarketEvents
from ..contracts.recording import FrameParser
from ..errors import ConfigError, ExchangeError
from ..model import Balance, MarketInfo, Order, OrderRequest, Ticker, Trade
from ..record.reader import Recording

#: the key of the running Replay in ClientContext.shared
REPLAY = "replay"
#: callbacks (or loop turns) run after one input before the replay moves on without waiting for quiet
#: (a busy algo)
MAX_STEPS = 10_000
#: inputs between two turns of the event loop itself (its timers and I/O; trading time is the SimClock's)
YIELD_EVERY = 1000
_NO_ORDERS = "a replayed market supplies market data only; its orders go to the paper client over it"

_Entry = tuple[int, str, str, str]  # (receive ns, market, kind, data)


class Deliverable(Protocol):
    """A strategy's mailbox whose wake-up the replay took (see strategy.Mailbox)."""

    def deliver(self) -> None:
        """Run the strategy's pending callbacks now."""

    def resume(self) -> None:
        """Wake the strategy on its task instead."""


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
        self._inputs: Iterator[_Entry] = (
            streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda entry: entry[0])
        )
        self._next: _Entry | None = next(self._inputs, None)
        #: strategies waiting for an inline delivery, in the order they were woken
        self._deferred: deque[Deliverable] = deque()
        #: the loop's ready callbacks while run() feeds (deferring is possible), else None
        self._ready: deque[asyncio.Handle] | None = None

    def attach(self, market: str, parser: FrameParser) -> None:
        self.parsers[market] = parser

    def detach(self, market: str) -> None:
        self.parsers.pop(market, None)

    def defer(self, mailbox: Deliverable) -> bool:
        """Take the wake-up of a strategy waiting for the market, to deliver it inline when what the input
        readied runs: only while nothing else is pending, so it runs where the loop would have run it."""
        ready = self._ready
        if ready is None or ready:
            return False
        self._deferred.append(mailbox)
        return True

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
        settle, self._ready = self._settler()
        try:
            await self._feed(until_ns, count, progress, every, settle)
            if until_ns is not None:
                await self._advance(until_ns, settle)
        finally:
            self._ready = None
            deferred = self._deferred
            while deferred:  # left by a busy algo (MAX_STEPS): its task takes over
                deferred.popleft().resume()

    async def _feed(
        self,
        until_ns: int | None,
        count: bool,
        progress: Callable[[int], None] | None,
        every: int,
        settle: Callable[[], Awaitable[None]],
    ) -> None:
        clock = self.clock
        parsers = self.parsers
        inputs = self._inputs
        entry = self._next
        ready = self._ready
        deferred = self._deferred
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        fed = 0
        while entry is not None and (until_ns is None or entry[0] <= until_ns):
            ns, market, kind, data = entry
            wakeup = clock.next_wakeup_ns
            if wakeup is not None and wakeup <= ns:
                await self._advance(ns, settle)
            else:
                clock.advance_to_ns(ns)
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
            entry = self._next = next(inputs, None)
            # inputs received at the same instant are one delivery: what they readied runs after the last
            if entry is None or entry[0] != ns:
                fed += 1
                if ready is None:
                    await settle()
                elif ready or deferred:
                    _run_ready(loop, task, ready, deferred)  # settle() without a coroutine per input
                if not fed % YIELD_EVERY:
                    self._ready = None  # the loop runs what the turns ready: no deferring meanwhile
                    await _turns()
                    self._ready = ready

    async def finish(self, work: Awaitable[None]) -> None:
        """Await `work` (the engine stopping) past the recording's end: simulated time moves on from one
        sleeper's deadline to the next (a cancel's latency) until it is done."""
        task = asyncio.ensure_future(work)
        while not task.done():
            await asyncio.wait((task,), timeout=0.001)
            wakeup = self.clock.next_wakeup_ns
            if wakeup is not None and not task.done():
                self.clock.advance_to_ns(wakeup)
        task.result()

    def _settler(self) -> tuple[Callable[[], Awaitable[None]], deque[asyncio.Handle] | None]:
        """How the running replay task runs what became ready until nothing more is (inline on asyncio's own
        loop, whose queue of ready callbacks it can see, by loop turns on another), and that queue."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        ready: deque[asyncio.Handle] | None = getattr(loop, "_ready", None)
        if ready is None or task is None:
            return _turns, None
        deferred = self._deferred

        async def settle() -> None:
            if ready or deferred:
                _run_ready(loop, task, ready, deferred)

        return settle, ready

    async def _advance(self, ns: int, settle: Callable[[], Awaitable[None]]) -> None:
        """Move the clock to `ns`, waking what sleeps until then in time order."""
        clock = self.clock
        wakeup = clock.next_wakeup_ns
        while wakeup is not None and wakeup <= ns:
            clock.advance_to_ns(wakeup)
            await settle()
            wakeup = clock.next_wakeup_ns
        clock.advance_to_ns(ns)


def _run_ready(
    loop: asyncio.AbstractEventLoop,
    task: asyncio.Task[Any],
    ready: deque[asyncio.Handle],
    deferred: deque[Deliverable],
) -> None:
    """Run the loop's ready callbacks (a woken strategy's step, an order's continuation) and the deferred
    deliveries from inside `task`, first in first out as the loop's turns would, until none is left: a
    delivery is deferred only while no callback is ready, so the deferred all come before the ready. `task`
    steps aside as the current task meanwhile, so each runs as the task it belongs to; `MAX_STEPS` bounds a
    busy algo."""
    _leave_task(loop, task)
    try:
        for _ in range(MAX_STEPS):
            if deferred:
                deferred.popleft().deliver()
            elif ready:
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
            else:
                break
    finally:
        _enter_task(loop, task)


async def _turns() -> None:
    """Let the loop turn until no callback is ready (a fixed number of turns on a loop that does not say)."""
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    if ready is None:
        for _ in range(20):
            await asyncio.sleep(0)
        return
    await asyncio.sleep(0)
    for _ in range(MAX_STEPS):
        if not ready:
            break
        await asyncio.sleep(0)


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
