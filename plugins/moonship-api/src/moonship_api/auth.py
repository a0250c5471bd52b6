"""Password check, server-side sessions and login throttling, all kept in the shared cache."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import time
from collections.abc import Callable

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
    """Sessions by token, stored under the token's SHA-256 (a cache dump reveals no usable token)."""

    def __init__(self, cache: SharedCache, idle_minutes: float) -> None:
        self.cache = cache
        self.ttl = idle_minutes * 60 or None

    @staticmethod
    def key(token: str) -> str:
        return SESSION_PREFIX + hashlib.sha256(token.encode()).hexdigest()

    async def create(self, user: str) -> str:
        token = secrets.token_urlsafe(32)
        await self.cache.set(self.key(token), {"user": user, "created": utc_now()}, ttl=self.ttl)
        return token

    async def touch(self, token: str) -> bool:
        """True if `token` is a live session; restarts its idle timer."""
        if not _TOKEN.match(token):
            return False
        if self.ttl is None:
            return await self.cache.get(self.key(token)) is not None
        return await self.cache.expire(self.key(token), self.ttl)

    async def delete(self, token: str) -> None:
        if _TOKEN.match(token):
            await self.cache.delete(self.key(token))


class LoginThrottle:
    """Failed logins per client address (IPv6: per /64 network): from the `free`-th failure in a row on,
    each failure locks that address out for 1, 2, 4 ... seconds, at most `max_delay`; a success or `memory`
    seconds without failures clear the count. Other addresses are never affected, so the real user is held
    back for `max_delay` at worst."""

    def __init__(
        self,
        cache: SharedCache,
        free: int = 5,
        max_delay: float = 60,
        memory: float = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.free = free
        self.max_delay = max_delay
        self.memory = memory
        self.clock = clock
        # one lock per stripe of addresses: concurrent attempts from one address are checked one at a time
        self._locks = [asyncio.Lock() for _ in range(64)]

    def lock(self, client: str) -> asyncio.Lock:
        return self._locks[hash(self.key(client)) % len(self._locks)]

    @staticmethod
    def key(client: str) -> str:
        """The cache key that counts `client`'s failures."""
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return THROTTLE_PREFIX + client
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return THROTTLE_PREFIX + str(address.ipv4_mapped)
            return THROTTLE_PREFIX + str(ipaddress.ip_network(f"{address}/64", strict=False))
        return THROTTLE_PREFIX + str(address)

    async def retry_after(self, client: str) -> int | None:
        """Whole seconds until `client` may try again, or None if it may now."""
        until = await self.cache.get(self.key(client) + ":until")
        if not isinstance(until, int | float):
            return None
        wait = float(until) - self.clock()
        return math.ceil(wait) if wait > 0 else None

    async def failed(self, client: str) -> None:
        key = self.key(client)
        ttl = self.memory + self.max_delay
        failures = await self.cache.incr(key, ttl=ttl)  # atomic, so replicas count every failure
        if failures >= self.free:
            until = self.clock() + min(2.0 ** min(failures - self.free, 30), self.max_delay)
            await self.cache.set(key + ":until", until, ttl=ttl)

    async def succeeded(self, client: str) -> None:
        key = self.key(client)
        await self.cache.delete(key, key + ":until")
