"""EventProcessor with a recording sink and a scripted analysis: no Kafka needed."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from analyzers.pipeline import AnalysisRequest
from schemas.errors import ServiceUnavailable, StageTimeout
from schemas.events import ALL_ANALYSES
from streams.kafka.records import Headers, InputRecord
from streams.operations.metrics import WorkerMetrics
from streams.processing.dead_letters import DeadLetterPublisher
from streams.processing.decoding import EventDecoder
from streams.processing.dedup import LruDedupStore
from streams.processing.event_processor import EventProcessor
from streams.processing.processor import Outcome, ProcessorConfig


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, Headers]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        await asyncio.sleep(0)
        self.sent.append((topic, key, value, headers))


class ScriptedAnalysis:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.delays: dict[str, float] = {}
        self.failures: dict[str, list[Exception]] = {}

    async def __call__(self, request: AnalysisRequest) -> dict[str, Any]:
        self.calls.append(request.text)
        await asyncio.sleep(self.delays.get(request.text, 0))
        queue = self.failures.get(request.text)
        if queue:
            raise queue.pop(0)
        return {
            "language": "zh",
            "keywords": [{"text": request.text[:2], "weight": 1.0}],
            "errors": [],
            "timings_ms": {"keywords": 0.1},
            "analyzer_versions": {"keywords": "k1"},
        }


def make(
    policy: str = "reuse",
) -> tuple[EventProcessor, RecordingSink, ScriptedAnalysis, WorkerMetrics]:
    sink = RecordingSink()
    analysis = ScriptedAnalysis()
    metrics = WorkerMetrics()
    processor = EventProcessor(
        config=ProcessorConfig(
            output_topic="out",
            default_analyses=ALL_ANALYSES,
            dedup_policy=policy,
            max_attempts=3,
            retry_backoff_s=0.001,
        ),
        decoder=EventDecoder(max_payload_bytes=100_000, max_text_chars=1000),
        analyze=analysis,
        sink=sink,
        dead_letters=DeadLetterPublisher(sink, topic="dlq", max_peek_bytes=100_000),
        dedup=LruDedupStore(max_entries=100, ttl_s=60),
        metrics=metrics,
        analyzer_versions=lambda: {"keywords": "k1"},
    )
    return processor, sink, analysis, metrics


def rec(offset: int, payload: Any, *, raw: bytes | None = None) -> InputRecord:
    value = raw if raw is not None else orjson.dumps(payload)
    return InputRecord(topic="raw", partition=0, offset=offset, key=None, value=value)


async def test_valid_event_is_published_keyed_by_id() -> None:
    processor, sink, _, metrics = make()
    outcome = await processor.process(
        rec(5, {"id": "e1", "text": "今天很好", "metadata": {"a": 1}})
    )
    assert outcome is Outcome.OK
    [(topic, key, value, headers)] = sink.sent
    result = orjson.loads(value)
    assert (topic, key) == ("out", b"e1")
    # contentstream's own headers only: the record carried none to forward.
    assert [name for name, _ in headers] == [
        "contentstream-event-id",
        "contentstream-schema-version",
        "contentstream-analyzer-versions",
    ]
    assert headers[0] == ("contentstream-event-id", b"e1")
    assert result["id"] == "e1" and result["language"] == "zh"
    assert result["metadata"] == {"a": 1} and result["duplicate_of"] is None
    assert metrics.events_finished.labels(outcome="ok")._value.get() == 1


async def test_bad_event_becomes_dead_letter_with_reason_headers() -> None:
    processor, sink, analysis, _ = make()
    raw = b'{"id": "x", "text": ""}'
    assert await processor.process(rec(9, None, raw=raw)) is Outcome.DEAD_LETTERED
    [(topic, _key, value, headers)] = sink.sent
    h = dict(headers)
    assert topic == "dlq" and value == raw
    assert h["contentstream-error-code"] == b"EMPTY_TEXT"
    assert h["contentstream-source-offset"] == b"9"
    assert h["contentstream-event-id"] == b"x"
    assert analysis.calls == []


async def test_repeat_reuses_the_stored_analysis() -> None:
    processor, sink, analysis, metrics = make()
    await processor.process(rec(1, {"id": "first", "text": "同样的文本"}))
    outcome = await processor.process(rec(2, {"id": "second", "text": "同样的文本"}))
    assert outcome is Outcome.DUPLICATE
    assert analysis.calls == ["同样的文本"]
    second = orjson.loads(sink.sent[1][2])
    assert second["id"] == "second" and second["duplicate_of"] == "first"
    assert second["keywords"] == orjson.loads(sink.sent[0][2])["keywords"]
    assert metrics.dedup_hits._value.get() == 1


async def test_drop_policy_publishes_nothing_for_repeats() -> None:
    processor, sink, _, _ = make(policy="drop")
    await processor.process(rec(1, {"id": "a", "text": "重复"}))
    assert await processor.process(rec(2, {"id": "b", "text": "重复"})) is Outcome.DROPPED
    assert len(sink.sent) == 1


async def test_results_of_one_key_keep_arrival_order() -> None:
    processor, sink, analysis, _ = make(policy="off")
    analysis.delays["slow text"] = 0.2
    await asyncio.gather(
        processor.process(rec(1, {"id": "k", "text": "slow text"})),
        processor.process(rec(2, {"id": "k", "text": "fast text"})),
        processor.process(rec(3, {"id": "other", "text": "quick"})),
    )
    order = [orjson.loads(v)["keywords"][0]["text"] for _, k, v, _ in sink.sent if k == b"k"]
    assert order == ["sl", "fa"]
    assert sink.sent[0][1] == b"other", "another key is not held back"


async def test_retriable_failures_are_retried_then_dead_lettered() -> None:
    processor, sink, analysis, metrics = make()
    analysis.failures["flaky"] = [ServiceUnavailable("pool died")]
    assert await processor.process(rec(1, {"id": "a", "text": "flaky"})) is Outcome.OK
    analysis.failures["broken"] = [ServiceUnavailable("x") for _ in range(3)]
    assert await processor.process(rec(2, {"id": "b", "text": "broken"})) is Outcome.DEAD_LETTERED
    assert dict(sink.sent[-1][3])["contentstream-error-code"] == b"ANALYSIS_FAILED"
    assert metrics.retries._value.get() == 3


async def test_timeout_gives_a_partial_result_naming_the_stage() -> None:
    processor, sink, analysis, _ = make()
    analysis.failures["hangs"] = [StageTimeout("ran past 1s", stage="analysis")]
    assert await processor.process(rec(1, {"id": "a", "text": "hangs"})) is Outcome.PARTIAL
    result = orjson.loads(sink.sent[0][2])
    assert result["errors"][0]["code"] == "STAGE_TIMEOUT"
    assert result["keywords"] is None


@pytest.mark.parametrize("policy", ["reuse"])
async def test_partial_results_are_not_remembered(policy: str) -> None:
    processor, _, analysis, _ = make(policy)
    analysis.failures["t"] = [StageTimeout("slow", stage="analysis")]
    await processor.process(rec(1, {"id": "a", "text": "t"}))
    await processor.process(rec(2, {"id": "b", "text": "t"}))
    assert analysis.calls == ["t", "t"]


async def test_concurrent_repeats_share_one_analysis() -> None:
    processor, sink, analysis, _ = make()
    analysis.delays["same"] = 0.1
    outcomes = await asyncio.gather(
        *(processor.process(rec(i, {"id": f"e{i}", "text": "same"})) for i in range(5))
    )
    assert analysis.calls == ["same"]
    assert sorted(o.value for o in outcomes) == ["duplicate"] * 4 + ["ok"]
    dups = [orjson.loads(v) for _, _, v, _ in sink.sent]
    assert sum(1 for d in dups if d["duplicate_of"] == "e0") == 4
