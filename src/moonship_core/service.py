"""Service: a long-running part of a Moonship process (the engine, the API, the monitor)."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from .bus import MessageBus
    from .cache import SharedCache
    from .config import MoonshipConfig
    from .control import ControlPlane
    from .plugins import Plugins


@dataclass
class ServiceContext:
    config: MoonshipConfig
    #: the validated `moonship.<service name>` section (the service's settings_model), or {}
    settings: Any
    #: every validated plugin section by name
    sections: dict[str, Any]
    plugins: Plugins
    cache: SharedCache
    bus: MessageBus
    control: ControlPlane
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("moonship"))


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

    @abstractmethod
    async def stop(self) -> None:
        """Stop gracefully; idempotent."""
