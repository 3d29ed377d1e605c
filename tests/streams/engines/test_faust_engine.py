"""The Faust engine's agent with a scripted stream and processor: no Kafka, no Faust app
running. Acknowledgements must follow offset order per partition (faust-streaming #606)
and never pass a batch still in flight; at most the in-flight limit is processed."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.engines.faust_agent import FaustEngine
from streams.kafka.publisher import results_publisher
from streams.kafka.records import InputRecord
from streams.processing.processor import Outcome
from streams.settings import Settings


def event(offset: int, partition: int = 0) -> Any:
    message = SimpleNamespace(
        topic="raw", partition=partition, offset=offset, key=None, value=b"{}",
        timestamp=0.0, headers={},
    )  # fmt: skip
    return SimpleNamespace(message=message)


class ScriptedStream:
    """Hands out the scripted batches, then waits; records what was acknowledged."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches = batches
        self.acked: list[tuple[int, int]] = []

    async def noack_take(self, max_: int, within: float) -> AsyncIterator[list[Any]]:
        for batch in self.batches:
            assert len(batch) <= max_
            yield batch
        await asyncio.Event().wait()

    async def ack(self, event: Any) -> bool:
        self.acked.append((event.message.partition, event.message.offset))
        return True


class ScriptedProcessor:
    """Takes ``delays[first offset]`` seconds per batch."""

    def __init__(self, delays: dict[int, float]) -> None:
        self.delays = delays
        self.seen: list[list[int]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def process(self, records: list[InputRecord]) -> Counter[Outcome]:
        self.seen.append([r.offset for r in records])
        self.in_flight += len(records)
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delays.get(records[0].offset, 0.0))
        self.in_flight -= len(records)
        return Counter({Outcome.OK: len(records)})


def engine(processor: ScriptedProcessor, **settings: Any) -> FaustEngine:
    config = Settings(**settings)
    e = FaustEngine(
        config,
        processor,  # type: ignore[arg-type]
        results_publisher(config),  # never started: the processor is scripted
        on_assigned=lambda _: None,
        on_revoked=lambda _: None,
    )
    return e


async def assign(e: FaustEngine, *partitions: int) -> None:
    await e._assigned(e.app, {TP("raw", p) for p in partitions})


async def test_acknowledgements_follow_offset_order_and_wait_for_earlier_batches() -> None:
    stream = ScriptedStream(
        [
            [event(0), event(1), event(0, partition=1)],
            [event(2), event(3), event(1, partition=1)],
        ]
    )
    # The first batch is the slowest: nothing of partition 0 may be acknowledged before it.
    processor = ScriptedProcessor({0: 0.2})
    e = engine(processor, in_flight_limit=100)
    await assign(e, 0, 1)
    agent = asyncio.ensure_future(e._agent(stream))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.1)
        assert len(processor.seen) == 2, "the second batch is taken while the first runs"
        assert stream.acked == []
        await asyncio.sleep(0.25)
        assert [o for p, o in stream.acked if p == 0] == [0, 1, 2, 3]
        assert [o for p, o in stream.acked if p == 1] == [0, 1]
        assert e.in_flight == 0 and e.finished == 6
    finally:
        agent.cancel()
        await e.stop()


async def test_never_more_events_in_flight_than_the_limit() -> None:
    stream = ScriptedStream([[event(o), event(o + 1)] for o in range(0, 40, 2)])
    processor = ScriptedProcessor({o: 0.02 for o in range(40)})
    e = engine(processor, in_flight_limit=4)
    await assign(e, 0, 1)
    agent = asyncio.ensure_future(e._agent(stream))  # type: ignore[arg-type]
    try:
        for _ in range(100):
            if len(stream.acked) == 40:
                break
            await asyncio.sleep(0.02)
        assert [o for _, o in stream.acked] == list(range(40))
        assert processor.most_in_flight <= 4
    finally:
        agent.cancel()
        await e.stop()


async def test_after_drain_nothing_more_is_taken_or_acknowledged() -> None:
    stream = ScriptedStream([[event(0)], [event(1)], [event(2)]])
    processor = ScriptedProcessor({0: 0.05, 1: 0.05})
    e = engine(processor, in_flight_limit=2)  # the third batch waits for room
    await assign(e, 0, 1)
    agent = asyncio.ensure_future(e._agent(stream))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.01)
        await e.drain(1.0)
        await asyncio.sleep(0.05)
        assert processor.seen == [[0], [1]]
        assert stream.acked == [(0, 0), (0, 1)]
    finally:
        agent.cancel()
        await e.stop()


async def test_events_of_a_revoked_partition_are_neither_processed_nor_acknowledged() -> None:
    # Taken (buffered) before the revocation, handed over after it.
    stream = ScriptedStream([[event(0, partition=0), event(0, partition=1)]])
    processor = ScriptedProcessor({})
    e = engine(processor, in_flight_limit=100)
    await assign(e, 0, 1)
    await e._revoked(e.app, {TP("raw", 1)})
    agent = asyncio.ensure_future(e._agent(stream))  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.05)
        assert processor.seen == [[0]]
        assert stream.acked == [(0, 0)]
    finally:
        agent.cancel()
        await e.stop()
