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
from .preflight import EXIT_ENVIRONMENT, Problems, preflight

logger = logging.getLogger("moonship")

def run(config: MoonshipConfig, plugins: Plugins, services: list[str]) -> int:
    """Run `services` until stopped; returns the process exit code."""
    try:
        return asyncio.run(_run(config, plugins, services))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


async def _run(config: MoonshipConfig, plugins: Plugins, services: list[str]) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    made: list[Service] = []
    started: list[Service] = []
    code = 0
    stores: Stores | None = None
    try:
        sections: dict[str, Any] = validate_sections(config, plugins.section_models())
        stores = plugins.stores(config)
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
            made.append(service_class(context))
        # everything that can be checked, before any service (and so any strategy) starts
        problems = Problems()
        await preflight(config, stores, made, problems)
        if problems:
            return problems.report()
        for service in made:
            started.append(service)
            await service.start()
        logger.info("moonship running (%s); Ctrl-C to stop", ", ".join(services))
        await stopping.wait()
        logger.info("stopping")
    except (MoonshipError, OSError) as exc:  # OSError: the cache or bus failed during start-up
        logger.error("start-up failed: %s", " ".join(str(exc).split()))
        code = EXIT_ENVIRONMENT
    finally:
        # the started services, and those never started whose preflight() may have reserved something
        stopping_order = [s for s in made if s in started or type(s).preflight is not Service.preflight]
        for service in reversed(stopping_order):
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
