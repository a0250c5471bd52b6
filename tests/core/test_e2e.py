"""The bundled example as a user runs it: a real `moonship` process trading paper over the offline sim."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moonship", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _wait_for(lines: queue.Queue[str], seen: list[str], text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{text!r} not logged within {timeout}s; got:\n{''.join(seen[-40:])}")
        try:
            seen.append(lines.get(timeout=remaining))
        except queue.Empty:
            continue


@pytest.mark.slow
def test_paper_example_trades_and_stops_cleanly_on_sigterm() -> None:
    proc, lines = _start("run", "-c", "examples/paper.yml")
    seen: list[str] = []
    try:
        _wait_for(lines, seen, "engine paper started", 30)
        _wait_for(lines, seen, "strategy.quoter: started", 10)
        _wait_for(lines, seen, "FILLED: filled 0.01", 30)  # paper orders placed and filled
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.1)
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert "quoter: stopped: engine stopped" in text  # on_stop ran
    assert "engine paper stopped" in text
    assert "Traceback" not in text


@pytest.mark.slow
def test_seed_bare_form_runs_the_engine_and_sigint_stops_it() -> None:
    proc, lines = _start("-c", "examples/paper.yml")
    seen: list[str] = []
    try:
        _wait_for(lines, seen, "engine paper started", 30)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
