"""A local VALR: REST + trade socket + account socket on loopback, speaking VALR's wire format."""

from .app import Faults, ValrSimulator, valr_signature
from .matching import Exchange, PairSpec, Rejected
from .participants import Participants
from .server import SimServer

__all__ = [
    "Exchange",
    "Faults",
    "PairSpec",
    "Participants",
    "Rejected",
    "SimServer",
    "ValrSimulator",
    "valr_signature",
]
