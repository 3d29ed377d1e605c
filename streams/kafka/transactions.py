"""Exactly-once delivery: one Kafka transaction per input partition and batch.

Under ``exactly_once`` the batch engine (streams/engines/batch.py) reads with
``isolation_level=read_committed`` and the processor does not publish: it buffers each
output (a result or a dead letter) as a :class:`Buffered`. Per input partition, strictly
in offset order, the engine then hands the buffered outputs of its finished batches to
that partition's :class:`PartitionTransactions`, which commits them in one transaction
together with the partition's next input offset (``send_offsets_to_transaction``). A
read_committed reader sees a batch's outputs exactly when the group's offset moved past
its records; after a crash, a kill or a rebalance the uncommitted transaction is aborted
and the next owner processes those records again.

Why a transactional producer per input partition (Kafka's EOS v1, the first mode of
Kafka Streams, and what Faust does): fencing a zombie needs something the new owner of
a partition shares with the old one. Kafka offers two ways. KIP-447 (EOS v2) lets one
producer per worker pass the consumer's group metadata (generation, member id) with the
offsets, so the group coordinator refuses the offsets of a member that lost the
partition; aiokafka's ``send_offsets_to_transaction`` takes only the group id, so that
check is not available. The other way is the transactional id itself: every owner of
input partition ``p`` uses ``{app_id}-{topic}-{p}``, and initialising a producer under
that id (on assignment, before any of the partition's records are processed) aborts
the previous owner's open transaction and bumps the epoch, so anything the old owner
still tries to send or commit is refused (``ProducerFenced``). That holds across
rebalances and restarts, whichever worker ends up owning the partition. The cost is a
producer per assigned input partition, which is what a partition count of a few dozen
per worker affords.

Being fenced is the mechanism working, not a failure (Faust crashes on it and repeats
events after a rebalance: faust-streaming #323): :class:`PartitionLost` tells the engine
to drop the partition's in-flight work; a fenced producer is never replaced, since a new
one would fence the rightful owner back. After opening its producers the engine reads
the committed offsets again: the consumer fetched them while joining, possibly before a
zombie's last commit, and nothing can move them once the producer is initialised.

Records Kafka refuses for what they are (larger than the topic's ``max.message.bytes``)
follow the at_least_once rule (streams/processing/processor.py): the transaction is
aborted and retried for ``refused_record_grace_s``; after that it is retried once with
its records sent one at a time, so the refused one is known, and that one is replaced
by what its :attr:`Buffered.instead` gives (a result by its RESULT_REJECTED dead letter,
a dead letter by one without the original), then the transaction starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from streams.kafka.clients import RECORD_REFUSALS
from streams.kafka.publisher import KafkaPublisher, PartlyPublished
from streams.kafka.records import Outgoing, TopicPartition

log = logging.getLogger(__name__)

# How long closing a partition waits for its transaction in progress to commit.
CLOSE_WAIT_S = 10.0


def transactional_id(app_id: str, tp: TopicPartition) -> str:
    """The same for every owner of input partition ``tp``: that is what fences zombies."""
    topic, partition = tp
    return f"{app_id}-{topic}-{partition}"


@dataclass(frozen=True, slots=True)
class Buffered:
    """An output waiting for its batch's transaction, with what goes out instead if
    Kafka refuses it for what it is (None: nothing left to leave out)."""

    message: Outgoing
    instead: Callable[[BaseException], Buffered | None]


@dataclass(slots=True)
class BatchOutputs:
    """What one batch's transaction carries, and what to do once it committed."""

    messages: list[Buffered] = field(default_factory=list)
    on_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


class PartitionLost(Exception):
    """The partition's transactions are no longer this worker's to commit: another
    owner fenced its producer (``fenced``), or the partition was revoked."""

    def __init__(self, tp: TopicPartition, *, fenced: bool) -> None:
        super().__init__(f"{tp[0]}[{tp[1]}] {'fenced' if fenced else 'revoked'}")
        self.tp = tp
        self.fenced = fenced


class _Refused(Exception):
    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.index = index
        self.cause = cause


def is_fencing(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says a newer producer took the id over."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ProducerFenced | InvalidProducerEpoch):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class PartitionTransactions:
    """The transactional producer of one input partition, and its commits.

    One transaction at a time (the engine commits a partition's batches in offset
    order). The producer is replaced after any failure: a new producer under the same
    transactional id aborts whatever the old one left open, and starts its sequence
    numbers afresh (a refused record leaves aiokafka's out of step with the broker's).
    A failure other than fencing or a refusal (Kafka away, a coordinator moving) is
    retried with backoff for as long as the partition is this worker's.
    """

    def __init__(
        self,
        tp: TopicPartition,
        make_producer: Callable[[], AIOKafkaProducer],
        *,
        group_id: str,
        refused_record_grace_s: float = 60.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.tp = tp
        self._make = make_producer
        self._group_id = group_id
        self._grace = refused_record_grace_s
        self._backoff = backoff_s
        self._max_backoff = max_backoff_s
        self._publisher: KafkaPublisher | None = None
        self._lock = asyncio.Lock()
        self.closing = False
        self.fenced = False
        self.commits = 0

    @property
    def lock(self) -> asyncio.Lock:
        """Held while a transaction is in progress; the engine also holds it while it
        picks the batches to commit, so they go in offset order."""
        return self._lock

    async def start(self) -> None:
        """Initialise the producer now: this is what fences the partition's previous
        owner and aborts its open transaction. A failure is retried at the first commit."""
        try:
            await self._ready()
        except Exception as exc:
            if is_fencing(exc):
                raise PartitionLost(self.tp, fenced=True) from exc
            log.warning(
                "transactional producer for %s[%d] not started (%s: %s); retrying at commit",
                *self.tp,
                type(exc).__name__,
                exc,
            )

    async def close(self) -> None:
        """Stop taking commits; waits (bounded) for a transaction in progress."""
        self.closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._lock.acquire(), CLOSE_WAIT_S)
            self._lock.release()
        await self._discard()

    async def commit(self, entries: list[Buffered], end: int) -> None:
        """Publish ``entries`` and move the group's offset of the partition to ``end``,
        atomically; returns once committed. Call with :attr:`lock` held.

        Raises :class:`PartitionLost` when the partition is no longer this worker's."""
        refused_since: float | None = None
        one_by_one = False
        delay = self._backoff
        while True:
            if self.closing or self.fenced:
                raise PartitionLost(self.tp, fenced=self.fenced)
            try:
                publisher = await self._ready()
                await self._transaction(publisher, entries, end, one_by_one=one_by_one)
                self.commits += 1
                return
            except asyncio.CancelledError:
                await self._discard()
                raise
            except _Refused as refused:
                await self._discard()
                replacement = entries[refused.index].instead(refused.cause)
                if replacement is not None:
                    entries = [*entries]
                    entries[refused.index] = replacement
                    one_by_one = False
                    continue
                error: BaseException = refused.cause
            except RECORD_REFUSALS as exc:
                await self._discard()
                now = time.monotonic()
                refused_since = now if refused_since is None else refused_since
                if now - refused_since >= self._grace:
                    one_by_one = True  # to learn which record it is
                    continue
                error = exc
            except Exception as exc:
                await self._discard()
                if is_fencing(exc):
                    self.fenced = True
                    raise PartitionLost(self.tp, fenced=True) from exc
                error = exc
            log.error(
                "transaction for %s[%d] up to offset %d failed (%s: %s); retrying in %.1fs",
                *self.tp,
                end,
                type(error).__name__,
                error,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    async def _transaction(
        self, publisher: KafkaPublisher, entries: list[Buffered], end: int, *, one_by_one: bool
    ) -> None:
        producer = publisher.producer
        await producer.begin_transaction()
        # Any failure from here on leaves the transaction open: the caller replaces the
        # producer, which aborts it.
        if one_by_one:
            for index, entry in enumerate(entries):
                try:
                    await publisher.publish([entry.message])
                except RECORD_REFUSALS as exc:
                    raise _Refused(index, exc) from exc
        elif entries:
            # publish() returns once every record is acknowledged or raises: aiokafka
            # would commit a transaction in which a record failed. What was acknowledged
            # goes with the aborted transaction, so all of it is sent again.
            try:
                await publisher.publish([entry.message for entry in entries])
            except PartlyPublished as partly:
                raise partly.cause from partly
        offsets = {KafkaTopicPartition(*self.tp): OffsetAndMetadata(end, "")}
        await producer.send_offsets_to_transaction(offsets, self._group_id)
        await producer.commit_transaction()

    async def _ready(self) -> KafkaPublisher:
        if self._publisher is None:
            publisher = KafkaPublisher(self._make)
            await publisher.start()
            if self.closing:  # closed while this one was starting
                with contextlib.suppress(Exception):
                    await publisher.stop()
                raise PartitionLost(self.tp, fenced=self.fenced)
            self._publisher = publisher
        return self._publisher

    async def _discard(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(publisher.stop(), CLOSE_WAIT_S)
