"""ReconnectingWebSocket on real sockets over both transports (picows, websockets): reconnect, backoff,
keepalive and pong timeout, silence watch, pre-emptive reconnect, close codes, upgrade headers and refusals,
TLS with a test CA, fragmented and large frames, clean close."""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from moonship_core import (
    Connection,
    PicowsTransport,
    ReconnectingWebSocket,
    UpgradeRefused,
    WebsocketsTransport,
    default_transport,
)
from moonship_core.testing import until, websocket_server
from moonship_core.venues.websocket import TRANSPORT_ENV

TRANSPORTS = {"picows": PicowsTransport, "websockets": WebsocketsTransport}


@pytest.fixture(autouse=True, params=list(TRANSPORTS))
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test runs once per transport, chosen the way a deployment chooses it (the environment)."""
    monkeypatch.setenv(TRANSPORT_ENV, request.param)
    yield request.param


class Recorder:
    """Collects what a ReconnectingWebSocket tells its owner."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.drops: list[str] = []
        self.drop_times: list[float] = []
        self.opens: list[float] = []
        self.reconnects: list[str] = []
        self.frames: list[tuple[str | bytes, int]] = []
        self.silences: list[float] = []

    async def on_open(self, conn: Connection) -> None:
        self.opens.append(time.monotonic())
        await conn.send('{"method": "SUBSCRIBE"}')

    def dropped(self, reason: str) -> None:
        self.drops.append(reason)
        self.drop_times.append(time.monotonic())

    def socket(self, url: str, **kw: Any) -> ReconnectingWebSocket:
        return ReconnectingWebSocket(
            url,
            self.messages.append,
            name="test",
            on_open=self.on_open,
            on_drop=self.dropped,
            on_reconnect=self.reconnects.append,
            on_frame=lambda raw, ns: self.frames.append((raw, ns)),
            **kw,
        )


# ---------------------------------------------------------------------- websocket
def test_reconnects_after_every_drop_and_subscribes_again() -> None:
    subscriptions: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        subscriptions.append(str(await ws.recv()))
        await ws.send("hello")
        await ws.close()  # the venue drops us after one frame

    async def main() -> None:
        rec = Recorder()
        async with websocket_server(handler) as url:
            sock = rec.socket(url, reconnect_initial_delay=0.02, reconnect_max_delay=0.05)
            sock.start()
            await until(lambda: len(rec.messages) >= 3)
            await sock.stop()
        assert len(subscriptions) >= 3  # on_open ran on every connection
        assert rec.messages[:3] == [b"hello"] * 3  # text frames arrive as UTF-8 bytes
        assert len(rec.drops) >= 2 and all("closed" in r or "lost" in r for r in rec.drops)
        assert len(rec.reconnects) >= 2  # the metrics callback heard of each reconnect
        before, after = time.time_ns() - 10**10, time.time_ns()
        assert all(raw == b"hello" and before < ns <= after for raw, ns in rec.frames)

    asyncio.run(main())


def test_backoff_grows_with_jitter_up_to_the_maximum_while_the_venue_refuses() -> None:
    attempts: list[float] = []

    def refuse(conn: ServerConnection, request: Request) -> Response:
        attempts.append(time.monotonic())
        return Response(503, "Service Unavailable", Headers(), b"down")

    async def handler(ws: ServerConnection) -> None:
        raise AssertionError("never accepted")

    async def main() -> None:
        rec = Recorder()
        async with websocket_server(handler, process_request=refuse) as url:
            sock = rec.socket(url, reconnect_initial_delay=0.05, reconnect_max_delay=0.4)
            sock.start()
            await until(lambda: len(attempts) >= 7, timeout=10)
            await sock.stop()
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        # ceilings 0.05, 0.1, 0.2, 0.4, 0.4, ...; each delay is within [ceiling/2, ceiling]
        assert gaps[0] < 0.15
        assert all(0.2 - 0.02 <= g <= 0.4 + 0.15 for g in gaps[3:])
        assert rec.opens == [] and all("connect failed" in r for r in rec.drops)

    asyncio.run(main())


def test_silence_is_reported_within_the_timeout_while_the_socket_stays_open() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        for i in range(5):
            await ws.send(str(i))
            await asyncio.sleep(0.02)
        await ws.wait_closed()  # open, answering pings, but the feed has stopped

    async def main() -> None:
        rec = Recorder()
        silent_at: list[float] = []

        def on_silent(seconds: float) -> None:
            silent_at.append(time.monotonic())
            rec.silences.append(seconds)

        async with websocket_server(handler) as url:
            sock = rec.socket(url, silence_timeout=0.3, on_silent=on_silent, ping_interval=0.1)
            sock.start()
            await until(lambda: len(rec.messages) == 5)
            last_frame = time.monotonic()
            await until(lambda: bool(silent_at), timeout=2)
            assert 0.25 <= silent_at[0] - last_frame <= 0.6
            assert rec.silences[0] >= 0.3
            assert await sock.probe()  # the socket itself is fine: ping/pong answers
            await asyncio.sleep(0.5)
            assert len(silent_at) == 1  # reported once per silence, until re-armed or touched
            assert sock.connects == 1 and rec.drops == []
            await sock.stop()

    asyncio.run(main())


def test_a_quiet_market_backs_off_its_probes_and_never_reconnects() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.wait_closed()  # nothing trades

    async def main() -> None:
        rec = Recorder()
        probes: list[float] = []
        sock: ReconnectingWebSocket

        def on_silent(seconds: float) -> None:
            async def probe() -> None:
                probes.append(time.monotonic())
                assert sock.watch is not None
                if await sock.probe():  # alive and quiet (a venue also asks REST): look again later
                    sock.watch.arm(min(sock.watch.timeout * 2, 2.0))
                else:
                    sock.reconnect("probe failed")

            asyncio.get_running_loop().create_task(probe())

        async with websocket_server(handler) as url:
            sock = rec.socket(url, silence_timeout=0.1, on_silent=on_silent)
            sock.start()
            await asyncio.sleep(1.6)
            await sock.stop()
        assert sock.connects == 1 and rec.drops == []
        # probes at ~0.1, 0.3, 0.7, 1.5 s: doubling, not one every 0.1 s
        assert 3 <= len(probes) <= 5
        gaps = [b - a for a, b in itertools.pairwise(probes)]
        assert all(later > earlier * 1.5 for earlier, later in itertools.pairwise(gaps))

    asyncio.run(main())


def test_without_an_on_silent_callback_a_silent_feed_is_recycled() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("one")
        await ws.wait_closed()

    async def main() -> None:
        rec = Recorder()
        async with websocket_server(handler) as url:
            sock = rec.socket(url, silence_timeout=0.2)
            sock.start()
            await until(lambda: len(rec.opens) >= 2, timeout=3)
            await sock.stop()
        assert "silent feed" in rec.drops[0]
        assert rec.opens[1] - rec.opens[0] < 0.6  # a planned reconnect: no backoff

    asyncio.run(main())


def test_no_pong_in_time_drops_the_connection() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("subscribed")
        ws.transport.pause_reading()  # a hung peer: reads nothing, so never answers a ping
        await ws.wait_closed()

    async def main() -> None:
        rec = Recorder()
        async with websocket_server(handler, close_timeout=0.2) as url:
            sock = rec.socket(url, ping_interval=0.1, pong_timeout=0.2, reconnect_initial_delay=0.4)
            sock.start()
            started = time.monotonic()
            await until(lambda: bool(rec.drops), timeout=3)
            assert time.monotonic() - started < 1.5
            await until(lambda: len(rec.opens) >= 2)
            await sock.stop()
        assert "no pong within 0.2 s" in rec.drops[0]
        assert rec.opens[1] - rec.drop_times[0] >= 0.19  # a failure, not a planned reconnect: it backs off

    asyncio.run(main())


def test_connection_is_replaced_ahead_of_its_maximum_lifetime() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        while True:
            await ws.send("tick")
            await asyncio.sleep(0.02)

    async def main() -> None:
        rec = Recorder()
        async with websocket_server(handler) as url:
            sock = rec.socket(url, max_lifetime=0.3, reconnect_initial_delay=5.0)
            sock.start()
            await until(lambda: len(rec.opens) >= 2, timeout=3)
            await sock.stop()
        assert rec.drops[0] == "scheduled reconnect after 0.3 s"
        assert 0.25 <= rec.opens[1] - rec.opens[0] < 1.0  # no backoff wait for a planned reconnect

    asyncio.run(main())



def test_the_environment_chooses_the_transport(transport: str) -> None:
    assert isinstance(default_transport(), TRANSPORTS[transport])
    sock = ReconnectingWebSocket("ws://127.0.0.1:1", print, name="t")
    assert isinstance(sock.transport, TRANSPORTS[transport])


def test_an_unknown_transport_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRANSPORT_ENV, "aiohttp")
    with pytest.raises(ValueError, match="picows or websockets"):
        default_transport()


def test_headers_go_with_every_upgrade_fresh_from_their_function() -> None:
    seen: list[str | None] = []
    counter = itertools.count()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen.append(ws.request.headers.get("X-Signature"))
        await ws.recv()
        await ws.send("x")
        await ws.close()

    async def main() -> None:
        rec = Recorder()
        async with websocket_server(handler) as url:
            sock = rec.socket(url, headers=lambda: {"X-Signature": f"sig-{next(counter)}"},
                              reconnect_initial_delay=0.02)
            sock.start()
            await until(lambda: len(seen) >= 2)
            await sock.stop()
        assert seen[:2] == ["sig-0", "sig-1"]

    asyncio.run(main())


def test_a_refused_upgrade_raises_its_status_and_body(transport: str) -> None:
    def refuse(conn: ServerConnection, request: Request) -> Response:
        body = b'{"code":-1,"msg":"stale"}'
        return Response(401, "Unauthorized", Headers([("Content-Length", str(len(body)))]), body)

    async def handler(ws: ServerConnection) -> None:
        raise AssertionError("never accepted")

    async def main() -> None:
        async with websocket_server(handler, process_request=refuse) as url:
            with pytest.raises(UpgradeRefused) as refused:
                await TRANSPORTS[transport]().connect(url, open_timeout=2, headers={"X-Key": "k"})
        assert refused.value.status == 401
        assert refused.value.body == b'{"code":-1,"msg":"stale"}'
        assert isinstance(refused.value, ConnectionError)

    asyncio.run(main())


def test_the_venue_close_code_is_the_drop_reason() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(4001, "going away now")

    async def main() -> None:
        rec = Recorder()
        async with websocket_server(handler) as url:
            sock = rec.socket(url, reconnect_initial_delay=0.5)
            sock.start()
            await until(lambda: bool(rec.drops))
            await sock.stop()
        assert rec.drops[0] == "connection lost: closed by the venue: 4001 going away now"  # on both

    asyncio.run(main())


def test_a_socket_lost_without_a_close_frame_says_so() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        ws.transport.abort()  # TCP reset, no close frame

    async def main() -> None:
        rec = Recorder()
        async with websocket_server(handler) as url:
            sock = rec.socket(url, reconnect_initial_delay=0.5)
            sock.start()
            await until(lambda: bool(rec.drops))
            await sock.stop()
        assert rec.drops[0] == "connection lost: no close frame"

    asyncio.run(main())


def test_a_failing_handler_drops_the_connection_and_it_reconnects() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("bad")
        await ws.wait_closed()

    async def main() -> None:
        drops: list[str] = []

        def on_message(raw: str | bytes) -> None:
            raise ValueError(f"cannot parse {raw!r}")

        async with websocket_server(handler) as url:
            sock = ReconnectingWebSocket(
                url, on_message, name="t", on_open=Recorder().on_open, on_drop=drops.append,
                reconnect_initial_delay=0.02,
            )
            sock.start()
            await until(lambda: sock.connects >= 2)
            await sock.stop()
        assert drops[0] == "ValueError: cannot parse b'bad'"

    asyncio.run(main())


def test_on_open_reads_the_answer_then_every_later_frame_reaches_on_message_in_order() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        for frame in ("ack", *map(str, range(200))):  # in one burst: some arrive before on_open returns
            await ws.send(frame)
        await ws.wait_closed()

    async def main() -> None:
        answers: list[str | bytes] = []
        messages: list[str | bytes] = []

        async def on_open(conn: Connection) -> None:
            await conn.send("subscribe")
            answers.append(await conn.recv())
            await asyncio.sleep(0.05)

        async with websocket_server(handler) as url:
            sock = ReconnectingWebSocket(url, messages.append, name="t", on_open=on_open)
            sock.start()
            await until(lambda: len(messages) == 200)
            await sock.stop()
        assert answers == [b"ack"]
        assert messages == [str(i).encode() for i in range(200)]

    asyncio.run(main())


def test_fragmented_and_large_messages_arrive_whole() -> None:
    big = "x" * (3 << 20)

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(iter(["frag", "men", "ted"]))
        await ws.send(big)
        await ws.send(b"\x00\x01binary")
        await ws.wait_closed()

    async def main() -> None:
        rec = Recorder()
        async with websocket_server(handler, max_size=None) as url:
            sock = rec.socket(url)
            sock.start()
            await until(lambda: len(rec.messages) == 3)
            await sock.stop()
        assert rec.messages == [b"fragmented", big.encode(), b"\x00\x01binary"]

    asyncio.run(main())


def test_stop_closes_cleanly_with_code_1000() -> None:
    codes: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("x")
        await ws.wait_closed()
        codes.append(ws.close_code)

    async def main() -> None:
        rec = Recorder()
        async with websocket_server(handler) as url:
            sock = rec.socket(url)
            sock.start()
            await until(lambda: bool(rec.messages))
            started = time.monotonic()
            await sock.stop()
            await until(lambda: bool(codes))
            assert time.monotonic() - started < 0.5  # the venue answered the close at once
        assert codes == [1000]
        assert not await sock.send("late")  # nothing open any more

    asyncio.run(main())


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_server(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*names).configure_cert(context)
    return context


def test_tls_with_a_trusted_certificate_for_the_host(ca: trustme.CA, transport: str) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("secret")
        await ws.wait_closed()

    async def main() -> None:
        client = ssl.create_default_context()
        ca.configure_trust(client)
        rec = Recorder()
        async with websocket_server(handler, ssl=_tls_server(ca, "localhost")) as url:
            wss = url.replace("ws://127.0.0.1", "wss://localhost")
            sock = rec.socket(wss, transport=TRANSPORTS[transport](ssl_context=client))
            sock.start()
            await until(lambda: bool(rec.messages))
            assert await sock.probe()
            await sock.stop()
        assert rec.messages == [b"secret"]

    asyncio.run(main())


@pytest.mark.parametrize("case", ["other-host", "unknown-ca", "default-context"])
def test_tls_refuses_a_certificate_for_another_host_or_from_an_unknown_ca(
    ca: trustme.CA, transport: str, case: str
) -> None:
    async def handler(ws: ServerConnection) -> None:
        raise AssertionError("never accepted")

    async def main() -> None:
        client = ssl.create_default_context()
        if case == "other-host":
            ca.configure_trust(client)
        names = ("venue.example",) if case == "other-host" else ("localhost",)
        chosen = TRANSPORTS[transport](ssl_context=None if case == "default-context" else client)
        async with websocket_server(handler, ssl=_tls_server(ca, *names)) as url:
            wss = url.replace("ws://127.0.0.1", "wss://localhost")
            with pytest.raises(ssl.SSLCertVerificationError):
                await chosen.connect(wss, open_timeout=2)

    asyncio.run(main())
