"""Exactly-once delivery on Kafka transactions, made safe under concurrency.

Faust's exactly-once mode commits, per input partition, a transaction holding the
outputs sent through that partition's transactional producer together with the acked
input offsets. With several events in flight that is only exact if an output enters a
transaction *together with* its own offset. So in this mode:

* outputs of one input partition are published strictly in offset order (an event waits
  until every earlier event of its partition has finished), and
* the output is enqueued and its input offset acknowledged inside one critical section
  that Faust's commit also takes, so a commit can never fall between the two.

The cost: head-of-line blocking per partition (a slow event delays later ones of its
partition) and results become visible to ``read_committed`` consumers only when the
transaction commits (every ``CONTENTSTREAM_COMMIT_INTERVAL_S``).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from streams.kafka.records import Headers, InputRecord


@dataclass(frozen=True, slots=True)
class Delivery:
    """The record being processed in this task and how to acknowledge it."""

    record: InputRecord
    token: Any
    ack: Callable[[Any], Awaitable[Any]]


current_delivery: contextvars.ContextVar[Delivery | None] = contextvars.ContextVar(
    "current_delivery", default=None
)


class PartitionTurns:
    """Lets an event wait until it is the oldest unfinished event of its partition."""

    def __init__(self, oldest: Callable[[tuple[str, int]], int | None]) -> None:
        self._oldest = oldest
        self._changed: dict[tuple[str, int], asyncio.Event] = {}

    def notify(self, tp: tuple[str, int]) -> None:
        event = self._changed.pop(tp, None)
        if event is not None:
            event.set()

    async def wait_turn(self, tp: tuple[str, int], offset: int) -> None:
        while True:
            head = self._oldest(tp)
            if head is None or head >= offset:
                return
            event = self._changed.setdefault(tp, asyncio.Event())
            await event.wait()


class TransactionalFaustSink:
    """RecordSink for exactly-once: ordered, atomic with the offset acknowledgement."""

    def __init__(self, app: Any, turns: PartitionTurns, commit_lock: asyncio.Lock) -> None:
        self._app = app
        self._turns = turns
        self._lock = commit_lock

    def transactional_id(self, tp: tuple[str, int]) -> str:
        group = self._app.assignor.group_for_topic(tp[0])
        return f"{self._app.conf.id}-{group}-{tp[1]}"

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        delivery = current_delivery.get()
        if delivery is None:
            raise RuntimeError("exactly-once send outside of an event's processing task")
        record = delivery.record
        await self._turns.wait_turn(record.tp, record.offset)
        async with self._lock:
            fut = await self._app.producer.send(
                topic,
                key,
                value,
                None,
                None,
                headers or None,
                transactional_id=self.transactional_id(record.tp),
            )
            await delivery.ack(delivery.token)
        await fut


def guard_commits(consumer: Any, commit_lock: asyncio.Lock) -> None:
    """Make Faust's commit take ``commit_lock`` (patched on this consumer instance only)."""
    original = consumer.force_commit

    async def force_commit(*args: Any, **kwargs: Any) -> Any:
        async with commit_lock:
            return await original(*args, **kwargs)

    consumer.force_commit = force_commit
