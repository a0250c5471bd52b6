"""Real servers and processes for tests: a free port, a throwaway redis-server, a subprocess with its output
collected, an ASGI app served by uvicorn and a websocket handler served by websockets, inside the running
loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from websockets.asyncio.server import ServerConnection, serve


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway redis-server (no persistence) on 127.0.0.1 from the program at `binary`; stop and start it
    again on the same port."""

    def __init__(self, binary: str | Path) -> None:
        self.binary = str(binary)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        no_persistence = ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", *no_persistence],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None


class Process:
    """A subprocess with its combined output collected line by line (by a thread: reading never blocks)."""

    def __init__(self, *argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)

    def _drain(self) -> None:
        while True:
            try:
                self.lines.append(self._queue.get_nowait())
            except queue.Empty:
                return

    @property
    def output(self) -> str:
        self._drain()
        return "".join(self.lines)

    def count(self, text: str) -> int:
        return self.output.count(text)

    def wait_for(self, text: str, timeout: float = 30, after: int = 0) -> None:
        """Wait until `text` appears in the output (in lines after the first `after` lines)."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            if any(text in line for line in self.lines[after:]):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._drain()
                tail = "".join(self.lines[-30:])
                raise AssertionError(f"{text!r} not in output (exit {self.process.poll()}):\n{tail}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            time.sleep(0.05)
            self._drain()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class MoonshipProcess(Process):
    """`python -m moonship ARGS` in `cwd`."""

    def __init__(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__(sys.executable, "-m", "moonship", *args, cwd=cwd, env=env)


class AsgiServer:
    """An ASGI app served by uvicorn on 127.0.0.1 inside the running loop: `async with AsgiServer(app) as s`,
    then `s.rest_url` / `s.ws_url`. `options` go to uvicorn.Config (e.g. ws_ping_interval)."""

    def __init__(self, app: Any, port: int = 0, **options: Any) -> None:
        self.app = app
        self.port = port
        self.options = {"log_level": "warning", "lifespan": "off", "timeout_graceful_shutdown": 1, **options}
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, **self.options))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving (open connections are the app's to close first)."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)
        self._server = self._task = None

    async def __aenter__(self) -> AsgiServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


@asynccontextmanager
async def websocket_server(
    handler: Callable[[ServerConnection], Awaitable[None]], **options: Any
) -> AsyncIterator[str]:
    """`handler` served by websockets on a free loopback port: yields the server's ws:// URL. `options` go to
    websockets' serve (e.g. process_request)."""
    async with serve(handler, "127.0.0.1", 0, **options) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"
