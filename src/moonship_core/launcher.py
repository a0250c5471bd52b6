"""The launcher: runs the requested services (engine, api, monitor) in one process until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from .config import MoonshipConfig, section_settings, validate_sections
from .contracts.service import Service, ServiceContext
from .contracts.stores import Stores
from .control import ControlPlane
from .errors import MoonshipError
from .plugins import Plugins

logger = logging.getLogger("moonship")


def run(config: MoonshipConfig, plugins: Plugins, services: list[str]) -> int:
    """Run `services` until stopped; returns the process exit code."""
    try:
        return asyncio.run(_run(config, plugins, services))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


def open_backend(config: MoonshipConfig, plugins: Plugins) -> Stores:
    """The shared cache and message bus chosen by `moonship.redis.url` (in-memory when unset), not opened."""
    url = config.redis.url
    stores: Stores = plugins.backend(url.split(":", 1)[0] if url else "memory")(config)
    return stores


async def _run(config: MoonshipConfig, plugins: Plugins, services: list[str]) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    started: list[Service] = []
    code = 0
    stores: Stores | None = None
    try:
        sections: dict[str, Any] = validate_sections(config, plugins.section_models())
        stores = open_backend(config, plugins)
        await stores.open()
        control = ControlPlane(stores.cache, stores.bus)
        for name in services:
            service_class: type[Service] = plugins.resolve("services", name)
            context = ServiceContext(
                config=config,
                settings=section_settings(sections, name, service_class.settings_model),
                sections=sections,
                registry=plugins,
                stores=stores,
                control=control,
            )
            service = service_class(context)
            started.append(service)
            await service.start()
        logger.info("moonship running (%s); Ctrl-C to stop", ", ".join(services))
        await stopping.wait()
        logger.info("stopping")
    except MoonshipError as exc:
        logger.error("start-up failed: %s", exc)
        code = 1
    finally:
        for service in reversed(started):
            try:
                await service.stop()
            except Exception:
                logger.exception("stopping %s failed", service.name)
        if stores is not None:
            try:
                await stores.close()
            except Exception as exc:
                logger.warning("closing the shared cache and bus failed: %s", exc)
    return code
