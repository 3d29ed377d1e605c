"""Bounded waits both engines' shutdown and rebalances use, and how their loops stop."""

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


class InFlight:
    """Events an engine handed to the processor and that are not finished yet: the
    bound it keeps (``room``), what its drain and revocations wait for (``idle``), and
    the gauge it reports to."""

    def __init__(self, report: Callable[[int], None] | None = None) -> None:
        self.count = 0
        self.room = asyncio.Event()
        self.room.set()
        self.idle = asyncio.Event()
        self.idle.set()
        self._report = report

    def add(self, n: int) -> None:
        self.count += n
        self.idle.clear()
        if self._report is not None:
            self._report(self.count)

    def remove(self, n: int) -> None:
        self.count -= n
        if self._report is not None:
            self._report(self.count)
        self.room.set()
        if self.count == 0:
            self.idle.set()

    async def drain(self, timeout_s: float) -> bool:
        return await drain(self.idle, timeout_s, lambda: self.count)


class Stopping:
    """The one way an engine's loop ends: asked to (``set``, a signal or a revocation),
    or because a batch failed (``fail``); ``raise_failure`` re-raises the latter once
    the loop is out."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.failure: BaseException | None = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    def fail(self, exc: BaseException, records: int) -> None:
        # A bug, not a bad event (those become dead letters). The batch's offsets can
        # never be committed now, so stop the worker: a restart reprocesses the batch,
        # instead of a partition silently holding back every later commit.
        log.error("batch of %d record(s) failed; stopping the worker", records, exc_info=exc)
        self.failure = exc
        self._event.set()

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise RuntimeError("a batch failed unexpectedly") from self.failure
