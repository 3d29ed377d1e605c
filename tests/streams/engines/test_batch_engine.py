"""BatchEngine's loop with a scripted consumer and processor: commits, limits, failures."""

from __future__ import annotations

import asyncio
import functools
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
from streams.kafka.publisher import KafkaPublisher, PartlyPublished, results_publisher
from streams.kafka.records import InputRecord, Outgoing, TopicPartition
from streams.kafka.transactions import BatchOutputs, Buffered, PartitionLost
from streams.settings import Settings


class ScriptedConsumer:
    """Hands out prepared polls, then nothing; records every commit and poll size."""

    def __init__(self, polls: list[list[SimpleNamespace]]) -> None:
        self.polls = polls
        self.commits: list[dict[tuple[str, int], int]] = []
        self.asked: list[int] = []
        self.paused: set[int] = set()
        self.sought: list[set[tuple[str, int]]] = []
        self.seeks: list[tuple[tuple[str, int], int]] = []
        self.ends = {m.partition: m.offset + 1 for poll in polls for m in poll}

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        self.asked.append(max_records)
        if not self.polls:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        batch, self.polls[0] = self.polls[0][:max_records], self.polls[0][max_records:]
        if not self.polls[0]:
            self.polls.pop(0)
        by_partition: dict[Any, list[Any]] = {}
        for m in batch:
            if m.partition not in self.paused:
                by_partition.setdefault((m.topic, m.partition), []).append(m)
        return by_partition

    async def seek_to_committed(self, *tps: Any) -> None:
        self.sought.append({(tp.topic, tp.partition) for tp in tps})

    def seek(self, tp: Any, offset: int) -> None:
        """Rewinds: the records from ``offset`` of that partition come again next poll."""
        self.seeks.append(((tp.topic, tp.partition), offset))
        self.polls.insert(
            0, [message(o, tp.partition) for o in range(offset, self.ends[tp.partition])]
        )

    def pause(self, *tps: Any) -> None:
        self.paused.update(tp.partition for tp in tps)

    async def commit(self, offsets: dict[Any, Any]) -> None:
        self.commits.append({(tp.topic, tp.partition): m.offset for tp, m in offsets.items()})


class ScriptedProcessor:
    def __init__(self, delays: dict[int, float], fail_at: int | None = None) -> None:
        self.delays = delays  # first offset of a batch -> seconds it takes
        self.fail_at = fail_at
        self.seen: list[list[int]] = []
        self.committed: list[int] = []  # exactly_once: offsets whose batch committed

    async def process(
        self, records: list[InputRecord], *, outputs: BatchOutputs | None = None
    ) -> Counter[Any]:
        offsets = [r.offset for r in records]
        self.seen.append(offsets)
        await asyncio.sleep(self.delays.get(offsets[0], 0))
        if self.fail_at is not None and self.fail_at in offsets:
            raise RuntimeError("bug")
        if outputs is not None:
            outputs.on_commit.append(functools.partial(_note, self.committed, offsets))
            outputs.messages += [
                Buffered(Outgoing("out", None, f"{r.partition}:{r.offset}".encode(), []), _none)
                for r in records
            ]
        return Counter()


def _none(_exc: BaseException) -> None:
    return None


async def _note(committed: list[int], offsets: list[int]) -> None:
    committed.extend(offsets)


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


class TopicRefusingProducer(FakeProducer):
    """The broker answers each partition's batch on its own: ``refused`` topics fail."""

    def __init__(self, refused: str) -> None:
        super().__init__(None)
        self.refused = refused

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if topic == self.refused:
            future.set_exception(MessageSizeTooLargeError())
        else:
            self.sent.append((topic, partition))
            future.set_result(None)
        return future


async def test_a_publish_partly_refused_names_only_the_records_not_acknowledged() -> None:
    publisher = KafkaPublisher(lambda: TopicRefusingProducer("dlq"))
    await publisher.start()
    result, letter = Outgoing("out", b"k", b"v", []), Outgoing("dlq", b"k", b"big", [])
    with pytest.raises(PartlyPublished) as raised:
        await publisher.publish([result, letter])
    assert raised.value.pending == [letter]
    assert isinstance(raised.value.cause, MessageSizeTooLargeError)
    with pytest.raises(MessageSizeTooLargeError):  # nothing acknowledged: the error itself
        await publisher.publish([letter])


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


# ---------------------------------------------------------------------- exactly_once


class RecordingTransactions:
    """Stands in for PartitionTransactions: records each commit, or is fenced."""

    def __init__(self, tp: TopicPartition, log: list[tuple[TopicPartition, list[bytes], int]]):
        self.tp = tp
        self.log = log
        self.lock = asyncio.Lock()
        self.fenced = self.closed = False

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True

    async def commit(self, entries: list[Buffered], end: int) -> None:
        assert self.lock.locked(), "commits of a partition go one at a time"
        await asyncio.sleep(0.01)
        if self.fenced or self.closed:
            raise PartitionLost(self.tp, fenced=self.fenced)
        self.log.append((self.tp, [e.message.value for e in entries], end))


def eos_engine(
    consumer: ScriptedConsumer, processor: ScriptedProcessor, **settings: Any
) -> tuple[BatchEngine, dict[TopicPartition, RecordingTransactions], list[Any]]:
    config = Settings(commit_interval_s=0.01, processing_guarantee="exactly_once", **settings)
    log: list[tuple[TopicPartition, list[bytes], int]] = []
    made: dict[TopicPartition, RecordingTransactions] = {}

    def transactions(tp: TopicPartition) -> Any:
        made[tp] = RecordingTransactions(tp, log)
        return made[tp]

    e = BatchEngine(
        config,
        processor,  # type: ignore[arg-type]
        results_publisher(config),  # never started under exactly_once
        on_assigned=lambda _: None,
        on_revoked=lambda _: None,
        poll_timeout_ms=10,
        transactions=transactions,
    )
    e.consumer = consumer  # type: ignore[assignment]
    return e, made, log


async def test_exactly_once_commits_each_partitions_batches_in_offset_order() -> None:
    # Partition 0's first batch is the slowest; partition 1 (offsets from 100) goes on.
    polls = [[message(o + 100 * p, p) for p in (0, 1) for o in range(s, s + 4)] for s in (0, 4, 8)]
    consumer = ScriptedConsumer(polls)
    processor = ScriptedProcessor({0: 0.3})
    e, _, log = eos_engine(consumer, processor, in_flight_limit=100)
    await e.on_assigned({("raw", 0), ("raw", 1)})
    assert consumer.sought == [{("raw", 0), ("raw", 1)}], "committed offsets read again"
    run = asyncio.ensure_future(e.run())
    await asyncio.sleep(0.15)
    assert [end for tp, _, end in log if tp == ("raw", 1)][-1] == 112
    assert all(tp != ("raw", 0) for tp, _, _ in log), "nothing passes the batch in flight"
    await asyncio.sleep(0.35)
    await e.drain(1)
    await run
    for p in (0, 1):
        commits = [(values, end) for tp, values, end in log if tp == ("raw", p)]
        ends = [end for _, end in commits]
        assert ends == sorted(ends) and ends[-1] == 12 + 100 * p
        sent = [v for values, _ in commits for v in values]
        expected = [f"{p}:{o + 100 * p}".encode() for o in range(12)]
        assert sent == expected, "each output once, in offset order"
    # Partition 0's three batches, done out of order, went out in one transaction.
    assert [end for tp, _, end in log if tp == ("raw", 0)] == [12]
    assert all(len({o // 100 for o in batch}) == 1 for batch in processor.seen)
    assert consumer.commits == [], "offsets go in the transactions only"
    assert sorted(processor.committed) == [o + 100 * p for p in (0, 1) for o in range(12)]


async def test_records_returned_before_the_partitions_producers_open_are_read_again() -> None:
    # aiokafka returns records of a new assignment while the rebalance listener still
    # opens the partition's producers and reads its committed offset again; processed
    # then, they would be committed twice after that read moves the position back.
    consumer = ScriptedConsumer([[message(o) for o in range(4)]])
    processor = ScriptedProcessor({})
    e, _, log = eos_engine(consumer, processor, in_flight_limit=100)
    run = asyncio.ensure_future(e.run())
    await asyncio.sleep(0.05)
    assert processor.seen == [] and consumer.seeks[0] == (("raw", 0), 0)
    await e.on_assigned({("raw", 0)})
    await asyncio.sleep(0.1)
    await e.drain(1)
    await run
    assert log == [(("raw", 0), [f"0:{o}".encode() for o in range(4)], 4)], "each output once"


async def test_a_fenced_partition_is_dropped_and_paused_and_the_rest_goes_on() -> None:
    polls = [[message(o + 100 * p, p) for p in (0, 1) for o in range(s, s + 4)] for s in (0, 4, 8)]
    consumer = ScriptedConsumer(polls)
    processor = ScriptedProcessor({})
    e, made, log = eos_engine(consumer, processor, in_flight_limit=100)
    await e.on_assigned({("raw", 0), ("raw", 1)})
    made[("raw", 0)].fenced = True  # another worker's producer took partition 0's id
    run = asyncio.ensure_future(e.run())
    await asyncio.sleep(0.5)
    await e.drain(1)
    await run  # no crash
    assert all(tp == ("raw", 1) for tp, _, _ in log)
    assert log[-1][2] == 112
    assert all(o >= 100 for o in processor.committed), "nothing fenced counts as committed"
    assert consumer.paused == {0}


async def test_revocation_waits_for_in_flight_batches_then_closes_their_producers() -> None:
    consumer = ScriptedConsumer([[message(o) for o in range(4)]])
    processor = ScriptedProcessor({0: 0.2})
    e, made, log = eos_engine(consumer, processor, in_flight_limit=100)
    await e.on_assigned({("raw", 0)})
    run = asyncio.ensure_future(e.run())
    await asyncio.sleep(0.05)
    await e.on_revoked({("raw", 0)})
    assert log == [(("raw", 0), [f"0:{o}".encode() for o in range(4)], 4)]
    assert made[("raw", 0)].closed
    await e.drain(1)
    await run


async def test_a_batch_finishing_after_its_partition_was_revoked_commits_nothing() -> None:
    consumer = ScriptedConsumer([[message(o) for o in range(4)]])
    processor = ScriptedProcessor({0: 0.3})
    e, _, log = eos_engine(consumer, processor, in_flight_limit=100, stage_timeout_s=0.01)
    await e.on_assigned({("raw", 0)})
    run = asyncio.ensure_future(e.run())
    await asyncio.sleep(0.05)
    # Revoked, then assigned again (an eager rebalance): the old batch's outputs must not
    # go out in the new assignment's transactions (its records are fetched again).
    revoke = asyncio.ensure_future(e.on_revoked({("raw", 0)}))
    await asyncio.sleep(0)
    e._flight.idle.set()  # as if the bounded wait on revocation had passed
    await revoke
    await e.on_assigned({("raw", 0)})
    await asyncio.sleep(0.4)
    await e.drain(1)
    await run
    assert log == [] and processor.committed == []
