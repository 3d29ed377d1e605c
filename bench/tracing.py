"""Worker CPU per event for header forwarding and tracing (issue #19), processor level.

The batch processor (streams/processing/processor.py) runs batches of 500 events with a fake
analysis (canned results with five stage timings, answered at once) and a publisher that
drops what it gets, so the figure is the per-event work of the worker around analysis:
decoding, result JSON, headers, spans. Modes, interleaved round by round:

- ``before``: results and dead letters with no headers at all, no tracing: the
  processor as it was before issue #19 (the same code with its header methods answering
  ``[]``), the baseline the others are compared with in the same run;
- ``forward``: the default allow-list (traceparent, tracestate, baggage, x-*), tracing off
  (the extra absent or OTEL_SDK_DISABLED=true): the cost a deployment pays by default;
- ``traced-unsampled``: tracing on, every event with an unsampled traceparent (batch span
  and links, no event spans);
- ``traced-sampled``: tracing on at 100 % sampling, every event sampled (event span and
  its traceparent on each result), spans to an in-memory exporter through the SDK's
  BatchSpanProcessor (its export thread's CPU counts: process CPU time is measured).

    python -m bench.tracing [--events 20000] [--rounds 5] [--json out.json]

Prints the median CPU microseconds per event of each mode and its ratio to ``before``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from analyzers.pipeline import AnalysisRequest
from schemas.events import ALL_ANALYSES
from streams.analysis.batcher import Deliver
from streams.kafka.headers import HeaderForwarding
from streams.kafka.records import Headers, InputRecord, Outgoing
from streams.operations.metrics import WorkerMetrics
from streams.operations.tracing import NO_TRACING, OtelTracing, Tracing
from streams.processing.decoding import EventDecoder
from streams.processing.processor import BatchProcessor, ProcessorConfig

BATCH = 500
TIMINGS = {"language": 0.01, "sentiment": 0.05, "keywords": 0.2, "summary": 0.04, "entities": 0.1}
VERSIONS = {
    "language": "script-2",
    "sentiment": "s1",
    "keywords": "kw-3",
    "summary": "ex-5",
    "entities": "e1",
}
TEXT = "酒店位置很好，离西湖步行十分钟，服务员也很热情。The room was clean and quiet. "


class DropPublisher:
    async def publish(self, messages: list[Outgoing]) -> None:
        return None


class CannedAnalysis:
    def submit_many(self, requests: list[tuple[int, AnalysisRequest]], deliver: Deliver) -> None:
        answers: list[tuple[int, Any]] = [
            (
                i,
                {
                    "language": "mixed",
                    "sentiment": {"label": "positive", "score": 0.9},
                    "keywords": [{"text": "西湖", "weight": 0.2}],
                    "summary": "酒店位置很好。",
                    "entities": [{"text": "西湖", "type": "LOC", "start": 6, "end": 8}],
                    "errors": [],
                    "timings_ms": dict(TIMINGS),
                    "analyzer_versions": dict(VERSIONS),
                },
            )
            for i, _ in requests
        ]
        asyncio.get_running_loop().call_soon(deliver, answers)


def records(n: int, *, sampled: bool, offset: int = 0) -> list[InputRecord]:
    flags = "01" if sampled else "00"
    out = []
    for i in range(n):
        o = offset + i
        traceparent = f"00-{o + 1:032x}-{o + 1:016x}-{flags}".encode()
        headers: Headers = [
            ("traceparent", traceparent),
            ("x-request-id", f"req-{o}".encode()),
            ("content-type", b"application/json"),
        ]
        value = orjson.dumps({"id": f"e{o}", "source": "bench", "text": f"{TEXT}{o}"})
        out.append(InputRecord("raw", 0, o, None, value, headers=headers))
    return out


class WithoutHeaders(BatchProcessor):
    """The processor as it was before headers: outputs carry none."""

    def _forwarded(self, item: Any) -> Headers:
        return []

    def _result_headers(self, item: Any) -> Headers:
        return []


def processor(
    forwarding: HeaderForwarding, tracing: Tracing, kind: type[BatchProcessor] = BatchProcessor
) -> BatchProcessor:
    return kind(
        config=ProcessorConfig(
            output_topic="out", default_analyses=ALL_ANALYSES, dedup_policy="off"
        ),
        decoder=EventDecoder(max_payload_bytes=1_000_000, max_text_chars=100_000),
        analysis=CannedAnalysis(),
        publisher=DropPublisher(),
        dead_letter_topic="dlq",
        max_peek_bytes=1_000_000,
        dedup=None,
        metrics=WorkerMetrics(),
        analyzer_versions=lambda: VERSIONS,
        forwarding=forwarding,
        tracing=tracing,
    )


def modes() -> dict[str, tuple[Callable[[], BatchProcessor], bool, Callable[[], None]]]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # default sampler: parent-based, always on at the root
    span_processor = BatchSpanProcessor(exporter, max_queue_size=100_000)
    provider.add_span_processor(span_processor)
    traced = OtelTracing(provider)
    default = HeaderForwarding(["traceparent", "tracestate", "baggage"], ["x-"])

    def flush() -> None:
        span_processor.force_flush()
        exporter.clear()

    def none() -> None:
        return None

    return {
        "before": (lambda: processor(default, NO_TRACING, WithoutHeaders), False, none),
        "forward": (lambda: processor(default, NO_TRACING), False, none),
        "traced-unsampled": (lambda: processor(default, traced), False, flush),
        "traced-sampled": (lambda: processor(default, traced), True, flush),
    }


async def run_mode(make: Callable[[], BatchProcessor], batches: list[list[InputRecord]]) -> float:
    p = make()
    await p.process(batches[0])  # warm
    started = time.process_time()
    for batch in batches[1:]:
        await p.process(batch)
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    try:
        chosen = modes()
    except ImportError:
        print("the otel extra is not installed: pip install -e '.[otel]'", file=sys.stderr)
        return 2
    n = args.events
    inputs = {
        sampled: [records(BATCH, sampled=sampled, offset=i) for i in range(0, n + BATCH, BATCH)]
        for sampled in (False, True)
    }
    per_event: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(args.rounds):
        for name, (make, sampled, after) in chosen.items():
            cpu = asyncio.run(run_mode(make, inputs[sampled]))
            started = time.process_time()
            after()  # exports what is still queued: the exporter's CPU counts too
            cpu += time.process_time() - started
            per_event[name].append(cpu / n * 1e6)
    medians = {name: statistics.median(v) for name, v in per_event.items()}
    base = medians["before"]
    print(f"{n} events x {args.rounds} rounds, batches of {BATCH}; CPU µs per event (median):")
    for name, value in medians.items():
        spread = max(per_event[name]) - min(per_event[name])
        print(f"  {name:18s} {value:8.1f}  (±{spread / 2:.1f})  x{value / base:.2f} of before")
    if args.json:
        with open(args.json, "wb") as f:
            report = {
                "events": n,
                "rounds": args.rounds,
                "us_per_event": per_event,
                "median_us_per_event": medians,
            }
            f.write(orjson.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
