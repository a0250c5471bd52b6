"""Backends of the shared cache and message bus: memory.py (in-process) and redis.py. Internal: plugins import
from `moonship_core`."""
