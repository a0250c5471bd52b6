"""Serve the simulated VALR with uvicorn on a free loopback port, inside the test's event loop."""

from __future__ import annotations

from typing import Any

from moonship_core.testing import AsgiServer

from .app import ValrSimulator


class SimServer(AsgiServer):
    """`async with SimServer(sim) as server:` then point the client at `server.rest_url` / `server.ws_url`."""

    def __init__(self, sim: ValrSimulator) -> None:
        super().__init__(sim.app, ws_ping_interval=None)
        self.sim = sim

    async def __aexit__(self, *exc: Any) -> None:
        await self.sim.drop_connections()
        await super().__aexit__(*exc)
