"""What happens to one raw record: decode, dedup, analyse, publish, remember.

Transport-neutral: the Faust agent (streams/agent.py) feeds it InputRecords and gives it
a RecordSink; tests feed it directly. It never raises for a bad event: every record ends
as a result, a partial result, a reused duplicate, or a dead letter. Whatever fails for
one event (its decoding, building its result, a bug) becomes that event's dead letter
(INTERNAL_ERROR when no other code fits); only the sink failing (Kafka away) raises, so
that Faust retries the record instead of losing it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from analyzers.pipeline import AnalysisRequest
from schemas.content_hash import content_hash
from schemas.errors import (
    ContentStreamError,
    EventRejected,
    StageTimeout,
)
from schemas.events import AnalysisName, ContentEvent
from streams.kafka.headers import (
    DEFAULT_FORWARD_HEADERS,
    DEFAULT_FORWARD_PREFIX,
    HeaderForwarding,
    OwnHeaders,
    with_trace,
)
from streams.kafka.records import Headers, InputRecord, RecordSink
from streams.operations.metrics import WorkerMetrics
from streams.operations.tracing import DEDUP_SPAN, NO_TRACING, PUBLISH_SPAN, BatchTrace, Tracing
from streams.processing.dead_letters import DeadLetterPublisher
from streams.processing.decoding import EventDecoder
from streams.processing.dedup import DedupStore, dedup_key
from streams.processing.processor import Outcome, ProcessorConfig
from streams.processing.results import (
    analysis_failure,
    build_result,
    internal_error,
    produced_at_s,
    result_key,
    reuse_result,
    timeout_fields,
    worth_remembering,
)

log = logging.getLogger(__name__)

Analyze = Callable[[AnalysisRequest], Awaitable[dict[str, Any]]]


class EventProcessor:
    def __init__(
        self,
        *,
        config: ProcessorConfig,
        decoder: EventDecoder,
        analyze: Analyze,
        sink: RecordSink,
        dead_letters: DeadLetterPublisher,
        dedup: DedupStore | None,
        metrics: WorkerMetrics,
        analyzer_versions: Callable[[], dict[str, str]],
        forwarding: HeaderForwarding | None = None,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self.config = config
        self._forwarding = forwarding or HeaderForwarding(
            DEFAULT_FORWARD_HEADERS, (DEFAULT_FORWARD_PREFIX,)
        )
        self._own = OwnHeaders()
        self._tracing = tracing
        self._decoder = decoder
        self._analyze = analyze
        self._sink = sink
        self._dead_letters = dead_letters
        self._dedup = dedup if config.dedup_policy != "off" else None
        self._metrics = metrics
        self._versions = analyzer_versions
        # Per result key, the publish of the latest earlier event with that key: results
        # for one key leave in the order their events arrived.
        self._key_tails: dict[bytes, asyncio.Future[None]] = {}
        # Dedup keys being analysed now -> the stored value once published (None if not).
        self._analysing: dict[str, asyncio.Future[bytes | None]] = {}

    def use_sink(self, sink: RecordSink) -> None:
        """Publish results and dead letters through ``sink`` (exactly-once mode)."""
        self._sink = sink
        self._dead_letters.use_sink(sink)

    async def process(self, record: InputRecord) -> Outcome:
        """Handle one record; returns once its output (if any) is acknowledged by Kafka."""
        trace = self._tracing.batch([record])
        if trace is None:
            return await self._process(record, None)
        finished = "unfinished"  # Kafka away: Faust retries the record
        try:
            outcome = await self._process(record, trace)
            finished = outcome.value
        finally:
            trace.event_done(0, finished)
            trace.end({finished: 1})
        return outcome

    async def _process(self, record: InputRecord, trace: BatchTrace | None) -> Outcome:
        self._metrics.events_consumed.labels(topic=record.topic).inc()
        rejection: ContentStreamError | None = None
        try:
            event = self._decoder.decode(record.value)
            key = result_key(event.id)
            analyses = tuple(event.analyses) if event.analyses else self.config.default_analyses
            chash = content_hash(event.text)
        except EventRejected as exc:
            rejection = exc
        except Exception as exc:  # the decoder's bug, not the producer's fault
            rejection = internal_error("decoding", exc, "decode")
        if rejection is not None:
            outcome = await self._dead_letter(record, rejection, stage="decode", trace=trace)
            self._metrics.events_finished.labels(outcome=outcome.value).inc()
            return outcome

        loop = asyncio.get_running_loop()
        previous = self._key_tails.get(key)
        mine: asyncio.Future[None] = loop.create_future()
        self._key_tails[key] = mine
        try:
            outcome = await self._process_event(
                record, event, key, previous, analyses, chash, trace
            )
        finally:
            if not mine.done():
                mine.set_result(None)
            if self._key_tails.get(key) is mine:
                del self._key_tails[key]
        self._metrics.events_finished.labels(outcome=outcome.value).inc()
        return outcome

    async def _process_event(
        self,
        record: InputRecord,
        event: ContentEvent,
        key: bytes,
        previous: asyncio.Future[None] | None,
        analyses: tuple[AnalysisName, ...],
        chash: str,
        trace: BatchTrace | None,
    ) -> Outcome:
        if self._dedup is not None:
            dkey = dedup_key(
                event.text,
                [a.value for a in analyses],
                self._versions(),
                tenant=event.tenant,
                language=event.language,
                scope=self.config.dedup_scope,
            )
            if trace is None:
                stored = await self._dedup.get(dkey)
            else:
                with trace.child(DEDUP_SPAN, events=1):
                    stored = await self._dedup.get(dkey)
            if stored is None and dkey in self._analysing:
                # The same text is being analysed for an earlier event right now:
                # wait for that analysis instead of running a second one.
                stored = await asyncio.shield(self._analysing[dkey])
            if stored is not None:
                if self.config.dedup_policy == "drop":
                    self._metrics.dedup_hits.inc()
                    return Outcome.DROPPED
                value = reuse_result(stored, event)
                if value is not None:  # else a damaged entry: analyse instead
                    self._metrics.dedup_hits.inc()
                    await self._publish(key, value, previous, event, record, trace)
                    return Outcome.DUPLICATE
            self._metrics.dedup_misses.inc()
            mine: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
            self._analysing[dkey] = mine
            stored_value: bytes | None = None
            try:
                outcome, stored_value = await self._analyse_and_publish(
                    record, event, key, previous, chash, analyses, trace
                )
                if stored_value is not None:
                    # Only after Kafka acknowledged the result: a crash before this
                    # point reprocesses the event instead of remembering an
                    # unpublished analysis.
                    await self._dedup.put(dkey, stored_value)
            finally:
                if self._analysing.get(dkey) is mine:
                    del self._analysing[dkey]
                if not mine.done():
                    mine.set_result(stored_value)
            return outcome

        outcome, _ = await self._analyse_and_publish(
            record, event, key, previous, chash, analyses, trace
        )
        return outcome

    async def _analyse_and_publish(
        self,
        record: InputRecord,
        event: ContentEvent,
        key: bytes,
        previous: asyncio.Future[None] | None,
        chash: str,
        analyses: tuple[AnalysisName, ...],
        trace: BatchTrace | None,
    ) -> tuple[Outcome, bytes | None]:
        """Analyse and publish; returns the outcome and the value worth remembering."""
        request = AnalysisRequest(
            text=event.text, analyses=frozenset(analyses), language_hint=event.language
        )
        try:
            fields = await self._analyze_with_retries(request, record)
        except ContentStreamError as exc:
            if previous is not None:
                await previous
            outcome = await self._dead_letter(
                record, exc, stage=exc.stage or "analysis", trace=trace
            )
            return outcome, None

        try:
            result = build_result(event, chash, analyses, fields)
            value = orjson.dumps(result)
        except Exception as exc:  # e.g. orjson refusing what the event carries
            if previous is not None:
                await previous
            error = internal_error("building its result", exc, "result")
            return await self._dead_letter(record, error, stage="result", trace=trace), None
        try:
            self._metrics.observe_stages(fields.get("timings_ms", {}))
        except Exception:  # metrics only: never worth an event
            log.debug("stage timings not observed", exc_info=True)
        if trace is not None:
            try:
                trace.stages(fields.get("timings_ms", {}), fields.get("analyzer_versions", {}), 1)
            except Exception:  # tracing only: never worth an event
                log.debug("stage spans not recorded", exc_info=True)
        versions = result["analyzer_versions"] or None
        await self._publish(key, value, previous, event, record, trace, versions)
        outcome = Outcome.PARTIAL if result["errors"] else Outcome.OK
        return outcome, value if worth_remembering(result) else None

    async def _analyze_with_retries(
        self, request: AnalysisRequest, record: InputRecord
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            self._metrics.analyzer_calls.inc()
            try:
                return await self._analyze(request)
            except StageTimeout as exc:
                # A hang is a property of the text: retrying would hold its partition
                # hostage again. Publish what we know, with the reason.
                return timeout_fields(request, exc)
            except Exception as exc:
                error = analysis_failure(exc, attempt, self.config.max_attempts)
                if error is exc:
                    raise
                if error is not None:
                    raise error from exc
            self._metrics.retries.inc()
            delay = self.config.retry_backoff_s * (2 ** (attempt - 1))
            log.warning(
                "retrying analysis of %s[%d]@%d in %.2fs (attempt %d)",
                record.topic,
                record.partition,
                record.offset,
                delay,
                attempt + 1,
            )
            await asyncio.sleep(delay * (0.5 + random.random()))

    async def _publish(
        self,
        key: bytes,
        value: bytes,
        previous: asyncio.Future[None] | None,
        event: ContentEvent,
        record: InputRecord,
        trace: BatchTrace | None,
        versions: Mapping[str, str] | None = None,
    ) -> None:
        """``versions``: those the published analysis names (the pool's current ones,
        which a reused analysis' dedup key was made of, when not given)."""
        headers = self._own.for_result(event.id, versions or self._versions())
        headers += self._forwarded(record, trace)
        if previous is not None:
            await previous
        if trace is None:
            await self._sink.send(self.config.output_topic, key, value, headers)
        else:
            with trace.child(PUBLISH_SPAN, **{"messaging.batch.message_count": 1}):
                await self._sink.send(self.config.output_topic, key, value, headers)
        produced = produced_at_s(event)
        if produced is not None:
            self._metrics.end_to_end_latency.observe(max(0.0, time.time() - produced))

    def _forwarded(self, record: InputRecord, trace: BatchTrace | None) -> Headers:
        """The input headers that travel on (streams/kafka/headers.py); with a sampled
        trace, its event span's context in place of the incoming one."""
        forwarded = self._forwarding.forwarded(record.headers)
        if trace is not None:
            forwarded = with_trace(forwarded, trace.event_headers(0))
        return forwarded

    async def _dead_letter(
        self,
        record: InputRecord,
        error: ContentStreamError,
        *,
        stage: str,
        trace: BatchTrace | None = None,
    ) -> Outcome:
        forwarded = self._forwarded(record, trace)
        if trace is None:
            await self._dead_letters.publish(record, error, stage=stage, forwarded=forwarded)
        else:
            with trace.child(PUBLISH_SPAN, **{"messaging.batch.message_count": 1}):
                await self._dead_letters.publish(record, error, stage=stage, forwarded=forwarded)
        self._metrics.dead_letters.labels(code=error.code.value).inc()
        return Outcome.DEAD_LETTERED
