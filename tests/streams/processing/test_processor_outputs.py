"""BatchProcessor.process with an outputs buffer (exactly_once): nothing is published,
the buffer holds the batch's messages in publishing order, with the refused-record rule."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
from aiokafka.errors import MessageSizeTooLargeError
from processors import make_processor
from prometheus_client import generate_latest

from analyzers.pipeline import AnalysisRequest
from schemas.events import ALL_ANALYSES
from streams.analysis.batcher import Deliver
from streams.kafka.records import InputRecord, Outgoing
from streams.kafka.transactions import BatchOutputs, Buffered
from streams.operations.metrics import WorkerMetrics
from streams.processing.processor import BatchProcessor, Outcome, ProcessorConfig


class NoPublishing:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    async def publish(self, messages: list[Outgoing]) -> None:
        self.sent.extend(messages)


class DelayedQueue:
    """Answers each request after its text's delay."""

    def __init__(self, delays: dict[str, float] | None = None) -> None:
        self.delays = delays or {}

    def submit_many(self, requests: list[tuple[int, AnalysisRequest]], deliver: Deliver) -> None:
        loop = asyncio.get_running_loop()
        for index, request in requests:
            outcome: Any = {
                "language": "zh",
                "keywords": [{"text": request.text[:2], "weight": 1.0}],
                "errors": [],
                "timings_ms": {"keywords": 0.1},
                "analyzer_versions": {"keywords": "k1"},
            }
            loop.call_later(self.delays.get(request.text, 0.0), deliver, [(index, outcome)])


def make(
    delays: dict[str, float] | None = None,
    policy: str = "reuse",
    metrics: WorkerMetrics | None = None,
) -> tuple[BatchProcessor, NoPublishing]:
    publisher = NoPublishing()
    processor = make_processor(
        analysis=DelayedQueue(delays),
        publisher=publisher,
        config=ProcessorConfig(
            output_topic="out", default_analyses=ALL_ANALYSES, dedup_policy=policy
        ),
        metrics=metrics or WorkerMetrics(),
    )
    return processor, publisher


def ev(offset: int, event_id: str, text: str) -> InputRecord:
    value = orjson.dumps({"id": event_id, "text": text})
    return InputRecord(topic="raw", partition=0, offset=offset, key=None, value=value)


async def test_with_a_buffer_nothing_is_published_and_every_output_is_buffered() -> None:
    processor, publisher = make()
    outputs = BatchOutputs()
    records = [
        ev(0, "a", "文本一"),
        InputRecord("raw", 0, 1, None, b"not json"),
        ev(2, "b", "文本二"),
    ]
    outcomes = await processor.process(records, outputs=outputs)
    assert outcomes == Counter({Outcome.OK: 2, Outcome.DEAD_LETTERED: 1})
    assert publisher.sent == []
    assert sorted(b.message.topic for b in outputs.messages) == ["dlq", "out", "out"]
    # Without a buffer the same processor publishes again.
    await processor.process([ev(3, "c", "文本三")])
    assert [m.key for m in publisher.sent] == [b"c"]


async def test_a_refused_result_is_replaced_by_its_dead_letter_then_without_the_original() -> None:
    processor, _ = make()
    outputs = BatchOutputs()
    record = ev(5, "big", "很长的文本")
    await processor.process([record], outputs=outputs)
    (result,) = outputs.messages
    letter = result.instead(MessageSizeTooLargeError())
    assert letter is not None
    headers = dict(letter.message.headers)
    assert letter.message.topic == "dlq"
    assert headers["contentstream-error-code"] == b"RESULT_REJECTED"
    assert b"MessageSizeTooLargeError" in headers["contentstream-error-message"]
    assert letter.message.value == record.value, "the original, for a replay"
    bare = letter.instead(MessageSizeTooLargeError())
    assert bare is not None and bare.message.value == b""
    assert (
        b"MessageSizeTooLargeError" in dict(bare.message.headers)["contentstream-original-dropped"]
    )
    assert bare.instead(MessageSizeTooLargeError()) is None, "nothing left to leave out"


async def test_results_of_one_id_are_buffered_in_arrival_order_across_batches() -> None:
    processor, _ = make(delays={"慢的文本": 0.1})
    journal: list[tuple[str, bytes | None]] = []

    class Journal(list[Buffered]):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def extend(self, items: Any) -> None:
            items = list(items)
            journal.extend((self.name, b.message.key) for b in items)
            super().extend(items)

    first, second = BatchOutputs(Journal("first")), BatchOutputs(Journal("second"))
    await asyncio.gather(
        processor.process([ev(0, "k", "慢的文本")], outputs=first),
        processor.process([ev(1, "k", "快的文本"), ev(2, "other", "别的")], outputs=second),
    )
    assert journal.index(("first", b"k")) < journal.index(("second", b"k"))
    assert ("second", b"other") in journal[:1], "other ids do not wait"


async def test_analyses_are_remembered_only_once_their_transaction_committed() -> None:
    processor, _ = make(policy="drop")
    first = BatchOutputs()
    await processor.process([ev(0, "x", "同一段文本")], outputs=first)
    assert [b.message.key for b in first.messages] == [b"x"]
    # Its transaction aborted (a kill, a fence): the event is processed again and must
    # not be answered by its own analysis, which under the drop policy loses its result.
    again = BatchOutputs()
    await processor.process([ev(0, "x", "同一段文本")], outputs=again)
    assert [b.message.key for b in again.messages] == [b"x"]
    for after in again.on_commit:  # this time it committed
        await after()
    repeat = BatchOutputs()
    outcomes = await processor.process([ev(1, "y", "同一段文本")], outputs=repeat)
    assert outcomes == Counter({Outcome.DROPPED: 1}) and repeat.messages == []


def latency_count(metrics: WorkerMetrics) -> float:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("contentstream_processing_latency_seconds_count "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_latencies_are_observed_when_the_transaction_commits() -> None:
    metrics = WorkerMetrics()
    processor, _ = make(metrics=metrics)
    outputs = BatchOutputs()
    await processor.process([ev(0, "a", "文本一"), ev(1, "b", "文本二")], outputs=outputs)
    assert latency_count(metrics) == 0, "buffered is not out yet"
    for after in outputs.on_commit:
        await after()
    assert latency_count(metrics) == 2
