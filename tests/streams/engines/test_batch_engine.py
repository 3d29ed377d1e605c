"""BatchEngine's loop with a scripted consumer and processor: commits, limits, failures."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
)

from streams.engines.batch import BatchEngine
from streams.kafka.publisher import KafkaPublisher, results_publisher
from streams.kafka.records import InputRecord, Outgoing, TopicPartition
from streams.kafka.transactions import Buffered, PartitionLost
from streams.settings import Settings


class ScriptedConsumer:
    """Hands out prepared polls, then nothing; records every commit and poll size."""

    def __init__(self, polls: list[list[SimpleNamespace]]) -> None:
        self.polls = polls
        self.commits: list[dict[tuple[str, int], int]] = []
        self.asked: list[int] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        self.asked.append(max_records)
        if not self.polls:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        batch, self.polls[0] = self.polls[0][:max_records], self.polls[0][max_records:]
        if not self.polls[0]:
            self.polls.pop(0)
        return {"tp": batch}

    async def commit(self, offsets: dict[Any, Any]) -> None:
        self.commits.append({(tp.topic, tp.partition): m.offset for tp, m in offsets.items()})


class ScriptedProcessor:
    def __init__(self, delays: dict[int, float], fail_at: int | None = None) -> None:
        self.delays = delays  # first offset of a batch -> seconds it takes
        self.fail_at = fail_at
        self.seen: list[list[int]] = []

    async def process(
        self, records: list[InputRecord], *, outputs: list[Buffered] | None = None
    ) -> Counter[Any]:
        offsets = [r.offset for r in records]
        self.seen.append(offsets)
        await asyncio.sleep(self.delays.get(offsets[0], 0))
        if self.fail_at is not None and self.fail_at in offsets:
            raise RuntimeError("bug")
        if outputs is not None:
            outputs += [
                Buffered(Outgoing("out", None, f"{r.partition}:{r.offset}".encode(), []), _none)
                for r in records
            ]
        return Counter()


def _none(_exc: BaseException) -> None:
    return None


def message(offset: int, partition: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        topic="raw", partition=partition, offset=offset, key=None, value=b"{}",
        timestamp=0, headers=(),
    )  # fmt: skip


def engine(
    consumer: ScriptedConsumer, processor: ScriptedProcessor, **settings: Any
) -> BatchEngine:
    config = Settings(commit_interval_s=0.01, **settings)
    e = BatchEngine(
        config,
        processor,  # type: ignore[arg-type]
        results_publisher(config),  # never started: the processor is scripted
        on_assigned=lambda _: None,
        on_revoked=lambda _: None,
        poll_timeout_ms=10,
    )
    e.consumer = consumer  # type: ignore[assignment]
    return e


async def test_commits_never_pass_a_batch_still_in_flight() -> None:
    # Three polls of partition 0; the first batch is the slowest.
    polls = [[message(o) for o in range(s, s + 4)] for s in (0, 4, 8)]
    consumer = ScriptedConsumer(polls)
    processor = ScriptedProcessor({0: 0.3})
    e = engine(consumer, processor, in_flight_limit=100)
    run = asyncio.ensure_future(e.run())
    await asyncio.sleep(0.15)
    assert all(c.get(("raw", 0), 0) == 0 for c in consumer.commits), consumer.commits
    await asyncio.sleep(0.3)
    assert consumer.commits[-1] == {("raw", 0): 12}
    await e.drain(1)
    await run


async def test_never_more_events_in_flight_than_the_limit() -> None:
    consumer = ScriptedConsumer([[message(o) for o in range(40)]])
    processor = ScriptedProcessor({o: 0.05 for o in range(40)})
    e = engine(consumer, processor, in_flight_limit=8)
    run = asyncio.ensure_future(e.run())
    await asyncio.sleep(0.5)
    assert max(len(b) for b in processor.seen) <= 4  # half the limit per poll
    assert sum(len(b) for b in processor.seen) == 40
    assert consumer.commits[-1] == {("raw", 0): 40}
    await e.drain(1)
    await run


async def test_an_unexpected_failure_stops_the_engine_uncommitted() -> None:
    consumer = ScriptedConsumer([[message(o) for o in range(4)], [message(4)]])
    processor = ScriptedProcessor({}, fail_at=0)
    e = engine(consumer, processor, in_flight_limit=4)
    with pytest.raises(RuntimeError, match="failed unexpectedly"):
        await asyncio.wait_for(e.run(), 2)
    assert all(c.get(("raw", 0), 0) == 0 for c in consumer.commits)


class FakeProducer:
    """Stands in for AIOKafkaProducer: partitions, batches, and a scripted failure."""

    def __init__(self, failure: Exception | None) -> None:
        self.failure = failure
        self.started = self.stopped = False
        self.sent: list[tuple[str, int]] = []

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> Any:
        return SimpleNamespace(append=lambda **kw: True)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        await asyncio.sleep(0.01)
        if self.failure is not None:
            raise self.failure
        self.sent.append((topic, partition))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


@pytest.mark.parametrize("failure", [MessageSizeTooLargeError(), OutOfOrderSequenceNumber()])
async def test_the_publisher_replaces_its_producer_once_after_a_refused_record(
    failure: Exception,
) -> None:
    made: list[FakeProducer] = []

    def make() -> Any:
        # The first producer fails every batch; its replacements work.
        made.append(FakeProducer(failure if not made else None))
        return made[-1]

    publisher = KafkaPublisher(make)
    await publisher.start()
    message = Outgoing("out", b"k", b"v", [])
    # Two batches refused at once: one replacement, not two.
    results = await asyncio.gather(
        publisher.publish([message]), publisher.publish([message]), return_exceptions=True
    )
    assert all(isinstance(r, type(failure)) for r in results)
    assert len(made) == 2 and made[0].stopped and made[1].started
    await publisher.publish([message])
    assert made[1].sent == [("out", 0)]


async def test_other_failures_keep_the_producer() -> None:
    made: list[FakeProducer] = []

    def make() -> Any:
        made.append(FakeProducer(KafkaConnectionError()))
        return made[-1]

    publisher = KafkaPublisher(make)
    await publisher.start()
    with pytest.raises(KafkaConnectionError):
        await publisher.publish([Outgoing("out", b"k", b"v", [])])
    assert len(made) == 1
