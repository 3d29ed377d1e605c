"""Bounded waits both engines' shutdown and rebalances use."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for ``event``; False if the deadline passed first."""
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
        return True
    except TimeoutError:
        return False


async def drain(idle: asyncio.Event, timeout_s: float, in_flight: Callable[[], int]) -> bool:
    """Wait (at most ``timeout_s``) for the work in flight to finish, and log how it went."""
    started = time.monotonic()
    done = await wait_set(idle, timeout_s)
    log.info(
        "drained in %.2fs: %s (%d event(s) still in flight)",
        time.monotonic() - started,
        "complete" if done else "deadline passed",
        in_flight(),
    )
    return done
