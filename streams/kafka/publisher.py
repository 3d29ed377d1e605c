"""Publishing processed records to Kafka in whole record batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaProducer

from streams.kafka.clients import MAX_RECORD_BYTES, PRODUCER_SEQUENCE_BREAKERS, make_producer
from streams.kafka.partitioning import partition_for
from streams.kafka.records import Outgoing, TopicPartition
from streams.settings import Settings

log = logging.getLogger(__name__)


class KafkaPublisher:
    """Publishes through one idempotent producer (acks=all), a record batch per
    partition: ordered, and no per-record future or queueing as ``send`` has.

    Partitions are chosen as ``send`` would (murmur2 of the key, like the Java
    client; streams/kafka/partitioning.py), so a result lands where its id's results
    always land.

    The publisher owns its producer and replaces it after a record the broker refused
    for what it is (too large for the topic): aiokafka gives a batch its sequence
    numbers when it sends it and does not take them back when the broker refuses it,
    so every later batch to that partition would be refused as out of order, for good.
    A new producer (a new producer id) starts its sequences afresh.
    """

    def __init__(
        self, make: Callable[[], AIOKafkaProducer], *, metadata_max_age_s: float = 30.0
    ) -> None:
        self._make = make
        self._producer: AIOKafkaProducer | None = None
        self._generation = 0
        self._renewing = asyncio.Lock()
        self._partitions: dict[str, tuple[float, list[int]]] = {}
        self._max_age = metadata_max_age_s

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the publisher has not started")
        return self._producer

    async def start(self) -> None:
        producer = self._make()
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()

    async def publish(self, messages: list[Outgoing]) -> None:
        """Raises PartlyPublished when some partitions' records were acknowledged and
        others not, so that only those others are sent again."""
        generation = self._generation
        try:
            await self._publish(messages)
        except PRODUCER_SEQUENCE_BREAKERS as exc:
            await self._renew(generation, exc)
            raise
        except PartlyPublished as partly:
            if isinstance(partly.cause, PRODUCER_SEQUENCE_BREAKERS):
                await self._renew(generation, partly.cause)
            raise

    async def _renew(self, generation: int, cause: Exception) -> None:
        async with self._renewing:
            if generation != self._generation:
                return  # another publish renewed it already
            old = self._producer
            await self.start()
            self._generation += 1
            log.warning(
                "producer replaced after %s: its sequence numbers no longer match the broker's",
                type(cause).__name__,
            )
            if old is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(old.stop(), 10.0)

    async def _partitions_of(self, topic: str) -> list[int]:
        known = self._partitions.get(topic)
        if known is None or time.monotonic() - known[0] > self._max_age:
            partitions = sorted(await self.producer.partitions_for(topic))
            known = (time.monotonic(), partitions)
            self._partitions[topic] = known
        return known[1]

    async def _publish(self, messages: list[Outgoing]) -> None:
        producer = self.producer
        by_partition: dict[TopicPartition, list[Outgoing]] = {}
        by_topic: dict[str, list[int]] = {}
        for m in messages:
            partitions = by_topic.get(m.topic)
            if partitions is None:
                partitions = by_topic[m.topic] = await self._partitions_of(m.topic)
            partition = partition_for(m.key, partitions)
            by_partition.setdefault((m.topic, partition), []).append(m)
        sent: list[tuple[list[Outgoing], list[asyncio.Future[object]]]] = []
        for (topic, partition), group in by_partition.items():
            acks = []
            batch = producer.create_batch()
            for m in group:
                if batch.append(key=m.key, value=m.value, timestamp=None, headers=m.headers):
                    continue
                # Full: send it and start the next one.
                acks.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if not batch.append(key=m.key, value=m.value, timestamp=None, headers=m.headers):
                    raise ValueError(f"record of {len(m.value)} bytes exceeds the batch size")
            acks.append(await producer.send_batch(batch, topic, partition=partition))
            sent.append((group, acks))
        answers = await asyncio.gather(
            *(asyncio.gather(*acks) for _, acks in sent), return_exceptions=True
        )
        failed = [
            (group, answer)
            for (group, _), answer in zip(sent, answers, strict=True)
            if isinstance(answer, BaseException)
        ]
        if not failed:
            return
        cause = failed[0][1]
        if not isinstance(cause, Exception) or len(failed) == len(sent):
            raise cause
        # Sending the acknowledged partitions' records again would duplicate them.
        raise PartlyPublished([m for group, _ in failed for m in group], cause) from cause


class PartlyPublished(Exception):
    """Records of some partitions were acknowledged, those in ``pending`` were not."""

    def __init__(self, pending: list[Outgoing], cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.pending = pending
        self.cause = cause


def results_publisher(settings: Settings) -> KafkaPublisher:
    """The publisher of a worker's results and dead letters (not started yet)."""
    return KafkaPublisher(
        lambda: make_producer(
            settings,
            # Results go out as whole record batches; waiting for more records to join
            # them would only add latency.
            linger_ms=0,
            max_batch_size=1024 * 1024,
            max_request_size=MAX_RECORD_BYTES,
        )
    )
