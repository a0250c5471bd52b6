"""Local exchange simulators (loopback REST + websocket servers speaking each exchange's wire format)."""
