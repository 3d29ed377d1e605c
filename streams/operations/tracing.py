"""OpenTelemetry spans for processed batches, when the ``otel`` extra is installed.

The batch-consumer pattern: a batch of records from many producers has no single
parent, so each batch is a root span (``contentstream.batch``) with a *link* to every
record's incoming trace context (W3C ``traceparent``). Its children: ``contentstream.dedup``
(the Redis lookup), one ``contentstream.stage.<stage>`` span per analysis stage and pool
batch (made after the fact from the pool's per-stage timings, laid end to end up to the
moment the analyses arrived), and ``contentstream.publish`` per group of records sent.

An event whose ``traceparent`` is *sampled* also gets a ``contentstream.event`` span, a
child of the producer's span, from the batch's start until its output is acknowledged;
its result (or dead letter) carries that span's context as its ``traceparent``, so a
consumer continues the same trace. Unsampled events cost no span.

Configured once at start by the standard ``OTEL_*`` variables (``OTEL_SDK_DISABLED``,
``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``,
``OTEL_TRACES_SAMPLER``...); on when an exporter or an OTLP endpoint is named. Without
the extra, with none named, with ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none``, :func:`tracing_from_env` gives :data:`NO_TRACING`, whose
``batch`` answers None: the processors then do nothing for tracing but one ``is None``
test per batch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from streams.kafka.records import Headers, InputRecord

log = logging.getLogger(__name__)

BATCH_SPAN = "contentstream.batch"
EVENT_SPAN = "contentstream.event"
DEDUP_SPAN = "contentstream.dedup"
PUBLISH_SPAN = "contentstream.publish"
STAGE_SPAN_PREFIX = "contentstream.stage."


class Tracing:
    """No tracing: what a worker without the extra (or with it disabled) runs with."""

    enabled = False

    def batch(self, records: Sequence[InputRecord]) -> BatchTrace | None:
        return None

    def shutdown(self) -> None:
        return None


NO_TRACING = Tracing()


class OtelTracing(Tracing):
    enabled = True

    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer("contentstream")
        self.propagator = TraceContextTextMapPropagator()

    def batch(self, records: Sequence[InputRecord]) -> BatchTrace:
        return BatchTrace(self, records)

    def shutdown(self) -> None:
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown()
            except Exception:  # flushing spans must not fail a shutdown
                log.warning("tracing: flushing spans at shutdown failed", exc_info=True)


_HEX = b"0123456789abcdef"


def _trace_headers(headers: Headers) -> tuple[bytes | None, bytes | None]:
    parent: bytes | None = None
    state: bytes | None = None
    for name, value in headers:
        if name == "traceparent" or (len(name) == 11 and name.lower() == "traceparent"):
            parent = value
        elif name == "tracestate" or (len(name) == 10 and name.lower() == "tracestate"):
            state = value
    return parent, state


def parse_traceparent(value: bytes) -> tuple[int, int, int] | None:
    """(trace id, parent span id, flags) of a W3C traceparent, or None if it is not one.

    By hand rather than with the propagator's regex: every record of every batch is
    read, and this is several times cheaper."""
    if len(value) < 55 or value[2:3] != b"-" or value[35:36] != b"-" or value[52:53] != b"-":
        return None
    version = value[:2]
    if version == b"ff" or version.strip(_HEX):
        return None
    if len(value) != 55 and (version == b"00" or value[55:56] != b"-"):
        return None
    trace_hex, span_hex, flags_hex = value[3:35], value[36:52], value[53:55]
    if trace_hex.strip(_HEX) or span_hex.strip(_HEX) or flags_hex.strip(_HEX):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(flags_hex, 16)


def traceparent(span_context: Any) -> bytes:
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{int(span_context.trace_flags):02x}"
    ).encode("ascii")


class BatchTrace:
    """The spans of one processed batch (one record on the Faust engine)."""

    def __init__(self, tracing: OtelTracing, records: Sequence[InputRecord]) -> None:
        from opentelemetry import trace
        from opentelemetry.context import Context

        self._trace = trace
        self._tracer = tracing.tracer
        links: list[Any] = []
        sampled: list[tuple[int, Any]] = []
        for index, record in enumerate(records):
            if not record.headers:
                continue
            parent, state = _trace_headers(record.headers)
            if parent is None:
                continue
            parsed = parse_traceparent(parent)
            if parsed is None:
                continue
            trace_id, span_id, flags = parsed
            incoming = trace.SpanContext(
                trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags & 0xFF)
            )
            links.append(
                trace.Link(
                    incoming,
                    {
                        "messaging.destination.name": record.topic,
                        "messaging.destination.partition.id": str(record.partition),
                        "messaging.kafka.offset": record.offset,
                    },
                )
            )
            if flags & 1:
                if state is not None:
                    # The vendors' part of the context follows the event's own span.
                    carrier = {
                        "traceparent": parent.decode("ascii"),
                        "tracestate": state.decode("latin-1"),
                    }
                    context = tracing.propagator.extract(carrier)
                else:
                    context = trace.set_span_in_context(trace.NonRecordingSpan(incoming))
                sampled.append((index, context))
        topics = sorted({r.topic for r in records})
        self.span = self._tracer.start_span(
            BATCH_SPAN,
            context=Context(),  # a root, whatever context the caller runs in
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": ",".join(topics),
                "messaging.batch.message_count": len(records),
            },
        )
        self.context = trace.set_span_in_context(self.span)
        batch_link = [trace.Link(self.span.get_span_context())]
        self._events: dict[int, Any] = {}
        for index, context in sampled:
            record = records[index]
            self._events[index] = self._tracer.start_span(
                EVENT_SPAN,
                context=context,
                kind=trace.SpanKind.CONSUMER,
                links=batch_link,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": record.topic,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.kafka.offset": record.offset,
                },
            )

    def event_headers(self, index: int) -> Headers | None:
        """The trace context a sampled event's output carries: its event span's."""
        span = self._events.get(index)
        if span is None:
            return None
        return [("traceparent", traceparent(span.get_span_context()))]

    def event_done(self, index: int, outcome: str, event_id: str | int | None = None) -> None:
        span = self._events.pop(index, None)
        if span is None:
            return
        span.set_attribute("contentstream.outcome", outcome)
        if event_id is not None:
            span.set_attribute("contentstream.event_id", str(event_id))
        span.end()

    @contextmanager
    def child(self, name: str, **attributes: Any) -> Iterator[Any]:
        """A child span of the batch around a block (not made current: batches
        interleave on one event loop)."""
        span = self._tracer.start_span(name, context=self.context, attributes=attributes)
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    def stages(
        self,
        timings_ms: Mapping[str, float],
        versions: Mapping[str, str],
        texts: int,
        end_ns: int | None = None,
    ) -> None:
        """Spans for analysis stages that already ran: ``timings_ms`` per text (the
        pool's batch averages) for ``texts`` texts, laid end to end up to ``end_ns``."""
        if not timings_ms or texts <= 0:
            return
        end = time.time_ns() if end_ns is None else end_ns
        durations = [(stage, int(ms * texts * 1e6)) for stage, ms in timings_ms.items()]
        start = end - sum(d for _, d in durations)
        for stage, duration in durations:
            attributes: dict[str, Any] = {
                "contentstream.stage": stage,
                "contentstream.texts": texts,
                "contentstream.duration_ms": duration / 1e6,
            }
            version = versions.get(stage)
            if version is not None:
                attributes["contentstream.analyzer.version"] = version
            span = self._tracer.start_span(
                STAGE_SPAN_PREFIX + stage,
                context=self.context,
                attributes=attributes,
                start_time=start,
            )
            start += duration
            span.end(end_time=start)

    def end(self, outcomes: Mapping[str, int] | None = None) -> None:
        for index in list(self._events):
            self.event_done(index, "unfinished")
        if outcomes:
            for outcome, n in outcomes.items():
                self.span.set_attribute(f"contentstream.outcome.{outcome}", n)
        self.span.end()


def _exporters(environ: Mapping[str, str]) -> list[Any]:
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n]
    exporters: list[Any] = []
    for name in names:
        if name == "none" or not name:
            continue
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            protocol = environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            )
            if protocol == "grpc":
                try:
                    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                        OTLPSpanExporter as GrpcExporter,
                    )

                    exporters.append(GrpcExporter())
                    continue
                except ImportError:
                    log.error(
                        "tracing: OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc; "
                        "exporting over HTTP instead"
                    )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        else:
            log.error("tracing: unknown OTEL_TRACES_EXPORTER %r ignored", name)
    return exporters


_ASKED_FOR = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def tracing_from_env(environ: Mapping[str, str] | None = None) -> Tracing:
    """The worker's tracing, decided once at start from the ``OTEL_*`` variables."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return NO_TRACING
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return NO_TRACING
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):  # set up already (opentelemetry-instrument)
        return OtelTracing(existing)
    if not any(env.get(name) for name in _ASKED_FOR):
        # Installing the extra is not asking for spans: without an exporter or an
        # endpoint named, the SDK's default (OTLP to localhost:4318) would only log
        # connection errors on every machine that has no collector.
        return NO_TRACING
    try:
        exporters = _exporters(env)
    except Exception:
        log.exception("tracing: no exporter could be made; tracing is off")
        return NO_TRACING
    if not exporters:
        return NO_TRACING
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": "contentstream"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    log.info("tracing: spans exported by %s", ", ".join(type(e).__name__ for e in exporters))
    return OtelTracing(provider)
