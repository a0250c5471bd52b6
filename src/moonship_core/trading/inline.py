"""Inline steps: a task's coroutine work run by someone else's call, as that task (its context, as the loop's
current task), without a loop turn; if the work suspends, the task itself takes it over from there.

A replay uses this to deliver an input to a strategy that is waiting for the market with nothing else
pending: the strategy's own callbacks run the same code as on its task, minus the task switch.
"""

from __future__ import annotations

import asyncio
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Coroutine, Generator
from contextvars import Context
from typing import Any


class Resumed:
    """Awaits a coroutine that was started elsewhere and suspended having yielded `pending` (a future, or
    None for a bare yield): the awaiting task waits on that and drives the coroutine on to its end."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, Any, None]:
        coro, value = self.coro, self.pending
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # thrown in (a cancel): on to the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return


def step(task: asyncio.Task[Any], context: Context, coro: Coroutine[Any, Any, None]) -> Resumed | None:
    """Run `coro` as `task` (in `context`, `task` current) until it ends (None) or suspends (the Resumed
    that `task` must await to carry on). Called with no task current, as a loop callback would be."""
    loop = task.get_loop()
    _enter_task(loop, task)
    try:
        pending = context.run(coro.send, None)
    except StopIteration:
        return None
    finally:
        _leave_task(loop, task)
    return Resumed(coro, pending)
