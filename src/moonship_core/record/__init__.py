"""Recordings of raw market input: writer.py (compressed JSON lines per market, hourly files, a manifest) and
reader.py. Replay is sim/replay.py; `moonship record` is command.py."""
