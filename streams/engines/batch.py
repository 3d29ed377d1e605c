"""The batch engine: one aiokafka consumer in the group, a batch at a time.

Why not Faust's stream here: Faust hands events to an agent one by one through its
channel and stream machinery, measured on this project's 2-core machine at ~3,300
events/s consuming only and ~1,400 with a produce per event, against ~170,000 and
~40,000 for a plain aiokafka loop (bench/README.md). That per-event cost, not the
analyzers, bounded the worker. This engine polls batches, processes each batch as a
unit (streams/processing/processor.py) and keeps several in flight.

Semantics:
- at least once: a batch's offsets are committed only when it and every batch fetched
  before it from the same partition are done (streams/engines/offsets.py), every
  ``commit_interval_s``, when partitions are revoked and at shutdown;
- backpressure: at most ``in_flight_limit`` events are in flight; beyond that the
  engine stops polling (aiokafka keeps heartbeating in the background);
- rebalances: on revocation the engine waits (bounded) for in-flight batches, commits
  what is done and forgets the revoked partitions; anything unfinished is processed
  again by the next owner;
- shutdown (:meth:`BatchEngine.drain`): stop polling, finish in-flight batches within
  the deadline, commit, leave the group;
- exactly once (``CONTENTSTREAM_PROCESSING_GUARANTEE=exactly_once``): the consumer
  reads committed records only; each polled partition's records are a batch whose
  outputs the processor buffers; per partition, strictly in offset order, the finished
  batches at the head of the partition's queue go out in one transaction of that
  partition's own transactional producer together with the partition's next offset
  (streams/kafka/transactions.py says why a producer per input partition). Nothing is
  committed through the consumer. Producers are opened (fencing the partition's
  previous owner) on assignment and closed on revocation, after the partition's
  in-flight batches finish (bounded); a producer fenced by another owner drops the
  partition's in-flight work and pauses it until the group rebalances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from streams.engines.offsets import OffsetLedger, Slot
from streams.engines.waiting import InFlight, Stopping, wait_set
from streams.kafka.clients import make_consumer, make_transactional_producer
from streams.kafka.publisher import KafkaPublisher
from streams.kafka.records import InputRecord, TopicPartition, input_record
from streams.kafka.transactions import (
    BatchOutputs,
    PartitionLost,
    PartitionTransactions,
    transactional_id,
)
from streams.processing.processor import BatchProcessor
from streams.settings import Settings

log = logging.getLogger(__name__)


def to_record(message: Any) -> InputRecord:
    """aiokafka gives the record timestamp in milliseconds."""
    ms = message.timestamp
    return input_record(message, timestamp_s=ms / 1000.0 if ms is not None else None)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: BatchEngine) -> None:
        self._engine = engine

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._engine.on_revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._engine.on_assigned({(tp.topic, tp.partition) for tp in assigned})


class BatchEngine:
    def __init__(
        self,
        settings: Settings,
        processor: BatchProcessor,
        publisher: KafkaPublisher,
        *,
        on_assigned: Callable[[set[TopicPartition]], None],
        on_revoked: Callable[[set[TopicPartition]], None],
        on_in_flight: Callable[[int], None] | None = None,
        poll_timeout_ms: int = 100,
        transactions: Callable[[TopicPartition], PartitionTransactions] | None = None,
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.publisher = publisher  # the processor's: started and stopped here
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._poll_timeout_ms = poll_timeout_ms
        self._limit = settings.in_flight_limit
        self._ledger = OffsetLedger()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flight = InFlight(on_in_flight)
        self._stopping = Stopping()
        self._last_commit = time.monotonic()
        self._commit_lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.finished = 0
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        self._new_transactions = transactions or self._partition_transactions
        self._transactions: dict[TopicPartition, PartitionTransactions] = {}
        # Under exactly_once, the partitions whose producers are open and whose committed
        # offsets were read again: only their records may be processed (see _open_transactions).
        self._ready: set[TopicPartition] = set()

    def _partition_transactions(self, tp: TopicPartition) -> PartitionTransactions:
        settings = self.settings
        txn_id = transactional_id(settings.app_id, tp)
        return PartitionTransactions(
            tp,
            lambda: make_transactional_producer(settings, txn_id),
            group_id=settings.app_id,
            refused_record_grace_s=settings.refused_record_grace_s,
        )

    @property
    def in_flight(self) -> int:
        return self._flight.count

    async def start(self) -> None:
        settings = self.settings
        if not self.exactly_once:  # under exactly_once, partitions' producers publish
            await self.publisher.start()
        self.consumer = make_consumer(
            settings,
            group_id=settings.app_id,
            auto_offset_reset=settings.kafka_auto_offset_reset,
            enable_auto_commit=False,
            # Exactly once end to end: never analyse what an upstream transaction may
            # still abort.
            isolation_level=(
                "read_committed" if self.exactly_once else settings.kafka_isolation_level
            ),
            max_partition_fetch_bytes=max(settings.max_payload_bytes * 2, 4 * 1024 * 1024),
        )
        self.consumer.subscribe([settings.input_topic], listener=_Rebalance(self))
        await self.consumer.start()

    async def run(self) -> None:
        """Poll and launch batches until :meth:`drain` (or cancellation)."""
        assert self.consumer is not None
        consumer = self.consumer
        while not self._stopping.is_set():
            if self._flight.count >= self._limit:
                self._flight.room.clear()
                await self._wait_first(self._flight.room.wait())
                continue
            # At most half the limit per poll, so a next batch is always on its way
            # while one is being analysed.
            room = min(self._limit - self._flight.count, max(1, self._limit // 2))
            batches = await consumer.getmany(timeout_ms=self._poll_timeout_ms, max_records=room)
            if self._stopping.is_set():
                break  # not started, not acknowledged: the next owner gets them
            if self.exactly_once:
                # A transaction per input partition: a batch per partition.
                rewound = False
                for messages in batches.values():
                    if not messages:
                        continue
                    first = messages[0]
                    if (first.topic, first.partition) not in self._ready:
                        # Returned while the partition's producers open: processing them
                        # now could commit them twice once the committed offset is read
                        # again. Not processed, not skipped: read them again later.
                        tp = KafkaTopicPartition(first.topic, first.partition)
                        consumer.seek(tp, first.offset)
                        rewound = True
                        continue
                    self._launch([to_record(m) for m in messages])
                if rewound:  # no tight loop of fetches while the producers open
                    await asyncio.sleep(self._poll_timeout_ms / 1000)
                continue
            records = [to_record(m) for messages in batches.values() for m in messages]
            if records:
                self._launch(records)
            if time.monotonic() - self._last_commit >= self.settings.commit_interval_s:
                await self.commit()
        self._stopping.raise_failure()

    async def _wait_first(self, awaitable: Any) -> None:
        waiter = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, stop):
                task.cancel()

    def _launch(self, records: list[InputRecord]) -> None:
        ends: dict[TopicPartition, int] = {}
        for record in records:
            ends[record.tp] = record.offset + 1
        slots = [self._ledger.add(tp, end) for tp, end in ends.items()]
        self._flight.add(len(records))
        task = asyncio.ensure_future(self._run_batch(records, slots))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, records: list[InputRecord], slots: list[Slot]) -> None:
        try:
            if self.exactly_once:
                (slot,) = slots
                await self._process_transactional(records, slot)
            else:
                await self.processor.process(records)
                for slot in slots:
                    self._ledger.finish(slot)
            self.finished += len(records)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._stopping.fail(exc, len(records))
        finally:
            self._flight.remove(len(records))

    async def _process_transactional(self, records: list[InputRecord], slot: Slot) -> None:
        outputs = BatchOutputs()
        await self.processor.process(records, outputs=outputs)
        slot.outputs = outputs
        self._ledger.finish(slot)
        await self._commit_transactions(slot.tp)

    async def _commit_transactions(self, tp: TopicPartition) -> None:
        """Commit the finished batches at the head of ``tp``'s queue in one transaction;
        a batch finishing behind an unfinished one waits for that one's commit."""
        partition = self._transactions.get(tp)
        if partition is None:
            return  # revoked or fenced: the partition's next owner processes it again
        async with partition.lock:
            if self._transactions.get(tp) is not partition:
                return
            slots = self._ledger.take_done(tp)
            if not slots:
                return
            batches: list[BatchOutputs] = [s.outputs for s in slots]
            try:
                await partition.commit([m for b in batches for m in b.messages], slots[-1].end)
            except PartitionLost as lost:
                self._lose(partition, fenced=lost.fenced)
                return
        for after in (f for b in batches for f in b.on_commit):
            await after()

    def _lose(self, partition: PartitionTransactions, *, fenced: bool) -> None:
        tp = partition.tp
        if self._transactions.get(tp) is not partition:
            return  # revoked already (and maybe assigned again: that is a new partition)
        del self._transactions[tp]
        self._ready.discard(tp)
        self._ledger.forget({tp})
        if not fenced:
            return
        # Another worker initialised this partition's transactional id: it owns the
        # partition now (this consumer has not heard of the rebalance yet). Stop reading
        # it instead of fencing back; the rebalance assigns it afresh.
        log.error(
            "%s[%d]: fenced by another owner's producer; its in-flight work is dropped and "
            "it is paused until the group rebalances",
            *tp,
        )
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                self.consumer.pause(KafkaTopicPartition(*tp))

    async def commit(self) -> None:
        """Commit what is done; a failed commit is retried with the next one. (Under
        exactly_once offsets are committed in the partitions' transactions only.)"""
        assert self.consumer is not None
        if self.exactly_once:
            return
        async with self._commit_lock:
            self._last_commit = time.monotonic()
            offsets = self._ledger.committable()
            if not offsets:
                return
            try:
                await self.consumer.commit(
                    {
                        KafkaTopicPartition(topic, partition): OffsetAndMetadata(end, "")
                        for (topic, partition), end in offsets.items()
                    }
                )
            except Exception as exc:
                log.warning("commit failed (%s: %s); will retry", type(exc).__name__, exc)
                self._ledger.restore(offsets)
                return
            self._ledger.committed(offsets)

    async def wait_idle(self, timeout_s: float) -> bool:
        return await wait_set(self._flight.idle, timeout_s)

    # ------------------------------------------------------------------ group events

    async def on_assigned(self, tps: set[TopicPartition]) -> None:
        if self.exactly_once:
            await self._open_transactions(tps)
        self._on_assigned(tps)

    async def _open_transactions(self, tps: set[TopicPartition]) -> None:
        opened = {tp: self._new_transactions(tp) for tp in tps if tp not in self._transactions}
        self._transactions.update(opened)
        # Initialising each producer fences the partition's previous owner and aborts its
        # open transaction, before any of the partition's records is processed here.
        results = await asyncio.gather(
            *(p.start() for p in opened.values()), return_exceptions=True
        )
        for partition, result in zip(opened.values(), results, strict=True):
            if isinstance(result, PartitionLost):
                self._lose(partition, fenced=True)
        # The committed offsets the consumer read while joining may predate a previous
        # owner's last transaction (a zombie's commit landing before our producers fenced
        # it): read them again now that nothing can move them.
        if self.consumer is not None and opened:
            try:
                await self.consumer.seek_to_committed(*(KafkaTopicPartition(*tp) for tp in opened))
            except Exception as exc:
                log.warning("committed offsets not read again (%s: %s)", type(exc).__name__, exc)
        self._ready |= {tp for tp in tps if tp in self._transactions}

    async def on_revoked(self, tps: set[TopicPartition]) -> None:
        self._ready -= tps
        busy = [tp for tp in tps if self._ledger.in_flight(tp)]
        if busy:
            limit = max(30.0, self.settings.stage_timeout_s * 2 + 5)
            finished = await self.wait_idle(limit)
            if not finished:
                log.warning("revoked with batches still in flight after %.0fs", limit)
        await self.commit()
        closing = [p for tp in tps if (p := self._transactions.pop(tp, None)) is not None]
        await asyncio.gather(*(p.close() for p in closing))
        self._ledger.forget(tps)
        self._on_revoked(tps)

    # ------------------------------------------------------------------ shutdown

    async def drain(self, timeout_s: float) -> bool:
        """Stop polling, finish in-flight batches, commit; True if all finished."""
        self._stopping.set()
        done = await self._flight.drain(timeout_s)
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.commit()
        return done

    async def stop(self) -> None:
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        closing = list(self._transactions.values())
        self._transactions.clear()
        await asyncio.gather(*(p.close() for p in closing))
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
        await self.publisher.stop()
