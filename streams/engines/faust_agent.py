"""The Faust engine: a Faust agent over the raw topic as a source of batches.

Faust owns the consumer group (assignment, rebalances, offset commits); the agent only
takes batches of raw events (``noack_take``), hands each to the one processor
(streams/processing/processor.py) as the batch engine does, and keeps taking while up
to ``in_flight_limit`` events are being processed. Results leave through the same
KafkaPublisher (its own idempotent producer), not through Faust's producer.

Acknowledgements go back to Faust strictly in offset order per partition, and only
once an event's batch and every earlier batch of its partition are done
(streams/engines/offsets.py): Faust commits from the acknowledged offsets and does not
cope with gaps in them (faust-streaming #606), so it never sees one.

The app runs inside the worker's event loop through its service API (``start`` and
``stop``), with no Faust worker and no signal handling of Faust's: the worker owns
shutdown (streams/worker.py). The agent reads raw bytes with Faust's ``raw``
serializer and never deserialises itself, so no payload can crash it.

Faust's engine supports ``at_least_once`` only; ``exactly_once`` runs on the batch
engine (Kafka transactions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import EventT

from streams.engines.offsets import OffsetLedger, Slot
from streams.engines.waiting import InFlight, Stopping
from streams.kafka.clients import MAX_RECORD_BYTES
from streams.kafka.publisher import KafkaPublisher
from streams.kafka.records import InputRecord, TopicPartition, input_record
from streams.processing.processor import BatchProcessor
from streams.security import faust_broker_kwargs
from streams.settings import Settings

log = logging.getLogger(__name__)

# Longest wait for a batch to fill: the latency a lone event pays at low traffic.
TAKE_WITHIN_S = 0.01


def create_app(settings: Settings, *, datadir: str) -> faust.App:
    conf: dict[str, Any] = {
        "value_serializer": "raw",
        "key_serializer": "raw",
        "web_enabled": False,
        # Faust keeps table state there; this worker has no tables, but Faust creates
        # the folder anyway (by default in the working directory).
        "datadir": datadir,
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication_factor,
        "producer_max_request_size": MAX_RECORD_BYTES,
        "consumer_auto_offset_reset": settings.kafka_auto_offset_reset,
        "broker_commit_interval": settings.commit_interval_s,
        "processing_guarantee": "at_least_once",
        # Faust's own timeout would log warnings for events held on purpose.
        "stream_processing_timeout": max(300.0, settings.stage_timeout_s * 4),
        "stream_buffer_maxsize": max(settings.in_flight_limit * 2, 512),
        "consumer_max_fetch_size": max(settings.max_payload_bytes * 2, 4 * 1024 * 1024),
        "table_cleanup_interval": 3600.0,
        "worker_redirect_stdouts": False,
        # The engine drains in-flight events itself; Faust waiting for acks of events
        # that were never started would hang shutdown and rebalances.
        "stream_wait_empty": False,
    }
    conf.update(faust_broker_kwargs(settings))  # broker URLs and credentials
    return faust.App(settings.app_id, **conf)


def to_record(event: EventT[Any]) -> InputRecord:
    """Faust gives the record timestamp in seconds."""
    message = event.message
    return input_record(message, timestamp_s=message.timestamp)


class FaustEngine:
    def __init__(
        self,
        settings: Settings,
        processor: BatchProcessor,
        publisher: KafkaPublisher,
        *,
        on_assigned: Callable[[set[TopicPartition]], None],
        on_revoked: Callable[[set[TopicPartition]], None],
        on_in_flight: Callable[[int], None] | None = None,
    ) -> None:
        if settings.processing_guarantee != "at_least_once":
            raise ValueError("the Faust engine runs at_least_once only")
        self.settings = settings
        self.processor = processor
        self.publisher = publisher
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._limit = settings.in_flight_limit
        self._take = max(1, self._limit // 2)  # so a next batch is on its way meanwhile
        self._datadir = tempfile.mkdtemp(prefix="contentstream-faust-")
        self.app = create_app(settings, datadir=self._datadir)
        topic = self.app.topic(
            settings.input_topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
            replicas=settings.topic_replication_factor,
        )
        self.app.agent(topic, name="contentstream.analyze")(self._agent)
        self.app.on_partitions_assigned.connect(self._assigned)  # type: ignore[arg-type]
        self.app.on_partitions_revoked.connect(self._revoked)  # type: ignore[arg-type]
        self._owned: set[TopicPartition] = set()
        self._ledger = OffsetLedger()
        self._unacked: dict[TopicPartition, deque[EventT[Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._flight = InFlight(on_in_flight)
        self._stopping = Stopping()
        self.finished = 0

    @property
    def in_flight(self) -> int:
        return self._flight.count

    async def start(self) -> None:
        await self.publisher.start()
        await self.app.start()

    async def run(self) -> None:
        """Until :meth:`drain`; raises if the app or a batch failed."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        app_stopped = asyncio.ensure_future(self.app.wait_until_stopped())
        try:
            await asyncio.wait({stopping, app_stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            app_stopped.cancel()
        self._stopping.raise_failure()
        if self.app.crashed:
            raise RuntimeError("the Faust app crashed") from self.app.crash_reason
        if not self._stopping.is_set():
            raise RuntimeError("the Faust app stopped")

    # ------------------------------------------------------------------ the agent

    async def _agent(self, stream: faust.StreamT[Any]) -> None:
        # noack_take leaves every acknowledgement to us (take_events would ack a batch
        # as soon as the next one is asked for, while it is still being processed).
        batches = cast(Stream[Any], stream).noack_take(self._take, within=TAKE_WITHIN_S)
        async for taken in batches:
            while self._flight.count + len(taken) > self._limit and not self._stopping.is_set():
                self._flight.room.clear()
                await self._flight.room.wait()
            if self._stopping.is_set():
                # Shutting down: these are neither started nor acknowledged, so the
                # next owner of their partitions processes them. Take nothing more.
                await asyncio.get_running_loop().create_future()
            # Taken before a revocation, processed after it: acknowledging them would
            # leave Faust acked offsets below what the partition's next owner commits,
            # a gap that stops this worker's commits if the partition comes back.
            events = [e for e in taken if (e.message.topic, e.message.partition) in self._owned]
            if events:
                self._launch(stream, events)

    def _launch(self, stream: faust.StreamT[Any], events: list[EventT[Any]]) -> None:
        records = [to_record(event) for event in events]
        ends: dict[TopicPartition, int] = {}
        for record, event in zip(records, events, strict=True):
            ends[record.tp] = record.offset + 1
            self._unacked.setdefault(record.tp, deque()).append(event)
        slots = [self._ledger.add(tp, end) for tp, end in ends.items()]
        self._flight.add(len(records))
        task = asyncio.ensure_future(self._run_batch(stream, records, slots))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(
        self, stream: faust.StreamT[Any], records: list[InputRecord], slots: list[Slot]
    ) -> None:
        try:
            await self.processor.process(records)
            for slot in slots:
                self._ledger.finish(slot)
            self.finished += len(records)
            await self._acknowledge(stream)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._stopping.fail(exc, len(records))
        finally:
            self._flight.remove(len(records))

    async def _acknowledge(self, stream: faust.StreamT[Any]) -> None:
        """Acknowledge, in offset order, every event whose batch and all earlier
        batches of its partition are done."""
        done = self._ledger.committable()
        self._ledger.committed(done)
        for tp, end in done.items():
            waiting = self._unacked.get(tp)
            while waiting and waiting[0].message.offset < end:
                await stream.ack(waiting.popleft())

    # ------------------------------------------------------------------ group events

    async def _assigned(self, app: faust.App, assigned: set[Any], **_: Any) -> None:
        # Faust pauses the partitions until this returns: no event of theirs comes first.
        self._owned = {(tp.topic, tp.partition) for tp in assigned}
        self._on_assigned(set(self._owned))

    async def _revoked(self, app: faust.App, revoked: set[Any], **_: Any) -> None:
        # Faust has already dropped its acknowledgements of these partitions: what is
        # still in flight is processed again by their next owner (at least once).
        gone = {(tp.topic, tp.partition) for tp in revoked}
        self._owned -= gone
        self._ledger.forget(gone)
        for tp in gone:
            self._unacked.pop(tp, None)
        self._on_revoked(gone)

    # ------------------------------------------------------------------ shutdown

    async def drain(self, timeout_s: float) -> bool:
        """Take nothing more, finish in-flight batches, commit; True if all finished."""
        self._stopping.set()
        self._flight.room.set()
        done = await self._flight.drain(timeout_s)
        try:
            await self.app.consumer.commit()
        except Exception:
            log.exception("final commit failed")
        return done

    async def stop(self) -> None:
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.app.stop()
        await self.publisher.stop()
        shutil.rmtree(self._datadir, ignore_errors=True)
