"""Waiting for a wake-up or a poll interval, whichever comes first."""

from __future__ import annotations

import asyncio
import contextlib


async def woken_or_timed_out(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass.

    Not ``asyncio.wait_for(event.wait(), seconds)``: on Python 3.11 a cancellation that
    arrives as the event is set is lost there, and a loop waiting that way goes on after
    its task was cancelled (a hub stopping then waits for it forever). A cancellation of
    the task waiting here always ends the wait with CancelledError."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
