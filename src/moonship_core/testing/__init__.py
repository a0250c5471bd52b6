"""The test kit (`pip install moonship-core[testing]`): recording market events, `until`, engines built from a
config and test plugins, a scripted algo and a scripted market client, and real servers and processes."""

from .algos import AnyStatusAlgo, ScriptedAlgo
from .clients import ScriptedClient
from .engines import LocalPlugin, build_engine, make_client, plugins_with, started
from .events import RecordingEvents
from .recording import BookTap, book_state
from .servers import AsgiServer, MoonshipProcess, Process, RedisServer, free_port, websocket_server
from .waiting import until

__all__ = [
    "AnyStatusAlgo",
    "AsgiServer",
    "BookTap",
    "LocalPlugin",
    "MoonshipProcess",
    "Process",
    "RecordingEvents",
    "RedisServer",
    "ScriptedAlgo",
    "ScriptedClient",
    "book_state",
    "build_engine",
    "free_port",
    "make_client",
    "plugins_with",
    "started",
    "until",
    "websocket_server",
]
