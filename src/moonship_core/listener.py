"""A TCP listening socket for the servers Moonship runs itself (the API, the engine's metrics)."""

from __future__ import annotations

import socket

from .errors import MoonshipError


def bind_listener(host: str, port: int, *, what: str, backlog: int) -> socket.socket:
    """A socket listening on host:port now, so a busy port shows before anything starts; MoonshipError
    (one line, naming `what`, e.g. "the API") when it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise MoonshipError(f"{what} cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
