"""Spans of processed batches, recorded with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from processors import make_processor

from analyzers.pipeline import AnalysisRequest
from streams.analysis.batcher import Deliver
from streams.kafka.records import Headers, InputRecord, Outgoing
from streams.operations.tracing import (
    BATCH_SPAN,
    DEDUP_SPAN,
    EVENT_SPAN,
    NO_TRACING,
    PUBLISH_SPAN,
    STAGE_SPAN_PREFIX,
    OtelTracing,
    Tracing,
    parse_traceparent,
    tracing_from_env,
)

SAMPLED_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
SAMPLED_PARENT = 0xB7AD6B7169203331
UNSAMPLED_TRACE = 0x1111111111111111111111111111111A
SAMPLED = f"00-{SAMPLED_TRACE:032x}-{SAMPLED_PARENT:016x}-01".encode()
UNSAMPLED = f"00-{UNSAMPLED_TRACE:032x}-{0x2222222222222222:016x}-00".encode()
TIMINGS = {"language": 0.02, "keywords": 0.1}
VERSIONS = {"language": "script-2", "keywords": "k1"}


def _result(text: str) -> dict[str, Any]:
    return {
        "language": "zh",
        "keywords": [{"text": text[:2], "weight": 1.0}],
        "errors": [],
        "timings_ms": dict(TIMINGS),
        "analyzer_versions": dict(VERSIONS),
    }


class Sent:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, Headers]] = []

    async def publish(self, messages: list[Outgoing]) -> None:
        for m in messages:
            self.records.append((m.topic, m.value, list(m.headers)))

    def headers(self, topic: str) -> list[dict[str, bytes]]:
        return [dict(h) for t, _, h in self.records if t == topic]


class Queue:
    def submit_many(self, requests: list[tuple[int, AnalysisRequest]], deliver: Deliver) -> None:
        answers: list[tuple[int, Any]] = [(i, _result(r.text)) for i, r in requests]
        asyncio.get_running_loop().call_soon(deliver, answers)


def engine(tracing: Tracing) -> Any:
    sent = Sent()
    batch = make_processor(
        analysis=Queue(), publisher=sent, analyzer_versions=lambda: VERSIONS, tracing=tracing
    )

    async def run(records: list[InputRecord]) -> None:
        await batch.process(records)

    return run, sent


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> OtelTracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracing(provider)


def records() -> list[InputRecord]:
    def rec(offset: int, event_id: str, text: str, headers: Headers) -> InputRecord:
        value = orjson.dumps({"id": event_id, "text": text})
        return InputRecord("raw", 0, offset, None, value, headers=headers)

    return [
        rec(0, "sampled", "今天很好", [("traceparent", SAMPLED), ("x-request-id", b"r1")]),
        rec(1, "unsampled", "服务很差", [("traceparent", UNSAMPLED)]),
        rec(2, "plain", "西湖很美", []),
        InputRecord("raw", 0, 3, None, b"{broken", headers=[("traceparent", SAMPLED)]),
    ]


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_batch_span_links_every_incoming_context_and_has_children(
    tracing: OtelTracing, exporter: InMemorySpanExporter
) -> None:
    run, _ = engine(tracing)
    await run(records())
    spans = exporter.get_finished_spans()
    [batch] = named(spans, BATCH_SPAN)
    assert batch.parent is None  # a root: a batch has many parents, linked instead
    linked = [(link.context.trace_id, link.context.span_id) for link in batch.links]
    assert linked == [
        (SAMPLED_TRACE, SAMPLED_PARENT),
        (UNSAMPLED_TRACE, 0x2222222222222222),
        (SAMPLED_TRACE, SAMPLED_PARENT),
    ]
    assert batch.links[0].attributes == {
        "messaging.destination.name": "raw",
        "messaging.destination.partition.id": "0",
        "messaging.kafka.offset": 0,
    }
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 4
    batch_id = batch.context.span_id
    children = [s for s in spans if s.parent is not None and s.parent.span_id == batch_id]
    names = {s.name for s in children}
    assert {DEDUP_SPAN, PUBLISH_SPAN, STAGE_SPAN_PREFIX + "keywords"} <= names
    for child in children:
        assert child.context.trace_id == batch.context.trace_id


async def test_stage_spans_carry_stage_version_texts_and_duration(
    tracing: OtelTracing, exporter: InMemorySpanExporter
) -> None:
    run, _ = engine(tracing)
    await run(records()[:3])
    stages = [s for s in exporter.get_finished_spans() if s.name.startswith(STAGE_SPAN_PREFIX)]
    assert stages
    texts = 3  # one pool batch of 3
    for span in stages:
        attributes = dict(span.attributes or {})
        stage = str(attributes["contentstream.stage"])
        assert span.name == STAGE_SPAN_PREFIX + stage
        assert attributes["contentstream.analyzer.version"] == VERSIONS[str(stage)]
        assert attributes["contentstream.texts"] == texts
        expected_ms = TIMINGS[str(stage)] * texts
        assert attributes["contentstream.duration_ms"] == pytest.approx(expected_ms, rel=1e-3)
        assert span.end_time is not None and span.start_time is not None
        assert span.end_time - span.start_time == pytest.approx(expected_ms * 1e6, abs=2)
    # Laid end to end: language, then keywords.
    by_stage = {dict(s.attributes or {})["contentstream.stage"]: s for s in stages[:2]}
    assert by_stage["language"].end_time == by_stage["keywords"].start_time


async def test_only_sampled_events_get_a_span_and_their_output_continues_it(
    tracing: OtelTracing, exporter: InMemorySpanExporter
) -> None:
    run, sent = engine(tracing)
    await run(records())
    spans = exporter.get_finished_spans()
    events = named(spans, EVENT_SPAN)
    assert len(events) == 2  # the sampled good event and the sampled broken one
    batches = {b.context.span_id for b in named(spans, BATCH_SPAN)}
    for span in events:
        assert span.context.trace_id == SAMPLED_TRACE
        assert span.parent is not None and span.parent.span_id == SAMPLED_PARENT
        [link] = span.links  # to the batch it was processed in
        assert link.context.span_id in batches
    outcomes = sorted(str(dict(s.attributes or {})["contentstream.outcome"]) for s in events)
    assert outcomes == ["dead_lettered", "ok"]

    by_id = {h["contentstream-event-id"]: h for h in sent.headers("out")}
    result_parent = by_id[b"sampled"]["traceparent"].decode()
    ok_span = next(s for s in events if dict(s.attributes or {})["contentstream.outcome"] == "ok")
    assert result_parent == f"00-{SAMPLED_TRACE:032x}-{ok_span.context.span_id:016x}-01"
    assert by_id[b"sampled"]["x-request-id"] == b"r1"
    # Unsampled: forwarded untouched, no span of its own.
    assert by_id[b"unsampled"]["traceparent"] == UNSAMPLED
    assert "traceparent" not in by_id[b"plain"]
    [letter] = sent.headers("dlq")
    dead_span = next(s for s in events if s is not ok_span)
    assert letter["traceparent"].decode().split("-")[2] == f"{dead_span.context.span_id:016x}"


async def test_nothing_recorded_when_disabled(exporter: InMemorySpanExporter) -> None:
    disabled = tracing_from_env({"OTEL_SDK_DISABLED": "true"})
    assert disabled is NO_TRACING and disabled.batch(records()) is None
    assert tracing_from_env({"OTEL_TRACES_EXPORTER": "none"}) is NO_TRACING
    assert tracing_from_env({}) is NO_TRACING  # the extra alone does not ask for spans
    run, sent = engine(disabled)
    await run(records())
    assert exporter.get_finished_spans() == ()
    # Headers still travel, untouched.
    by_id = {h["contentstream-event-id"]: h for h in sent.headers("out")}
    assert by_id[b"sampled"]["traceparent"] == SAMPLED


def test_console_exporter_from_env() -> None:
    tracing = tracing_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "t"})
    try:
        assert tracing.enabled
    finally:
        tracing.shutdown()


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01",  # all-zero trace id
        b"00-" + b"1" * 32 + b"-" + b"0" * 16 + b"-01",  # all-zero parent
        b"ff-" + b"1" * 32 + b"-" + b"1" * 16 + b"-01",  # forbidden version
        b"00-" + b"A" * 32 + b"-" + b"1" * 16 + b"-01",  # upper case
        b"00-" + b"1" * 32 + b"-" + b"1" * 16 + b"-01-extra",  # version 00 has no tail
        b"00-" + b"+1" * 16 + b"-" + b"1" * 16 + b"-01",  # int() would take this
        b"00-" + b"1" * 31 + b"\xff-" + b"1" * 16 + b"-01",
        "00-\u0661".encode() + b"1" * 30 + b"-" + b"1" * 16 + b"-01",
    ],
)
def test_malformed_traceparents_are_not_parents(value: bytes) -> None:
    assert parse_traceparent(value) is None


def test_traceparent_parsing() -> None:
    assert parse_traceparent(SAMPLED) == (SAMPLED_TRACE, SAMPLED_PARENT, 1)
    future = b"01-" + b"1" * 32 + b"-" + b"2" * 16 + b"-00-whatever"
    assert parse_traceparent(future) == (int("1" * 32, 16), int("2" * 16, 16), 0)


async def test_malformed_traceparent_costs_no_link_and_no_span(
    tracing: OtelTracing, exporter: InMemorySpanExporter
) -> None:
    run, sent = engine(tracing)
    bad = b"00-" + b"+1" * 16 + b"-" + b"1" * 16 + b"-01"
    value = orjson.dumps({"id": "m", "text": "好"})
    await run([InputRecord("raw", 0, 0, None, value, headers=[("traceparent", bad)])])
    spans = exporter.get_finished_spans()
    [batch] = named(spans, BATCH_SPAN)
    assert list(batch.links) == [] and named(spans, EVENT_SPAN) == []
    [headers] = sent.headers("out")
    assert headers["traceparent"] == bad  # forwarded as it came: not ours to judge


async def test_a_batch_span_is_a_root_whatever_span_is_current(
    tracing: OtelTracing, exporter: InMemorySpanExporter
) -> None:
    run, _ = engine(tracing)
    with tracing.tracer.start_as_current_span("caller"):
        await run(records()[:1])
    [batch] = named(exporter.get_finished_spans(), BATCH_SPAN)
    assert batch.parent is None
