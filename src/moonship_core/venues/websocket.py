"""ReconnectingWebSocket: one venue connection kept alive (keepalive ping/pong, data watchdog, jittered
backoff, pre-emptive reconnect), over a Transport (venues/transport.py): picows where it is installed, else
the pure-Python `websockets`; MOONSHIP_WS_TRANSPORT (`picows` or `websockets`) chooses."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
from collections.abc import Awaitable, Callable, Mapping

from ..backoff import Backoff
from ..clock import Clock, LiveClock
from .transport import Connection, Frame, Transport

#: a raw frame and its receive time (ns since the epoch, from the injected clock)
FrameTap = Callable[[Frame, int], None]
#: the environment variable that picks the default transport: `picows` or `websockets`
TRANSPORT_ENV = "MOONSHIP_WS_TRANSPORT"


def default_transport() -> Transport:
    """picows when it is importable, else websockets; MOONSHIP_WS_TRANSPORT (`picows` or `websockets`)
    chooses."""
    choice = os.environ.get(TRANSPORT_ENV, "").strip().lower()
    if choice not in ("", "picows", "websockets"):
        raise ValueError(f"{TRANSPORT_ENV} must be picows or websockets, not {choice!r}")
    if choice == "websockets" or (not choice and importlib.util.find_spec("picows") is None):
        from .websockets_transport import WebsocketsTransport

        return WebsocketsTransport()
    from .picows_transport import PicowsTransport

    return PicowsTransport()


class SilenceWatch:
    """Calls `on_silent(seconds)` once when nothing has `touch`ed it for `timeout` seconds while armed.

    `touch()` is the hot path (one clock read); it also restores the base timeout. After firing it stays
    quiet until touched or re-armed; `arm(timeout)` restarts the count from now, optionally with a longer
    timeout (probing backoff)."""

    def __init__(
        self, timeout: float, on_silent: Callable[[float], None], *, clock: Clock | None = None
    ) -> None:
        self.base_timeout = timeout
        self.timeout = timeout
        self.on_silent = on_silent
        self.clock = clock or LiveClock()
        self._monotonic = self.clock.monotonic
        self.last = self._monotonic()
        self.fired = False
        self._task: asyncio.Task[None] | None = None

    def touch(self) -> None:
        self.last = self._monotonic()
        if self.fired or self.timeout != self.base_timeout:
            self.fired = False
            self.timeout = self.base_timeout

    def arm(self, timeout: float | None = None) -> None:
        """Start (or restart) watching from now, with `timeout` (the base timeout by default)."""
        self.timeout = timeout if timeout is not None else self.base_timeout
        self.last = self.clock.monotonic()
        self.fired = False
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def disarm(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _watch(self) -> None:
        clock = self.clock
        while True:
            wait = self.last + self.timeout - clock.monotonic()
            if wait > 0 or self.fired:
                await clock.sleep(wait if wait > 0 else self.timeout)
                continue
            self.fired = True
            self.on_silent(clock.monotonic() - self.last)


#: a quiet market is probed at most every this many silence timeouts
MAX_PROBE_BACKOFF = 16


class SilenceProbe:
    """One market's silent-feed handling: a SilenceWatch (`touch()` on every book update) whose silence runs
    `on_silence(seconds)` at once (the venue marks an active market UNSYNCED and says whether it was active,
    counted in `silences`), then the venue's async `probe()`: one at a time, and none while `busy()` (e.g.
    a book sync is under way); those silences only re-arm the watch. The probe calls `quiet()` when the
    venue shows the market merely quiet: the next probe waits twice as long, up to MAX_PROBE_BACKOFF
    timeouts (no reconnect storm), until an update restores the base timeout."""

    def __init__(
        self,
        timeout: float,
        on_silence: Callable[[float], bool],
        probe: Callable[[], Awaitable[None]],
        *,
        busy: Callable[[], bool] | None = None,
        clock: Clock | None = None,
        name: str | None = None,
    ) -> None:
        self.watch = SilenceWatch(timeout, self._on_silent, clock=clock)
        self.touch = self.watch.touch
        self._on_silence = on_silence
        self._probe = probe
        self._busy = busy
        self._name = name
        #: silences noticed on an active market, probes that found a quiet market (metrics)
        self.silences = 0
        self.quiet_probes = 0
        self._task: asyncio.Task[None] | None = None

    def arm(self) -> None:
        """Start watching (the feed's stream is flowing)."""
        self.watch.arm()

    def quiet(self) -> None:
        """The probe found the market quiet, its book still right: back off the next probe."""
        self.quiet_probes += 1
        watch = self.watch
        watch.arm(min(watch.timeout * 2, watch.base_timeout * MAX_PROBE_BACKOFF))

    def cancel(self) -> None:
        """Stop watching and probing (the connection dropped); a probe cancelling itself just ends."""
        self.watch.disarm()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def stop(self) -> None:
        self.watch.disarm()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_silent(self, seconds: float) -> None:
        if self._task is not None or (self._busy is not None and self._busy()):
            self.watch.arm()
            return
        if self._on_silence(seconds):
            self.silences += 1
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        try:
            await self._probe()
        finally:
            if self._task is asyncio.current_task():
                self._task = None


class ReconnectingWebSocket:
    """One websocket kept open: connect (open timeout), `on_open` subscribes, frames go to `on_message`.

    - keepalive: a ping every `ping_interval` s; no pong within `pong_timeout` s drops the connection;
    - data watchdog: with `silence_timeout`, `on_silent(seconds)` is called when no frame arrived for that
      long (the client probes: `probe()` and its REST sequence); without `on_silent` the connection is
      recycled;
    - reconnects with jittered exponential backoff up to `reconnect_max_delay` (reset after a healthy
      connection), and pre-emptively after `max_lifetime` s (without backoff);
    - `on_drop(reason)` on every drop (the client marks its markets UNSYNCED), `on_reconnect(reason)` when a
      connection opens again after a drop (metrics), `on_frame(raw, receive_ns)` taps every frame (recorder);
    - `headers` go with every upgrade request (a function is called at each connect: a fresh signature);
    - `transport`: `default_transport()` unless given.
    """

    def __init__(
        self,
        url: str | Callable[[], str],
        on_message: Callable[[Frame], None],
        *,
        name: str,
        on_open: Callable[[Connection], Awaitable[None]] | None = None,
        on_drop: Callable[[str], None] | None = None,
        on_reconnect: Callable[[str], None] | None = None,
        on_frame: FrameTap | None = None,
        on_silent: Callable[[float], None] | None = None,
        headers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        open_timeout: float = 10.0,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        silence_timeout: float | None = None,
        reconnect_initial_delay: float = 0.2,
        reconnect_max_delay: float = 30.0,
        max_lifetime: float | None = None,
        transport: Transport | None = None,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._url = url
        self.on_message = on_message
        self.name = name
        self.on_open = on_open
        self.on_drop = on_drop
        self.on_reconnect = on_reconnect
        self.on_frame = on_frame
        self.headers = headers
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_lifetime = max_lifetime
        self.transport: Transport = transport or default_transport()
        self.clock = clock or LiveClock()
        self.logger = logger or logging.getLogger("moonship.venue")
        self.backoff = Backoff(reconnect_initial_delay, reconnect_max_delay, clock=self.clock)
        self.watch = (
            SilenceWatch(silence_timeout, on_silent or self._recycle_silent, clock=self.clock)
            if silence_timeout is not None
            else None
        )
        #: connections opened, frames received and drops since start (metrics)
        self.connects = 0
        self.frames = 0
        self.drops = 0
        self.connected = asyncio.Event()
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._close_reason = ""
        self._planned = False  # the close was asked for (reconnect): no backoff before the next connect
        self._closing: asyncio.Task[None] | None = None
        self._last_drop = ""

    @property
    def url(self) -> str:
        return self._url() if callable(self._url) else self._url

    @property
    def connection(self) -> Connection | None:
        """The open connection (None between connections)."""
        return self._conn

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ws-{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def send(self, message: str) -> bool:
        """Send on the open connection; False when there is none (the next `on_open` covers it)."""
        conn = self._conn
        if conn is None:
            return False
        try:
            await conn.send(message)
        except ConnectionError:
            return False
        return True

    def reconnect(self, reason: str) -> None:
        """Close the open connection now; the loop reconnects at once (a planned reconnect)."""
        conn = self._conn
        if conn is not None and not self._close_reason:
            self._close_reason, self._planned = reason, True
            self._closing = asyncio.get_running_loop().create_task(conn.close())

    async def probe(self) -> bool:
        """A ping/pong round trip now: True if the pong came within `pong_timeout`."""
        conn = self._conn
        if conn is None:
            return False
        try:
            waiter = await conn.ping()
            await self.clock.wait_for(waiter, self.pong_timeout)
        except (ConnectionError, TimeoutError):
            return False
        return True

    # ------------------------------------------------------------------ the connection loop
    async def _run(self) -> None:
        while True:
            healthy, planned = False, False
            try:
                headers = self.headers() if callable(self.headers) else self.headers
                conn = await self.clock.wait_for(
                    self.transport.connect(self.url, open_timeout=self.open_timeout, headers=headers),
                    self.open_timeout,
                )
            except (OSError, TimeoutError) as exc:
                reason = f"connect failed: {exc!r}"
            else:
                healthy, planned, reason = await self._serve(conn)
            self._dropped(reason)
            if healthy:
                self.backoff.reset()
            if not planned:
                await self.backoff.wait()

    async def _serve(self, conn: Connection) -> tuple[bool, bool, str]:
        """Run one connection to its end: (it was healthy, the close was planned, why it ended)."""
        self._conn, self._close_reason, self._planned = conn, "", False
        self.connects += 1
        helpers: list[asyncio.Task[None]] = []
        frames = self.frames
        try:
            if self.on_open is not None:
                await self.on_open(conn)
            self.connected.set()
            if self._last_drop:
                self.logger.info("%s reconnected after: %s", self.name, self._last_drop)
                if self.on_reconnect is not None:
                    self.on_reconnect(self._last_drop)
            else:
                self.logger.info("%s connected", self.name)
            loop = asyncio.get_running_loop()
            helpers.append(loop.create_task(self._keepalive(conn)))
            if self.max_lifetime is not None:
                helpers.append(loop.create_task(self._retire(self.max_lifetime)))
            if self.watch is not None:
                self.watch.arm()
            await conn.deliver(self._handler())
            reason = "closed by the venue"  # an implementation that returns instead of raising
        except asyncio.CancelledError:
            self._conn = None
            self.connected.clear()
            raise
        except (OSError, TimeoutError) as exc:
            reason = self._close_reason or f"connection lost: {exc}"
        except Exception as exc:  # on_open refused (e.g. a subscription error): back off and retry
            reason = self._close_reason or f"{type(exc).__name__}: {exc}"
        finally:
            if self.watch is not None:
                self.watch.disarm()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await conn.close()
        healthy = self.connected.is_set() and self.frames > frames  # opened and carried data
        return healthy, self._planned, reason

    def _handler(self) -> Callable[[Frame], None]:
        """What the connection calls with each frame: counts it, touches the watch, taps it, hands it on."""
        on_message, watch, clock, tap = self.on_message, self.watch, self.clock, self.on_frame

        def handle(raw: Frame) -> None:
            self.frames += 1
            if watch is not None:
                watch.touch()
            if tap is not None:
                now = clock.now()
                tap(raw, int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1000)
            on_message(raw)

        return handle

    def _dropped(self, reason: str) -> None:
        self._conn = None
        was_open = self.connected.is_set()
        self.connected.clear()
        if was_open or not self._last_drop:
            self.drops += 1
            self.logger.warning("%s dropped: %s", self.name, reason)
        self._last_drop = reason
        if self.on_drop is not None:
            self.on_drop(reason)

    async def _keepalive(self, conn: Connection) -> None:
        while True:
            await self.clock.sleep(self.ping_interval)
            if not await self.probe():
                self._close_reason = f"no pong within {self.pong_timeout:g} s"
                await conn.close()
                return

    async def _retire(self, lifetime: float) -> None:
        await self.clock.sleep(lifetime)
        self.reconnect(f"scheduled reconnect after {lifetime:g} s")

    def _recycle_silent(self, seconds: float) -> None:
        self.reconnect(f"silent feed: no frame for {seconds:.1f} s")
