"""Login, sessions (bearer and cookie), logout, idle expiry and login throttling."""

from __future__ import annotations

import asyncio
import threading
import time

import bcrypt
import httpx
import pytest
from moonship_api.auth import SESSION_PREFIX, LoginThrottle, Sessions

from moonship_core import MemoryCache

from .harness import PASSWORD, USER, Certs, MakeStack, Stack, api_settings

COOKIE = "__Host-session_token"
PROTECTED = [
    ("GET", "/logout"),
    ("POST", "/logout"),
    ("GET", "/strategies"),
    ("GET", "/strategies/main/alpha"),
    ("POST", "/strategies/main/new"),
    ("PATCH", "/strategies/main/alpha"),
    ("DELETE", "/strategies/main/alpha"),
    ("POST", "/strategies/main/alpha/start"),
    ("POST", "/strategies/main/alpha/stop"),
    ("GET", "/no/such/path"),
]


def login(client: httpx.Client, body: object = None, **kwargs: object) -> httpx.Response:
    payload = {"user": USER, "password": PASSWORD} if body is None else body
    return client.post("/login", json=payload, **kwargs)  # type: ignore[arg-type]


def test_login_returns_a_token_and_sets_the_secure_cookie(stack: Stack) -> None:
    with stack.client() as client:
        reply = login(client)
    assert reply.status_code == 200
    token = reply.json()["session_token"]
    assert set(reply.json()) == {"session_token"}
    assert len(token) >= 43  # 256 random bits, URL-safe base64
    assert reply.headers["set-cookie"] == f"{COOKIE}={token}; HttpOnly; Path=/; SameSite=Strict; Secure"
    assert reply.headers["server"] == "Moonship"
    assert reply.headers["cache-control"] == "no-store"
    assert stack.login() != token  # a fresh token per login


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "Missing or bad request body"),
        (b"", "Missing or bad request body"),
        (b"[1, 2]", "Missing or bad request body"),
        (b'{"password": "x"}', "Missing or bad user field"),
        (b'{"user": 5, "password": "x"}', "Missing or bad user field"),
        (b'{"user": "trader"}', "Missing or bad password field"),
        (b'{"user": "trader", "password": null}', "Missing or bad password field"),
    ],
)
def test_login_rejects_a_bad_body(stack: Stack, body: bytes, message: str) -> None:
    with stack.client() as client:
        reply = client.post("/login", content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert reply.json() == {"error": message, "status": 400}


def test_login_rejects_an_oversized_body(stack: Stack) -> None:
    with stack.client() as client:
        reply = login(client, {"user": USER, "password": "x" * (1 << 20)})
    assert reply.status_code == 413
    assert reply.json() == {"error": "Request body too large", "status": 413}


@pytest.mark.parametrize(
    ("user", "password"),
    [
        (USER, "wrong"),
        ("someone", PASSWORD),
        (USER.upper(), PASSWORD),
        ("", ""),
        (USER, PASSWORD + "\x00"),
        (USER, PASSWORD + "x" * 100),  # beyond bcrypt's 72 bytes
    ],
)
def test_login_with_wrong_credentials_is_refused(make_stack: MakeStack, user: str, password: str) -> None:
    stack = make_stack()
    with stack.client() as client:
        reply = login(client, {"user": user, "password": password})
    assert reply.status_code == 401
    assert reply.json() == {"error": "Invalid user or password", "status": 401}
    assert "set-cookie" not in reply.headers


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_but_login_needs_a_session(stack: Stack, method: str, path: str) -> None:
    attempts = [
        {},
        {"Authorization": "Bearer " + "A" * 43},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dHJhZGVyOmNvcnJlY3Q="},
        {"Cookie": f"{COOKIE}=forged"},
        {"Cookie": f"session_token={stack.login()}"},  # right token, wrong cookie name
    ]
    with stack.client() as client:
        for headers in attempts:
            reply = client.request(method, path, headers=headers, json={"config": {}})
            assert reply.status_code == 401, headers
            assert reply.json() == {"error": "Access denied", "status": 401}
            assert reply.headers["www-authenticate"].startswith("Bearer")


def test_openapi_document_is_public(stack: Stack) -> None:
    with stack.client() as client:
        reply = client.get("/openapi.json")
    assert reply.status_code == 200
    assert reply.json()["openapi"].startswith("3.")


def test_bearer_token_and_cookie_both_authenticate(stack: Stack) -> None:
    token = stack.login()
    with stack.client() as client:
        assert client.get("/strategies", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/strategies", headers={"Authorization": f"bearer {token}"}).status_code == 200
        assert client.get("/strategies", headers={"Cookie": f"{COOKIE}={token}"}).status_code == 200
        assert client.get("/strategies", headers={"Cookie": f"a=b; {COOKIE}={token}; c=d"}).status_code == 200


def test_bearer_token_takes_precedence_over_the_cookie(stack: Stack) -> None:
    token = stack.login()
    with stack.client() as client:
        bad_bearer = {"Authorization": "Bearer " + "B" * 43, "Cookie": f"{COOKIE}={token}"}
        assert client.get("/strategies", headers=bad_bearer).status_code == 401
        bad_cookie = {"Authorization": f"Bearer {token}", "Cookie": f"{COOKIE}=forged"}
        assert client.get("/strategies", headers=bad_cookie).status_code == 200


def test_a_client_keeps_the_cookie_and_uses_it(stack: Stack) -> None:
    with stack.client() as client:
        login(client)
        assert COOKIE in client.cookies
        assert client.get("/strategies").status_code == 200
        assert client.get("/logout").status_code == 200
        assert COOKIE not in client.cookies  # Max-Age=0 cleared it
        assert client.get("/strategies").status_code == 401


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_logout_ends_the_session_everywhere(stack: Stack, method: str) -> None:
    token = stack.login()
    other = stack.login()
    with stack.client() as client:
        reply = client.request(method, "/logout", headers={"Cookie": f"{COOKIE}={token}"})
        assert reply.status_code == 200
        assert reply.json() == {}
        cleared = f"{COOKIE}=; Max-Age=0; HttpOnly; Path=/; SameSite=Strict; Secure"
        assert reply.headers["set-cookie"] == cleared
        for headers in ({"Authorization": f"Bearer {token}"}, {"Cookie": f"{COOKIE}={token}"}):
            assert client.get("/strategies", headers=headers).status_code == 401
            assert client.get("/logout", headers=headers).status_code == 401
        assert client.get("/strategies", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_login_with_a_session_replaces_it(stack: Stack) -> None:
    old = stack.login()
    new = stack.login(Authorization=f"Bearer {old}")
    assert new != old
    with stack.client() as client:
        assert client.get("/strategies", headers={"Authorization": f"Bearer {old}"}).status_code == 401
        assert client.get("/strategies", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_sessions_are_stored_by_hash_not_by_token(stack: Stack) -> None:
    token = stack.login()
    assert isinstance(stack.cache, MemoryCache)
    keys = [k for k in stack.cache._data if k.startswith(SESSION_PREFIX)]
    assert keys and not any(token in k for k in keys)
    assert Sessions.key(token) in keys
    session = stack.loop.run(stack.cache.get(Sessions.key(token)))
    assert isinstance(session, dict) and session["user"] == USER and PASSWORD not in str(session)
    assert Sessions.key(token) not in stack.cache._expiry  # idle_session_expiry 0: no expiry


def test_idle_session_expires_and_use_slides_the_expiry(make_stack: MakeStack, certs: Certs) -> None:
    stack = make_stack(settings=api_settings(certs, idle_session_expiry=0.01))  # 0.6 s
    token = stack.login()
    with stack.client(token) as client:
        for _ in range(4):  # 1.2 s in all, each use within 0.6 s of the last
            time.sleep(0.3)
            assert client.get("/strategies").status_code == 200
        time.sleep(0.9)
        assert client.get("/strategies").status_code == 401


def test_failed_logins_are_throttled_per_client_address(make_stack: MakeStack) -> None:
    stack = make_stack()
    attacker = {"X-Forwarded-For": "203.0.113.9"}  # the test client is a trusted proxy (127.0.0.1)
    with stack.client() as client:
        for _ in range(5):
            assert login(client, {"user": USER, "password": "guess"}, headers=attacker).status_code == 401
        # locked out for 1 s: even the right password is refused without being checked
        reply = login(client, headers=attacker)
        assert reply.status_code == 429
        assert reply.headers["retry-after"] == "1"
        assert reply.json() == {"error": "Too many failed logins: try again later", "status": 429}
        # the real user elsewhere is not affected
        assert login(client, headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 200
        time.sleep(1.05)
        assert login(client, {"user": USER, "password": "guess"}, headers=attacker).status_code == 401
        reply = login(client, headers=attacker)
        assert reply.status_code == 429 and reply.headers["retry-after"] == "2"  # the lock doubles
        time.sleep(2.05)
        assert login(client, headers=attacker).status_code == 200  # and a success clears the count
        assert login(client, {"user": USER, "password": "guess"}, headers=attacker).status_code == 401


def test_forwarded_addresses_count_only_from_trusted_proxies(
    make_stack: MakeStack, certs: Certs
) -> None:
    stack = make_stack(settings=api_settings(certs, trusted_proxies=[]))
    with stack.client() as client:
        for n in range(5):  # a new forged address every time does not escape the throttle
            headers = {"X-Forwarded-For": f"203.0.113.{n}"}
            assert login(client, {"user": USER, "password": "guess"}, headers=headers).status_code == 401
        assert login(client, headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 429


def test_password_check_does_not_block_the_server(make_stack: MakeStack, certs: Certs) -> None:
    slow_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=13)).decode()
    stack = make_stack(settings=api_settings(certs, password=slow_hash))
    with stack.client() as client:
        started = time.perf_counter()
        assert login(client).status_code == 200
        check_time = time.perf_counter() - started
    assert check_time > 0.2  # a real bcrypt cost, else the test below proves nothing
    logins = [threading.Thread(target=stack.login) for _ in range(2)]
    for thread in logins:
        thread.start()
    time.sleep(0.05)
    with stack.client() as client:
        started = time.perf_counter()
        assert client.get("/openapi.json").status_code == 200
        assert time.perf_counter() - started < check_time / 2
    for thread in logins:
        thread.join()


def test_throttle_escalates_up_to_its_cap_and_forgets() -> None:
    now = [1000.0]
    cache = MemoryCache()
    throttle = LoginThrottle(cache, clock=lambda: now[0])

    async def main() -> None:
        client = "198.51.100.20"
        for _ in range(4):
            await throttle.failed(client)
            assert await throttle.retry_after(client) is None
        waits = []
        for _ in range(2000):  # the lock doubles up to 60 s and never overflows
            await throttle.failed(client)
            waits.append(await throttle.retry_after(client))
        assert waits[:8] == [1, 2, 4, 8, 16, 32, 60, 60] and waits[-1] == 60
        now[0] += 60.5
        assert await throttle.retry_after(client) is None
        assert await throttle.retry_after("198.51.100.21") is None  # another address
        await throttle.succeeded(client)
        await throttle.failed(client)
        assert await throttle.retry_after(client) is None  # counting from zero again

    asyncio.run(main())


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one IPv6 /64 is one client
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("::ffff:192.0.2.1", "192.0.2.1", True),
        ("192.0.2.1", "192.0.2.2", False),
        ("unknown", "unknown", True),
    ],
)
def test_throttle_keys(a: str, b: str, same: bool) -> None:
    assert (LoginThrottle.key(a) == LoginThrottle.key(b)) is same


def test_responses_are_not_held_back_by_nagle(stack: Stack, token: str) -> None:
    with stack.client(token) as client:
        client.get("/strategies")
        started = time.perf_counter()
        for _ in range(20):
            assert client.get("/strategies").status_code == 200
        assert (time.perf_counter() - started) / 20 < 0.02  # 40 ms each without TCP_NODELAY
