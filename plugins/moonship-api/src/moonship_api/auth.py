"""Password check, server-side sessions and login throttling, all kept in the shared cache."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable

import bcrypt

from moonship_core import SharedCache, utc_now

SESSION_PREFIX = "moonship:api:session:"
THROTTLE_PREFIX = "moonship:api:login-failures:"
COOKIE_NAME = "__Host-session_token"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32): 256 bits


class Credentials:
    """The one configured user; bcrypt runs in a worker thread and the user name compares in constant time."""

    def __init__(self, user: str, password_hash: str) -> None:
        self._user = user.encode()
        self._hash = password_hash.encode()
        #: identifies this user name and hash (sessions made under others are revoked); reveals neither
        material = b"moonship-api-credentials\0%s\0%s" % (self._user, self._hash)
        self.fingerprint = hashlib.sha256(material).hexdigest()

    async def check(self, user: str, password: str) -> bool:
        user_ok = hmac.compare_digest(user.encode(), self._user)
        # bcrypt reads at most 72 bytes (newer versions refuse longer input instead of truncating)
        secret = password.encode()[:72]
        password_ok = await asyncio.to_thread(self._checkpw, secret)
        return user_ok and password_ok

    def _checkpw(self, secret: bytes) -> bool:
        try:
            return bcrypt.checkpw(secret, self._hash)
        except ValueError:  # e.g. a NUL byte
            return False


class Sessions:
    """Sessions by token, stored under the token's SHA-256 (a cache dump reveals no usable token).

    A session ends `lifetime` seconds after login whatever its use, after `idle` seconds unused (None: only
    the lifetime counts), or as soon as the configured credentials change: each session holds the fingerprint
    of the user name and password hash it was made under. Its cache entry always has a TTL, the smaller of the
    idle expiry and the lifetime left."""

    def __init__(
        self,
        cache: SharedCache,
        idle_minutes: float,
        lifetime_hours: float = 12,
        credentials: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.idle = idle_minutes * 60 or None
        self.lifetime = lifetime_hours * 3600
        self.credentials = credentials
        self.clock = clock

    @staticmethod
    def key(token: str) -> str:
        return SESSION_PREFIX + hashlib.sha256(token.encode()).hexdigest()

    def _ttl(self, ends: float) -> float:
        left = ends - self.clock()
        return left if self.idle is None else min(self.idle, left)

    async def create(self, user: str) -> str:
        token = secrets.token_urlsafe(32)
        ends = self.clock() + self.lifetime
        session = {"user": user, "created": utc_now(), "ends": ends, "credentials": self.credentials}
        await self.cache.set(self.key(token), session, ttl=self._ttl(ends))
        return token

    async def touch(self, token: str) -> bool:
        """True if `token` is a live session; restarts its idle timer (never beyond the lifetime)."""
        if not _TOKEN.match(token):
            return False
        key = self.key(token)
        session = await self.cache.get(key)
        if not isinstance(session, dict):
            return False
        ends = session.get("ends")
        if (
            not hmac.compare_digest(str(session.get("credentials", "")), self.credentials)
            or not isinstance(ends, int | float)
            or self._ttl(ends) <= 0
        ):
            await self.cache.delete(key)  # made under other credentials, before lifetimes, or over
            return False
        if self.idle is None:
            return True  # the TTL set at login is the lifetime
        return await self.cache.expire(key, self._ttl(ends))

    async def alive(self, token: str) -> bool:
        """True while `token` is a live session, without restarting its idle timer (a dashboard's stream)."""
        if not _TOKEN.match(token):
            return False
        session = await self.cache.get(self.key(token))
        return (
            isinstance(session, dict)
            and hmac.compare_digest(str(session.get("credentials", "")), self.credentials)
            and isinstance(session.get("ends"), int | float)
            and self._ttl(session["ends"]) > 0
        )

    async def delete(self, token: str) -> None:
        if _TOKEN.match(token):
            await self.cache.delete(self.key(token))


class Throttled(Exception):
    """A login attempt refused without checking the password; retry after `retry_after` whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = max(1, retry_after)


class _Queue:
    """Login attempts from one client, checked one at a time in arrival order."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.waiting = 0


class LoginThrottle:
    """Failed logins counted per (user name, client) and per client (an IPv6 /64 is one client), in the
    shared cache so replicas share them. From the `free`-th failure in a row of a (user, client) pair
    (`client_free` for a client over every user name) each failure locks the pair (client) out for 1, 2, 4...
    seconds, at most `max_delay`: a backoff with a cap, never a permanent lock. `memory` seconds without
    failures clear a count; a success clears the pair's count.

    An attempt while locked is *delayed*, not refused, when the lock ends within `hold` seconds: it waits, and
    the attempts from one client are checked one at a time in arrival order, so an attempt that came first is
    checked first once the lock ends. Longer waits are refused (Throttled) with a Retry-After that brings the
    client back inside the hold window. An attacker failing now and then from the real user's address thus
    delays the real user by at most `max_delay` + `hold`. What remains is a flood from that same address and
    user name that keeps the queue full (at most `max_waiting` per client): only something the address does
    not share (a device cookie, a second factor) could tell the two apart."""

    def __init__(
        self,
        cache: SharedCache,
        free: int = 5,
        client_free: int = 20,
        max_delay: float = 60,
        memory: float = 900,
        hold: float = 3,
        max_waiting: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.free = free
        self.client_free = client_free
        self.max_delay = max_delay
        self.memory = memory
        self.hold = hold
        self.max_waiting = max_waiting
        self.clock = clock
        #: queues only for clients with an attempt in progress (no per-address state is left behind)
        self._queues: dict[str, _Queue] = {}

    @staticmethod
    def key(client: str) -> str:
        """The cache key that counts `client`'s failures over every user name."""
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return THROTTLE_PREFIX + client
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return THROTTLE_PREFIX + str(address.ipv4_mapped)
            return THROTTLE_PREFIX + str(ipaddress.ip_network(f"{address}/64", strict=False))
        return THROTTLE_PREFIX + str(address)

    @classmethod
    def user_key(cls, user: str, client: str) -> str:
        """The cache key that counts the failures of `user` from `client` (the name hashed: any size fits)."""
        digest = hashlib.sha256(user.encode(errors="surrogatepass")).hexdigest()[:32]
        return f"{cls.key(client)}:user:{digest}"

    async def retry_after(self, user: str, client: str) -> int | None:
        """Whole seconds until `user` may try again from `client`, or None if it may now."""
        wait = await self._wait(user, client)
        return math.ceil(wait) if wait > 0 else None

    async def _wait(self, user: str, client: str) -> float:
        now = self.clock()
        waits = [0.0]
        for key in (self.user_key(user, client), self.key(client)):
            until = await self.cache.get(key + ":until")
            if isinstance(until, int | float):
                waits.append(float(until) - now)
        return max(waits)

    @contextlib.asynccontextmanager
    async def attempt(self, user: str, client: str) -> AsyncIterator[None]:
        """Admit one login attempt: at once, after a delay of at most `hold` seconds, or raise Throttled.
        Attempts from one client run one at a time, first come first served."""
        wait = await self._wait(user, client)
        if wait > self.hold:
            raise Throttled(math.ceil(wait - self.hold))
        name = self.key(client)
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue()
        if queue.waiting >= self.max_waiting:
            raise Throttled(math.ceil(max(wait, 1)))
        queue.waiting += 1
        try:
            async with queue.lock:
                # someone ahead may have failed meanwhile and locked the client again
                while (wait := await self._wait(user, client)) > 0:
                    if wait > self.hold:
                        raise Throttled(math.ceil(wait - self.hold))
                    await asyncio.sleep(wait)
                yield
        finally:
            queue.waiting -= 1
            if queue.waiting == 0:
                del self._queues[name]

    async def failed(self, user: str, client: str) -> None:
        ttl = self.memory + self.max_delay
        for key, free in ((self.user_key(user, client), self.free), (self.key(client), self.client_free)):
            failures = await self.cache.incr(key, ttl=ttl)  # atomic, so replicas count every failure
            if failures >= free:
                until = self.clock() + min(2.0 ** min(failures - free, 30), self.max_delay)
                await self.cache.set(key + ":until", until, ttl=ttl)

    async def succeeded(self, user: str, client: str) -> None:
        """Clear the (user, client) count; the client's count over every user name runs out by itself."""
        key = self.user_key(user, client)
        await self.cache.delete(key, key + ":until")
