"""Alias package so that `python -m moonship` runs the `moonship` command; the code is in `moonship_core`."""
