"""What the per-event processor's tests asserted and the batch tests did not, kept on
the one processor both engines share (BatchProcessor): a result's exact key, own headers
and carried metadata, and a dead letter's origin headers."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
from processors import make_processor

from analyzers.pipeline import AnalysisRequest
from streams.analysis.batcher import Deliver
from streams.kafka.records import InputRecord, Outgoing
from streams.operations.metrics import WorkerMetrics
from streams.processing.processor import BatchProcessor, Outcome


class Recorded:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    async def publish(self, messages: list[Outgoing]) -> None:
        self.sent.extend(messages)


class Analysis:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def submit_many(self, requests: list[tuple[int, AnalysisRequest]], deliver: Deliver) -> None:
        self.calls += [r.text for _, r in requests]
        answers: list[tuple[int, Any]] = [
            (
                i,
                {
                    "language": "zh",
                    "keywords": [{"text": r.text[:2], "weight": 1.0}],
                    "errors": [],
                    "timings_ms": {"keywords": 0.1},
                    "analyzer_versions": {"keywords": "k1"},
                },
            )
            for i, r in requests
        ]
        asyncio.get_running_loop().call_soon(deliver, answers)


def make() -> tuple[BatchProcessor, Recorded, Analysis, WorkerMetrics]:
    out, analysis, metrics = Recorded(), Analysis(), WorkerMetrics()
    processor = make_processor(analysis=analysis, publisher=out, metrics=metrics)
    return processor, out, analysis, metrics


def rec(offset: int, value: bytes) -> InputRecord:
    return InputRecord(topic="raw", partition=0, offset=offset, key=None, value=value)


async def test_a_result_is_keyed_by_id_and_keeps_the_metadata() -> None:
    processor, out, _, metrics = make()
    event = {"id": "e1", "text": "今天很好", "metadata": {"a": 1}}
    assert await processor.process([rec(5, orjson.dumps(event))]) == Counter({Outcome.OK: 1})
    [message] = out.sent
    assert (message.topic, message.key) == ("out", b"e1")
    # contentstream's own headers only: the record carried none to forward.
    assert [name for name, _ in message.headers] == [
        "contentstream-event-id",
        "contentstream-schema-version",
        "contentstream-analyzer-versions",
    ]
    assert message.headers[0] == ("contentstream-event-id", b"e1")
    result = orjson.loads(message.value)
    assert result["id"] == "e1" and result["language"] == "zh"
    assert result["metadata"] == {"a": 1} and result["duplicate_of"] is None
    assert metrics.events_finished.labels(outcome="ok")._value.get() == 1


async def test_a_dead_letter_names_its_origin_and_the_event_id() -> None:
    processor, out, analysis, _ = make()
    raw = b'{"id": "x", "text": ""}'
    assert await processor.process([rec(9, raw)]) == Counter({Outcome.DEAD_LETTERED: 1})
    [letter] = out.sent
    headers = dict(letter.headers)
    assert letter.topic == "dlq" and letter.value == raw
    assert headers["contentstream-error-code"] == b"EMPTY_TEXT"
    assert headers["contentstream-source-offset"] == b"9"
    assert headers["contentstream-event-id"] == b"x"
    assert analysis.calls == []
