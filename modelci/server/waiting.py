"""Background tasks: waiting for a wake-up or a poll interval, and ending them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

logger = logging.getLogger("modelci.server")

CANCEL_WITHIN_S = 10.0  # how long a stopping hub waits for its background tasks


async def woken_or_timed_out(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass.

    Not ``asyncio.wait_for(event.wait(), seconds)``: on Python 3.11 a cancellation that
    arrives as the event is set is lost there, and a loop waiting that way goes on after
    its task was cancelled (a hub stopping then waits for it forever). A cancellation of
    the task waiting here always ends the wait with CancelledError."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def cancelled(*tasks: asyncio.Task[Any] | None, within_s: float = CANCEL_WITHIN_S) -> None:
    """The tasks cancelled and ended, for a hub that is stopping.

    Each is cancelled again every second while it runs: a library call can take a
    cancellation in (a database driver waiting out its server selection, say), and a
    stopping hub must not wait on it. Past ``within_s`` those still running are logged
    and left to the event loop's end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    pending = {task for task in tasks if task is not None and not task.done()}
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(1.0, deadline - loop.time()))
    if pending:
        logger.warning(
            "%d task(s) did not end when cancelled: %s",
            len(pending),
            ", ".join(task.get_name() for task in pending),
        )
