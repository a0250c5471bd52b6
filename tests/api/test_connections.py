"""Connections that end (issue 15 item 5), against a real uvicorn over TLS: slowloris headers, slow bodies and
idle keep-alive connections are closed within their timeouts, connections beyond the cap are refused, and the
API listens on loopback unless told otherwise."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from moonship_api.settings import ApiSettings

from .harness import Certs, MakeStack, Stack, api_settings


def tls_socket(stack: Stack) -> ssl.SSLSocket:
    """A raw TLS connection to the API, handshake done."""
    assert stack.api.port is not None
    raw = socket.create_connection(("127.0.0.1", stack.api.port), timeout=10)
    return stack.certs.client_context().wrap_socket(raw, server_hostname="127.0.0.1")


def closed_after(sock: ssl.SSLSocket, drip: bytes = b"", every: float = 0.2, limit: float = 10) -> float:
    """Send `drip` one byte every `every` seconds (just wait without `drip`) until the server closes the
    connection; the seconds that took."""
    started = time.monotonic()
    sock.settimeout(every)
    position = 0
    while time.monotonic() - started < limit:
        try:
            if position < len(drip):
                sock.sendall(drip[position : position + 1])
                position += 1
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:  # reset, broken pipe, TLS EOF: closed
            return time.monotonic() - started
    raise AssertionError(f"still open after {limit} s")


@pytest.fixture
def guarded(make_stack: MakeStack, certs: Certs) -> Stack:
    settings = api_settings(
        certs, header_timeout=1, body_timeout=1.5, keep_alive_timeout=1, max_connections=20
    )
    return make_stack(engines={"main": {}}, settings=settings)


def connections(stack: Stack) -> int:
    server = stack.api._server
    assert server is not None
    return len(server.server_state.connections)


SLOW_HEADERS = b"GET /strategies HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(
    b"X-Slow-%d: %s\r\n" % (n, b"a" * 10) for n in range(200)
)


def test_slowloris_sockets_are_closed_within_the_header_timeout(guarded: Stack) -> None:
    """Issue 15: 50 slowloris sockets survived 30 s. Now partial headers trickled a byte at a time are cut at
    the header timeout (1 s here), and the API keeps answering meanwhile."""
    socks = [tls_socket(guarded) for _ in range(15)]
    took: list[float] = []

    def drip(sock: ssl.SSLSocket) -> None:
        took.append(closed_after(sock, SLOW_HEADERS, every=0.05))

    threads = [threading.Thread(target=drip, args=(sock,)) for sock in socks]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    with guarded.client(guarded.login()) as client:
        assert client.get("/strategies").status_code == 200
    for thread in threads:
        thread.join(15)
    for sock in socks:
        sock.close()
    assert len(took) == 15 and all(0.8 < t < 2.0 for t in took), took
    guarded.wait_for(lambda: connections(guarded) == 0, timeout=3)


def test_a_silent_connection_is_closed_within_the_header_timeout(guarded: Stack) -> None:
    with tls_socket(guarded) as sock:
        assert 0.8 < closed_after(sock) < 2.0


def test_a_silent_tls_handshake_is_cut_too(guarded: Stack) -> None:
    assert guarded.api.port is not None
    with socket.create_connection(("127.0.0.1", guarded.api.port), timeout=10) as raw:
        raw.settimeout(5)
        started = time.monotonic()
        with contextlib.suppress(OSError):
            assert raw.recv(1) == b""
        assert time.monotonic() - started < 2.0  # the handshake timeout is the header timeout


def test_a_slow_body_is_cut_at_the_body_timeout(guarded: Stack) -> None:
    body = b'{"user": "trader", "password": "' + b"x" * 200 + b'"}'
    head = b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    with tls_socket(guarded) as sock:
        sock.sendall(head)  # the headers in time, then the body a byte every 0.05 s (10 s for all of it)
        assert 1.3 < closed_after(sock, body, every=0.05) < 2.5


def test_an_idle_keep_alive_connection_is_closed(guarded: Stack) -> None:
    with tls_socket(guarded) as sock:
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(5)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass
        assert time.monotonic() - started < 2.0  # keep_alive_timeout 1


def test_kept_alive_requests_in_time_are_served(guarded: Stack) -> None:
    """The deadlines restart with each request: a busy keep-alive connection is not cut."""
    with guarded.client(guarded.login()) as client:
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # longer than every timeout
            assert client.get("/strategies").status_code == 200
            time.sleep(0.3)
        assert client.post("/login", json={"user": "x", "password": "y"}).status_code == 401


def test_oversized_headers_are_refused(guarded: Stack) -> None:
    with guarded.client() as client:
        reply = client.get("/openapi.json", headers={f"X-Big-{n}": "a" * 1000 for n in range(20)})
        assert reply.status_code == 431
        assert reply.json() == {"error": "Request headers too large", "status": 431}
        # what arrives incomplete and too large, h11 refuses before the app sees it
        assert client.get("/openapi.json", headers={"X-Huge": "a" * 200_000}).status_code == 400
        assert client.get("/openapi.json").status_code == 200


@pytest.fixture
def capped(make_stack: MakeStack, certs: Certs) -> Iterator[Stack]:
    settings = api_settings(certs, header_timeout=30, max_connections=5)
    yield make_stack(engines={"main": {}}, settings=settings)


def test_connections_beyond_the_cap_are_refused(capped: Stack) -> None:
    """Issue 15: under a low descriptor limit 50 idle sockets starved the API. Now at most max_connections
    are open: more get 503 and are closed at once, so file descriptors stay bounded."""
    idle = [tls_socket(capped) for _ in range(5)]
    capped.wait_for(lambda: connections(capped) == 5)
    try:
        for _ in range(10):
            try:
                with capped.client() as client:
                    reply = client.get("/openapi.json")
                assert reply.status_code == 503
                assert reply.json() == {"error": "Too many connections", "status": 503}
                assert reply.headers["retry-after"] == "1"
            except httpx.TransportError:
                pass  # closed before the request was read: refused as well
            assert connections(capped) == 5
    finally:
        for sock in idle:
            sock.close()
    capped.wait_for(lambda: connections(capped) == 0)
    with capped.client() as client:
        assert client.get("/openapi.json").status_code == 200


def test_the_api_listens_on_loopback_unless_told_otherwise(make_stack: MakeStack, certs: Certs) -> None:
    assert ApiSettings().host == "127.0.0.1"
    settings = api_settings(certs)
    del settings["host"]
    stack = make_stack(settings=settings)
    server = stack.api._server
    assert server is not None
    assert [s.sockets[0].getsockname()[0] for s in server.servers] == ["127.0.0.1"]
