"""contentstream_processing_latency_seconds: one observation per output Kafka
acknowledged, measured from the processor taking the record in (the processor with a
recording publisher and a scripted analysis queue: no Kafka)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
from processors import make_processor
from prometheus_client import generate_latest

from analyzers.pipeline import AnalysisRequest
from schemas.events import ALL_ANALYSES
from streams.analysis.batcher import Deliver
from streams.kafka.records import InputRecord, Outgoing
from streams.operations.metrics import WorkerMetrics
from streams.processing.processor import BatchProcessor, Outcome, ProcessorConfig

SLOW_S = 0.05


class Publisher:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    async def publish(self, messages: list[Outgoing]) -> None:
        await asyncio.sleep(0)
        self.sent.extend(messages)


class Queue:
    """Answers every text at once, except "slow" after SLOW_S."""

    def submit_many(self, requests: list[tuple[int, AnalysisRequest]], deliver: Deliver) -> None:
        loop = asyncio.get_running_loop()
        for index, request in requests:
            fields: Any = {"language": "en", "errors": [], "timings_ms": {}}
            delay = SLOW_S if request.text == "slow" else 0.0
            loop.call_later(delay, deliver, [(index, fields)])


def make(policy: str) -> tuple[BatchProcessor, Publisher, WorkerMetrics]:
    publisher = Publisher()
    metrics = WorkerMetrics()
    processor = make_processor(
        analysis=Queue(),
        publisher=publisher,
        config=ProcessorConfig(
            output_topic="out", default_analyses=ALL_ANALYSES, dedup_policy=policy
        ),
        metrics=metrics,
        analyzer_versions=dict,
    )
    return processor, publisher, metrics


def record(offset: int, value: bytes) -> InputRecord:
    return InputRecord(topic="raw", partition=0, offset=offset, key=None, value=value)


def event(offset: int, event_id: str, text: str) -> InputRecord:
    return record(offset, orjson.dumps({"id": event_id, "text": text}))


def histogram(metrics: WorkerMetrics) -> dict[str, float]:
    """count and sum of the processing latency histogram, from the exposition."""
    found: dict[str, float] = {}
    for line in generate_latest(metrics.registry).decode().splitlines():
        for part in ("count", "sum"):
            if line.startswith(f"contentstream_processing_latency_seconds_{part} "):
                found[part] = float(line.rsplit(" ", 1)[1])
    return found


async def test_every_acknowledged_output_is_observed_from_intake() -> None:
    processor, publisher, metrics = make("reuse")
    outcomes = await processor.process(
        [event(0, "a", "slow"), event(1, "b", "fast"), record(2, b"not json")]
    )
    assert outcomes == Counter({Outcome.OK: 2, Outcome.DEAD_LETTERED: 1})
    assert len(publisher.sent) == 3
    observed = histogram(metrics)
    assert observed["count"] == 3, "a result or a dead letter: one observation each"
    # The slow event's result could not be acknowledged before its analysis answered.
    assert observed["sum"] >= SLOW_S


async def test_a_dropped_repeat_has_no_output_to_time() -> None:
    processor, publisher, metrics = make("drop")
    outcomes = await processor.process([event(0, "a", "same"), event(1, "b", "same")])
    assert outcomes == Counter({Outcome.OK: 1, Outcome.DROPPED: 1})
    assert len(publisher.sent) == 1
    assert histogram(metrics)["count"] == 1
