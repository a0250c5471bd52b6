"""Service: a long-running part of a Moonship process (the engine, the API, the monitor), and the registry of
plugin-provided classes every part resolves names through."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from ..clock import Clock, LiveClock
from ..config import MoonshipConfig
from ..control import ControlPlane
from .stores import MessageBus, SharedCache, Stores


class Registry(Protocol):
    """Plugin-provided classes by kind (the hook name without `moonship_`: "market_clients", "algos",
    "services", "backends", or any kind a plugin declares) and name."""

    def resolve(self, kind: str, name: str, *, dotted: bool = True) -> type[Any]:
        """The entry `name` of `kind` (imported now if registered by reference); ConfigError if unknown.
        A dotted class path is imported only if `dotted` (never for names that came from outside)."""
        ...

    def names(self, kind: str) -> Collection[str]:
        """Every registered name of `kind`."""
        ...


@dataclass
class ServiceContext:
    config: MoonshipConfig
    #: the validated `moonship.<service name>` section (the service's settings_model), or {}
    settings: Any
    #: every validated plugin section by name
    sections: Mapping[str, Any]
    registry: Registry
    stores: Stores
    control: ControlPlane
    clock: Clock = field(default_factory=LiveClock)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("moonship"))

    @property
    def cache(self) -> SharedCache:
        return self.stores.cache

    @property
    def bus(self) -> MessageBus:
        return self.stores.bus


class Service(ABC):
    """Started and stopped by the launcher; services talk to engines only through cache and bus."""

    name: ClassVar[str] = ""
    settings_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.logger = context.logger.getChild(self.name) if self.name else context.logger

    @abstractmethod
    async def start(self) -> None:
        """Start; returns once the service is up. Raise ConfigError/MoonshipError to refuse to start."""

    async def preflight(self) -> None:  # noqa: B027 - optional hook
        """Check what can be checked before anything starts (files readable, a port free, ...). Raise
        ConfigError for a problem in the config, MoonshipError for one in the environment; the message is
        one line. The launcher calls it for every service before it starts any, `moonship config check` for
        the services whose section the config has; after it, `stop()` releases whatever it reserved (a
        listening socket, say) if the service does not start. Default: nothing to check."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop gracefully; idempotent (also after `preflight()` alone)."""
