"""Start-up checks: what can be verified before any service (and so any strategy) starts, for the launcher
and for `moonship config check`. Each problem is one line; exit 2 for the config, 1 for the environment."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .config import MoonshipConfig
from .contracts.service import Service, ServiceContext
from .contracts.stores import Stores
from .control import ControlPlane
from .errors import ConfigError, MoonshipError
from .metrics import MetricsServer
from .plugins import Plugins

logger = logging.getLogger("moonship")

#: seconds the start-up checks give the shared cache to answer
PREFLIGHT_TIMEOUT = 5.0
#: exit codes: a problem in the config, one in the environment (a port taken, Redis down)
EXIT_CONFIG = 2
EXIT_ENVIRONMENT = 1


class Problems:
    """What the start-up checks found, one line each; the exit code is 2 if any is a config problem."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.config = False

    def add(self, exc: BaseException) -> None:
        self.config = self.config or isinstance(exc, ConfigError)
        text = " ".join(str(exc).split()) or type(exc).__name__  # one line, whatever the message
        self.lines.append(text)

    @property
    def exit_code(self) -> int:
        return EXIT_CONFIG if self.config else EXIT_ENVIRONMENT

    def report(self, prog: str = "moonship") -> int:
        for line in self.lines:
            print(f"{prog}: {line}", file=sys.stderr, flush=True)
        return self.exit_code

    def __bool__(self) -> bool:
        return bool(self.lines)


def backend_name(config: MoonshipConfig) -> str:
    """The shared cache's location without credentials, for messages."""
    url = config.redis.url
    if not url:
        return "the in-process cache"
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"Redis at unix:{parts.path}"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"Redis at {parts.hostname}:{port or 6379}"


async def check_stores(config: MoonshipConfig, stores: Stores) -> None:
    """The shared cache answers (Redis reachable and authenticated) within PREFLIGHT_TIMEOUT, else
    MoonshipError."""
    try:
        async with asyncio.timeout(PREFLIGHT_TIMEOUT):
            await stores.cache.get("moonship:preflight")
    except TimeoutError:
        raise MoonshipError(
            f"{backend_name(config)} did not answer within {PREFLIGHT_TIMEOUT:g} s (moonship.redis.url)"
        ) from None
    except (OSError, MoonshipError) as exc:  # ConnectionError from the backend included
        detail = " ".join(str(exc).split()).removeprefix("redis: ")
        raise MoonshipError(f"{backend_name(config)} is not usable (moonship.redis.url): {detail}") from None


async def preflight(
    config: MoonshipConfig, stores: Stores | None, services: Iterable[Service], problems: Problems
) -> None:
    """The start-up checks: the shared cache (if `stores`), then each service's preflight(); every problem
    goes to `problems`."""
    if stores is not None:
        try:
            await check_stores(config, stores)
        except MoonshipError as exc:
            problems.add(exc)
    for service in services:
        try:
            await service.preflight()
        except (MoonshipError, OSError) as exc:
            problems.add(exc)


async def check(config: MoonshipConfig, plugins: Plugins, sections: dict[str, Any]) -> Problems:
    """`moonship config check`'s environment checks: the engine's metrics port (`moonship.metrics.port`), the
    shared cache when `moonship.redis.url` is set, and the preflight of each service whose section the config
    has (the API: certificate, key and port)."""
    problems = Problems()
    if config.metrics.port is not None:
        try:
            await MetricsServer.bind(config.metrics.host, config.metrics.port, bytes).close()
        except MoonshipError as exc:
            problems.add(exc)
    stores: Stores | None = None
    made: list[Service] = []
    try:
        names = [name for name in plugins.names("services") if name in sections]
        if not names and not config.redis.url:
            return problems  # nothing to reach, nothing to bind
        stores = plugins.stores(config)
        await stores.open()
        control = ControlPlane(stores.cache, stores.bus)
        for name in names:
            service_class: type[Service] = plugins.resolve("services", name)
            context = ServiceContext(
                config=config, settings=sections[name], sections=sections, registry=plugins,
                stores=stores, control=control,
            )
            made.append(service_class(context))
        await preflight(config, stores if config.redis.url else None, made, problems)
    except (MoonshipError, OSError) as exc:
        problems.add(exc)
    finally:
        for service in made:
            try:
                await service.stop()
            except Exception as exc:
                logger.debug("releasing %s after its checks failed: %s", service.name, exc)
        if stores is not None:
            try:
                await stores.close()
            except Exception as exc:
                logger.debug("closing the shared cache and bus failed: %s", exc)
    return problems
