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
    ("GET", "/logout"),  # 405 with a session
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


JSON = {"Content-Type": "application/json"}


def test_a_client_keeps_the_cookie_and_uses_it(stack: Stack) -> None:
    with stack.client() as client:
        login(client)
        assert COOKIE in client.cookies
        assert client.get("/strategies").status_code == 200
        assert client.post("/logout", headers=JSON).status_code == 200
        assert COOKIE not in client.cookies  # Max-Age=0 cleared it
        assert client.get("/strategies").status_code == 401


@pytest.mark.parametrize("by", ["cookie", "bearer"])
def test_logout_ends_the_session_everywhere(stack: Stack, by: str) -> None:
    token = stack.login()
    other = stack.login()
    bearer = {"Authorization": f"Bearer {token}"}
    credentials = {"Cookie": f"{COOKIE}={token}", **JSON} if by == "cookie" else bearer
    with stack.client() as client:
        reply = client.post("/logout", headers=credentials)
        assert reply.status_code == 200
        assert reply.json() == {}
        cleared = f"{COOKIE}=; Max-Age=0; HttpOnly; Path=/; SameSite=Strict; Secure"
        assert reply.headers["set-cookie"] == cleared
        for headers in ({"Authorization": f"Bearer {token}"}, {"Cookie": f"{COOKIE}={token}", **JSON}):
            assert client.get("/strategies", headers=headers).status_code == 401
            assert client.post("/logout", headers=headers).status_code == 401
        assert client.get("/strategies", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_logout_is_post_only(stack: Stack) -> None:
    """Issue 15 item 6 (a deliberate break with the seed): a link or an image must not end the session."""
    token = stack.login()
    with stack.client() as client:
        for headers in ({"Authorization": f"Bearer {token}"}, {"Cookie": f"{COOKIE}={token}"}):
            reply = client.get("/logout", headers=headers)
            assert reply.status_code == 405
            assert reply.json() == {"error": "Method not allowed", "status": 405}
            assert client.get("/strategies", headers=headers).status_code == 200  # still logged in
    paths = stack.client().get("/openapi.json").json()["paths"]
    assert set(paths["/logout"]) == {"post"}


ORIGIN_CASES = [
    # (extra headers, expected status) for a cookie-authenticated POST .../stop
    ({}, 415),  # no Content-Type at all
    ({"Content-Type": "text/plain"}, 415),  # what a cross-site form or simple fetch can send
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
    ({"Content-Type": "text/plain", "Origin": "https://evil.example"}, 415),
    ({**JSON, "Origin": "https://evil.example"}, 403),
    ({**JSON, "Origin": "null"}, 403),
    ({**JSON, "Origin": "https://127.0.0.1"}, 403),  # another port is another origin
    ({**JSON, "Sec-Fetch-Site": "cross-site"}, 403),
    ({**JSON, "Sec-Fetch-Site": "same-site"}, 403),
    ({**JSON, "Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"}, 403),
    (JSON, 200),  # a non-browser client with the cookie
    ({"Content-Type": "application/json; charset=utf-8"}, 200),
    ({**JSON, "Sec-Fetch-Site": "same-origin"}, 200),
    ({**JSON, "Sec-Fetch-Site": "none"}, 200),
    ({**JSON, "Origin": "SELF"}, 200),  # replaced by this server's own origin
    ({**JSON, "Origin": "SELF", "Sec-Fetch-Site": "same-origin"}, 200),
]


@pytest.mark.parametrize(("extra", "status"), ORIGIN_CASES)
def test_state_changes_by_cookie_must_be_json_and_same_origin(
    stack: Stack, extra: dict[str, str], status: int
) -> None:
    """Issue 15: cookie + text/plain + a foreign Origin used to be 200 (SameSite was the only defence)."""
    token = stack.login()
    headers = {"Cookie": f"{COOKIE}={token}", **extra}
    if headers.get("Origin") == "SELF":
        headers["Origin"] = stack.url
    with stack.client() as client:
        reply = client.post("/strategies/main/beta/stop", headers=headers)
        assert reply.status_code == status, reply.text
        if status == 415:
            assert reply.json()["error"] == "Content-Type must be application/json with the session cookie"
        if status == 403:
            assert reply.json() == {"error": "Cross-site request refused", "status": 403}
        # the same body from a foreign page through every state-changing route is refused alike
        if status != 200:
            for method, path in [("POST", "/strategies/main/new"), ("PATCH", "/strategies/main/beta"),
                                 ("DELETE", "/strategies/main/beta"), ("POST", "/strategies/main/beta/start"),
                                 ("POST", "/logout")]:
                assert client.request(method, path, headers=headers).status_code == status, (method, path)
            assert client.get("/strategies", headers=headers).status_code == 200  # reads are not refused
            assert client.get("/strategies", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_bearer_requests_are_not_subject_to_the_cookie_rules(stack: Stack) -> None:
    token = stack.login()
    foreign = {"Content-Type": "text/plain", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    with stack.client(token) as client:
        assert client.post("/strategies/main/beta/stop", headers=foreign).status_code == 200
        # a bearer token wins over the cookie, so the request is judged as a bearer one
        reply = client.post("/strategies/main/beta/stop", headers={**foreign, "Cookie": f"{COOKIE}={token}"})
        assert reply.status_code == 200


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
    # idle_session_expiry 0 still stores it with a TTL: the 12 h lifetime
    assert 12 * 3600 - 60 < stack.cache._expiry[Sessions.key(token)] - time.monotonic() <= 12 * 3600


@pytest.mark.parametrize("idle", [0, 1])
def test_a_session_ends_at_its_lifetime_however_much_it_is_used(
    make_stack: MakeStack, certs: Certs, idle: float
) -> None:
    lifetime = 1.5 / 3600  # 1.5 s
    stack = make_stack(settings=api_settings(certs, session_lifetime=lifetime, idle_session_expiry=idle))
    token = stack.login()
    started = time.monotonic()
    with stack.client(token) as client:
        while time.monotonic() - started < 1.2:
            assert client.get("/strategies").status_code == 200
            time.sleep(0.2)
        # the TTL never outlives the lifetime, even with an idle expiry of a minute
        assert stack.cache._expiry[Sessions.key(token)] <= started + 1.5 + 0.05  # type: ignore[attr-defined]
        time.sleep(max(0.0, started + 1.6 - time.monotonic()))
        assert client.get("/strategies").status_code == 401
    assert stack.loop.run(stack.cache.get(Sessions.key(token))) is None
    assert stack.login() != token  # a new login gets a new lifetime


def test_sessions_under_other_credentials_are_refused() -> None:
    """Unit level: a session stored under another user/hash fingerprint, or without one (made before
    lifetimes existed), is refused and deleted."""
    from moonship_api.auth import Credentials

    cache = MemoryCache()
    old = Credentials(USER, bcrypt.hashpw(b"old", bcrypt.gensalt(rounds=4)).decode())
    new = Credentials(USER, bcrypt.hashpw(b"old", bcrypt.gensalt(rounds=4)).decode())  # same password
    renamed = Credentials("trader2", old._hash.decode())
    assert len({old.fingerprint, new.fingerprint, renamed.fingerprint}) == 3

    async def main() -> None:
        before = Sessions(cache, 0, 12, old.fingerprint)
        token = await before.create(USER)
        assert await before.touch(token)
        for after in (Sessions(cache, 0, 12, new.fingerprint), Sessions(cache, 0, 12, renamed.fingerprint)):
            assert not await after.touch(token)
        assert not await before.touch(token)  # deleted on sight
        legacy = "L" * 43
        await cache.set(Sessions.key(legacy), {"user": USER})
        assert not await before.touch(legacy)
        assert await cache.get(Sessions.key(legacy)) is None

    asyncio.run(main())


def test_idle_session_expires_and_use_slides_the_expiry(make_stack: MakeStack, certs: Certs) -> None:
    stack = make_stack(settings=api_settings(certs, idle_session_expiry=0.01))  # 0.6 s
    token = stack.login()
    with stack.client(token) as client:
        for _ in range(4):  # 1.2 s in all, each use within 0.6 s of the last
            time.sleep(0.3)
            assert client.get("/strategies").status_code == 200
        time.sleep(0.9)
        assert client.get("/strategies").status_code == 401


def throttle(stack: Stack, **settings: float) -> LoginThrottle:
    """Give `stack`'s API a throttle with small numbers (the defaults hold for a minute)."""
    assert stack.api.api is not None
    stack.api.api.throttle = LoginThrottle(stack.cache, **settings)  # type: ignore[arg-type]
    return stack.api.api.throttle


def timed_login(client: httpx.Client, password: str = PASSWORD, **headers: str) -> tuple[int, float]:
    started = time.perf_counter()
    reply = login(client, {"user": USER, "password": password}, headers=headers)
    return reply.status_code, time.perf_counter() - started


def test_a_throttled_client_is_delayed_not_refused(make_stack: MakeStack) -> None:
    stack = make_stack()
    attacker = {"X-Forwarded-For": "203.0.113.9"}  # the test client is a trusted proxy (127.0.0.1)
    with stack.client() as client:
        for _ in range(5):
            assert timed_login(client, "guess", **attacker)[0] == 401
        # the 5th failure locks the address for 1 s: the right password waits for it, then gets in
        status, took = timed_login(client, **attacker)
        assert status == 200 and 0.8 < took < 2
        # the real user elsewhere is not held back
        status, took = timed_login(client, **{"X-Forwarded-For": "198.51.100.7"})
        assert status == 200 and took < 0.5
        # the success cleared the (user, address) count: failing starts from zero again
        assert timed_login(client, "guess", **attacker) == (401, pytest.approx(0, abs=0.5))


def test_a_long_lock_is_429_with_a_retry_after_into_the_hold_window(make_stack: MakeStack) -> None:
    stack = make_stack()
    throttle(stack, max_delay=8, hold=1)
    attacker = {"X-Forwarded-For": "203.0.113.10"}
    with stack.client() as client:
        for _ in range(6):  # the 6th waits out the 1 s lock of the 5th, then fails: locked for 2 s
            assert timed_login(client, "guess", **attacker)[0] == 401
        reply = login(client, headers=attacker)
        assert reply.status_code == 429
        assert reply.json() == {"error": "Too many failed logins: try again later", "status": 429}
        assert reply.headers["retry-after"] == "1"  # 2 s lock - 1 s hold
        time.sleep(1)
        status, took = timed_login(client, **attacker)  # held for the rest of the lock, then checked
        assert status == 200 and took < 1.5


def test_the_right_password_gets_in_while_an_attacker_keeps_failing(make_stack: MakeStack) -> None:
    """Issue 15: an attacker failing once per lock from the user's own address (NAT, untrusted proxy) used to
    keep the right password refused forever. Now a lock is a capped backoff and a held attempt is checked
    before anyone who comes later, so the user is delayed by at most the cap plus the hold."""
    stack = make_stack()
    cap, hold = 2.0, 1.0
    throttle(stack, max_delay=cap, hold=hold)
    shared = {"X-Forwarded-For": "203.0.113.77"}
    stop = threading.Event()
    failures: list[int] = []

    def attack() -> None:
        with stack.client() as client:
            while not stop.is_set():
                reply = login(client, {"user": USER, "password": "guess"}, headers=shared)
                failures.append(reply.status_code)
                stop.wait(cap if failures[-1] == 401 else 0.1)

    attacker = threading.Thread(target=attack)
    attacker.start()
    try:
        stack.wait_for(lambda: failures.count(401) >= 8, timeout=30)  # locked at the cap by now
        for start_offset in (0.3, 1.1, 1.7):  # early, middle and late in the attacker's lock
            time.sleep(start_offset)
            started = time.perf_counter()
            with stack.client() as client:
                while True:
                    reply = login(client, headers=shared)
                    if reply.status_code != 429:
                        break
                    time.sleep(float(reply.headers["retry-after"]))
            assert reply.status_code == 200
            assert time.perf_counter() - started < cap + hold + 0.8
    finally:
        stop.set()
        attacker.join()
    assert failures.count(401) >= 10  # the attacker kept failing throughout


def test_failures_count_per_user_and_client_and_per_client(make_stack: MakeStack) -> None:
    stack = make_stack()
    throttle(stack, free=3, client_free=6, max_delay=30, hold=0)
    nat = {"X-Forwarded-For": "198.51.100.30"}
    with stack.client() as client:
        for _ in range(3):  # someone behind the same NAT guessing another user's password
            assert login(client, {"user": "admin", "password": "x"}, headers=nat).status_code == 401
        assert login(client, {"user": "admin", "password": "x"}, headers=nat).status_code == 429
        assert login(client, headers=nat).status_code == 200  # the real user is a different pair
        for n in range(3):  # names sprayed: every pair is new, but the address adds them up
            assert login(client, {"user": f"u{n}", "password": "x"}, headers=nat).status_code == 401
        reply = login(client, headers=nat)
        assert reply.status_code == 429 and reply.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "forwarded", ["not-an-address", "203.0.113.1, evil", "198.51.100.1%00", "[::1", "2001:db8::1:99999"]
)
def test_a_forwarded_client_must_be_an_ip_address(stack: Stack, forwarded: str) -> None:
    with stack.client() as client:
        reply = login(client, headers={"X-Forwarded-For": forwarded})
        assert reply.status_code == 400
        assert reply.json() == {"error": "Bad X-Forwarded-For: not an IP address", "status": 400}
        assert client.get("/openapi.json", headers={"X-Forwarded-For": forwarded}).status_code == 400
        assert login(client, headers={"X-Forwarded-For": "2001:db8::1, 198.51.100.2"}).status_code == 200


def test_rotating_forged_addresses_do_not_escape_the_throttle(make_stack: MakeStack) -> None:
    """Only addresses count: 20 guesses with a fresh (non-address) X-Forwarded-For each are 400, unchecked."""
    stack = make_stack()
    throttle(stack, hold=0)
    with stack.client() as client:
        for n in range(20):
            headers = {"X-Forwarded-For": f"client-{n}"}
            assert login(client, {"user": USER, "password": f"guess{n}"}, headers=headers).status_code == 400
        # from a real address the count starts at zero: nothing was checked
        assert login(client, headers={"X-Forwarded-For": "198.51.100.44"}).status_code == 200


@pytest.mark.parametrize("proxies", ["*", ["10.0.0.1", "*"], ["proxy.example.com"], ["10.0.0.300"]])
def test_trusted_proxies_must_be_addresses(proxies: object) -> None:
    from moonship_api.service import _settings

    from moonship_core import ConfigError

    with pytest.raises(ConfigError) as raised:
        _settings({"trusted_proxies": proxies})
    message = str(raised.value)
    assert message.startswith("moonship.api.trusted_proxies: ")
    if "*" in str(proxies):
        assert "'*' would believe X-Forwarded-For from any client" in message


def test_forwarded_addresses_count_only_from_trusted_proxies(
    make_stack: MakeStack, certs: Certs
) -> None:
    stack = make_stack(settings=api_settings(certs, trusted_proxies=[]))
    throttle(stack, hold=0)
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
        client, user = "198.51.100.20", USER
        for _ in range(4):
            await throttle.failed(user, client)
            assert await throttle.retry_after(user, client) is None
        waits = []
        for _ in range(2000):  # the lock doubles up to 60 s and never overflows
            await throttle.failed(user, client)
            waits.append(await throttle.retry_after(user, client))
        assert waits[:8] == [1, 2, 4, 8, 16, 32, 60, 60] and waits[-1] == 60
        now[0] += 60.5
        assert await throttle.retry_after(user, client) is None
        assert await throttle.retry_after(user, "198.51.100.21") is None  # another address
        await throttle.succeeded(user, client)
        # the pair counts from zero again; the address (2004 failures over every name) stays locked
        await throttle.failed(user, client)
        assert await throttle.retry_after("someone", client) == 60
        assert await throttle.retry_after(user, "198.51.100.21") is None
        assert not throttle._queues  # nothing left per address

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
