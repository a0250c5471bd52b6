"""A local Luno: matching engine, REST + market stream + user stream server, background participants."""

from .engine import Exchange, LunoError, SimMarket, SimOrder, User
from .participants import Participants
from .server import Faults, LunoSimulator

__all__ = [
    "Exchange",
    "Faults",
    "LunoError",
    "LunoSimulator",
    "Participants",
    "SimMarket",
    "SimOrder",
    "User",
]
