"""The worker's processing runtime: bounded concurrency, ordered acks, shutdown.

The Faust agent hands every raw event to :meth:`WorkerRuntime.submit`. Up to
``in_flight_limit`` events are processed concurrently; when the limit is reached
``submit`` waits, so the agent stops pulling and Faust's flow control stops fetching:
that is the backpressure. Acknowledgements go back to Faust strictly in offset order
per partition (see streams/engines/offset_tracker.py), so the committed offset never passes an
event still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from streams.engines.faust_transactions import Delivery, PartitionTurns, current_delivery
from streams.engines.offset_tracker import OffsetTracker
from streams.kafka.records import InputRecord
from streams.processing.event_processor import EventProcessor

log = logging.getLogger(__name__)

Ack = Callable[[Any], Awaitable[Any]]


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for ``event``; False if the deadline passed first."""
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
        return True
    except TimeoutError:
        return False


async def drain(idle: asyncio.Event, timeout_s: float, in_flight: Callable[[], int]) -> bool:
    """Wait (at most ``timeout_s``) for the work in flight to finish, and log how it went.

    Shared by both engines' shutdown."""
    started = time.monotonic()
    done = await wait_set(idle, timeout_s)
    log.info(
        "drained in %.2fs: %s (%d event(s) still in flight)",
        time.monotonic() - started,
        "complete" if done else "deadline passed",
        in_flight(),
    )
    return done


class WorkerRuntime:
    def __init__(
        self,
        processor: EventProcessor,
        *,
        in_flight_limit: int,
        on_in_flight: Callable[[int], None] | None = None,
        retry_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.processor = processor
        self._limit = in_flight_limit
        self._semaphore = asyncio.Semaphore(in_flight_limit)
        self._tracker: OffsetTracker[Any] = OffsetTracker()
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_in_flight = on_in_flight
        self._backoff = retry_backoff_s
        self._max_backoff = max_backoff_s
        self._draining = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.finished = 0
        self.exactly_once = False
        self.turns = PartitionTurns(self._tracker.oldest)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    async def submit(self, record: InputRecord, token: Any, ack: Ack) -> None:
        """Start processing ``record``; ``ack(token)`` is called once it may be committed."""
        if self._draining.is_set():
            # Shutting down: take nothing new. The event is not acked, so the next
            # owner of the partition processes it.
            await asyncio.Event().wait()
        await self._semaphore.acquire()
        self._tracker.start(record.tp, record.offset, token)
        self._idle.clear()
        task = asyncio.ensure_future(self._run(record, ack, token))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        if self._on_in_flight is not None:
            self._on_in_flight(len(self._tasks))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._semaphore.release()
        if self._on_in_flight is not None:
            self._on_in_flight(len(self._tasks))
        if not self._tasks:
            self._idle.set()

    async def _run(self, record: InputRecord, ack: Ack, token: Any = None) -> None:
        if self.exactly_once:
            current_delivery.set(Delivery(record, token, ack))
        delay = self._backoff
        while True:
            try:
                await self.processor.process(record)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The processor turns bad events into dead letters itself; what reaches
                # here is infrastructure (Kafka refused the result). Never drop the event:
                # keep trying, and hold back its offset meanwhile.
                log.error(
                    "could not finish %s[%d]@%d (%s: %s); retrying in %.1fs",
                    record.topic,
                    record.partition,
                    record.offset,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
        self.finished += 1
        released = self._tracker.finish(record.tp, record.offset)
        self.turns.notify(record.tp)
        for done in released:
            try:
                await ack(done)
            except Exception:
                log.exception("acknowledging %s[%d] failed", record.topic, record.partition)

    def forget_partitions(self, tps: set[tuple[str, int]]) -> None:
        for tp in tps:
            self._tracker.forget(tp)
            self.turns.notify(tp)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is in flight; False if the deadline passed first."""
        return await wait_set(self._idle, timeout_s)

    async def drain(self, timeout_s: float) -> bool:
        """Stop taking events and finish those in flight within ``timeout_s``."""
        self._draining.set()
        return await drain(self._idle, timeout_s, lambda: self.in_flight)

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
