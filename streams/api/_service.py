"""What the HTTP API does, apart from HTTP: analyse texts, take in events.

It reuses the stream's parts rather than copying them: the one validator
(streams/processing/decoding.py ``EventDecoder``), the worker's result builder and dedup reuse
(streams/processing/results.py), the dedup keys and store (streams/processing/dedup.py,
the same keys the batch processor builds, so a text analysed by a worker is a hit here and
vice versa), and the analyzer process pool with its deadlines (streams/analysis/pool.py through the
worker's micro-batcher): nothing is analysed on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from pydantic import BaseModel, ValidationError

from analyzers.pipeline import AnalysisRequest
from schemas.content_hash import content_hash
from schemas.errors import (
    ContentStreamError,
    ErrorCode,
    EventRejected,
    ServiceUnavailable,
    StageTimeout,
)
from schemas.events import AnalysisName, ContentEvent
from streams.api._errors import ApiError, ApiErrorCode, rejection
from streams.api._metrics import ApiMetrics
from streams.api._models import AnalyzeBatch, OneText
from streams.kafka.records import Headers
from streams.processing.decoding import EventDecoder, readable_id
from streams.processing.dedup import BatchDedupKeys, DedupScope, dedup_key
from streams.processing.results import (
    build_result,
    internal_error,
    result_key,
    reuse_result,
    timeout_fields,
    worth_remembering,
)

log = logging.getLogger(__name__)

# Top-level fields of a /v1/analyze body.
_ANALYZE_FIELDS = frozenset({"text", "texts", "id", "analyses", "language", "source", "metadata"})
HTTP_SOURCE = "http"
# Tries of one text's analysis when the pool fails in a retriable way (a process died).
ANALYSIS_ATTEMPTS = 2


class Analyzer(Protocol):
    """The worker's micro-batcher in front of the pool (streams/analysis/batcher.py)."""

    async def analyze(self, request: AnalysisRequest) -> dict[str, Any]: ...


class Store(Protocol):
    async def get_many(self, keys: list[str]) -> list[bytes | None]: ...

    async def put_many(self, items: list[tuple[str, bytes]]) -> None: ...


class EventSink(Protocol):
    """Produces to the raw topic, each record with ``headers`` (the request's trace
    context); returns (partition, offset) of each, acks=all."""

    async def produce(
        self, records: list[tuple[bytes, bytes]], headers: Headers
    ) -> list[tuple[int, int]]: ...


class Stage:
    """The stage a request is in, for the 504 that names it."""

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = "request"


def api_dedup_key(
    event: ContentEvent,
    analyses: tuple[AnalysisName, ...],
    versions: dict[str, str],
    scope: DedupScope,
) -> str:
    """The key the batch processor builds for ``event`` (streams/processing/processor.py
    ``_lookup``: owner = tenant and language hint, suffix = analyses and versions)."""
    return dedup_key(
        event.text,
        [a.value for a in analyses],
        versions,
        tenant=event.tenant,
        language=event.language,
        scope=scope,
    )


@dataclass(slots=True)
class _Text:
    index: int
    payload: Any
    event: ContentEvent | None = None
    error: dict[str, Any] | None = None
    analyses: tuple[AnalysisName, ...] = ()
    dkey: str | None = None
    answer: bytes | None = None  # the result's JSON
    outcome: str = "ok"
    followers: list[_Text] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AnalyzeConfig:
    default_analyses: tuple[AnalysisName, ...]
    dedup_policy: str
    dedup_scope: DedupScope
    max_texts: int


class AnalysisService:
    def __init__(
        self,
        *,
        config: AnalyzeConfig,
        decoder: EventDecoder,
        analyzer: Analyzer,
        versions: Callable[[], dict[str, str]],
        dedup: Store | None,
        metrics: ApiMetrics,
    ) -> None:
        self.config = config
        self._decoder = decoder
        self._analyzer = analyzer
        self._versions = versions
        self._dedup = dedup if config.dedup_policy != "off" else None
        self._metrics = metrics

    # ------------------------------------------------------------------ the body

    def texts_of(self, body: Any, tenant: str) -> tuple[list[_Text], bool]:
        """The texts of a /v1/analyze body as ContentEvent payloads (tenant from the
        key), and whether it was the one-text form; ApiError 422 for a malformed
        envelope, 413 for too many texts."""
        if not isinstance(body, dict):
            raise _invalid(f"the body must be a JSON object, got {_kind(body)}")
        body = _present(body)
        unknown = sorted(set(body) - _ANALYZE_FIELDS)
        if unknown:
            raise _invalid(f"unknown fields: {', '.join(unknown)[:200]}")
        if ("text" in body) == ("texts" in body):
            raise _invalid("give either 'text' (one) or 'texts' (a list)")
        one = "text" in body
        texts = body.get("texts")
        if isinstance(texts, list) and len(texts) > self.config.max_texts:
            raise ApiError(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"{len(texts)} texts; at most {self.config.max_texts} in one request",
            )
        _check_envelope(OneText if one else AnalyzeBatch, body)
        common = {k: body[k] for k in ("analyses", "language", "source") if k in body}
        if one:
            payload = {"id": body.get("id", 0), "text": body["text"], **common}
            if "metadata" in body:
                payload["metadata"] = body["metadata"]
            return [_Text(0, self._owned(payload, tenant))], True
        assert isinstance(texts, list)
        items: list[_Text] = []
        for i, entry in enumerate(texts):
            if isinstance(entry, dict):
                payload = {**common, "id": i, **_present(entry)}
            else:
                payload = {**common, "id": i, "text": entry}
            items.append(_Text(i, self._owned(payload, tenant)))
        return items, False

    @staticmethod
    def _owned(payload: dict[str, Any], tenant: str) -> dict[str, Any]:
        payload.setdefault("source", HTTP_SOURCE)
        payload["tenant"] = tenant
        return payload

    # ------------------------------------------------------------------ analysis

    async def analyze(self, items: list[_Text], stage: Stage) -> list[bytes]:
        """The answer of each text (the JSON of an AnalysisResult or of an error), in
        input order."""
        stage.name = "validation"
        events: list[_Text] = []
        for item in items:
            try:
                item.event = self._decoder.validate(item.payload)
            except EventRejected as exc:
                item.error = {"index": item.index, "id": readable_id(item.payload)}
                item.error["error"] = rejection(exc)
                item.outcome = "rejected"
                continue
            item.analyses = (
                tuple(item.event.analyses) if item.event.analyses else self.config.default_analyses
            )
            events.append(item)

        to_analyse = await self._lookup(events, stage)
        if to_analyse:
            stage.name = "analysis"
            outputs = await asyncio.gather(*(self._analysed(item) for item in to_analyse))
            # One clock read for the request's results (as the worker stamps a pool batch).
            finished = _now()
            for item, fields in zip(to_analyse, outputs, strict=True):
                if fields is not None:
                    self._answer(item, fields, finished)
            stage.name = "dedup"
            await self._remember(to_analyse)
        answers: list[bytes] = []
        tenant_counts: dict[tuple[str, str], int] = {}
        for item in items:
            tenant = item.payload.get("tenant") or "-"
            tenant_counts[(tenant, item.outcome)] = tenant_counts.get((tenant, item.outcome), 0) + 1
            if item.answer is not None:
                answers.append(item.answer)
            else:
                answers.append(orjson.dumps(item.error))
        for (tenant, outcome), n in tenant_counts.items():
            self._metrics.texts_analysed.labels(tenant=tenant, outcome=outcome).inc(n)
        return answers

    async def _lookup(self, events: list[_Text], stage: Stage) -> list[_Text]:
        """Answers repeats from the store (and from each other); the texts left to analyse."""
        if self._dedup is None:
            return events
        stage.name = "dedup"
        keys = BatchDedupKeys(self._versions(), self.config.dedup_scope)
        for item in events:
            event = item.event
            assert event is not None
            item.dkey = keys.key(event.text, event.tenant, event.language, item.analyses)
        unique = list(dict.fromkeys(item.dkey for item in events if item.dkey is not None))
        try:
            values = await self._dedup.get_many(unique)
        except Exception:  # stores never raise by contract; an outage means "analyse"
            log.debug("dedup lookup failed", exc_info=True)
            values = [None] * len(unique)
        stored = {k: v for k, v in zip(unique, values, strict=True) if v is not None}
        leaders: dict[str, _Text] = {}
        to_analyse: list[_Text] = []
        for item in events:
            assert item.event is not None and item.dkey is not None
            value = stored.get(item.dkey)
            reused = reuse_result(value, item.event) if value is not None else None
            if reused is not None:
                item.answer = reused
                item.outcome = "duplicate"
                self._metrics.cache_hits.labels(tenant=item.event.tenant or "-").inc()
            elif item.dkey in leaders:
                leaders[item.dkey].followers.append(item)
            else:
                leaders[item.dkey] = item
                to_analyse.append(item)
        return to_analyse

    async def _analysed(self, item: _Text) -> dict[str, Any] | None:
        """The pool's fields for ``item``'s text; None when it failed (``item`` and its
        repeats then carry the error)."""
        event = item.event
        assert event is not None
        request = AnalysisRequest(
            text=event.text, analyses=frozenset(item.analyses), language_hint=event.language
        )
        for attempt in range(1, ANALYSIS_ATTEMPTS + 1):
            try:
                return await self._analyzer.analyze(request)
            except StageTimeout as exc:  # a hang is the text's: publish what we know
                return timeout_fields(request, exc)
            except ContentStreamError as exc:
                # An analyzer process that died under the batch (retriable) is replaced
                # by a warm spare: one more try, as the worker would.
                if exc.retriable and attempt < ANALYSIS_ATTEMPTS:
                    continue
                self._fail(item, exc)
                return None
            except Exception as exc:  # the pool's contract is ContentStreamError; be safe
                self._fail(item, ServiceUnavailable(f"analysis failed: {type(exc).__name__}"))
                return None
        return None  # not reached: the last attempt returns or fails above

    def _answer(self, item: _Text, fields: dict[str, Any], finished: str) -> None:
        """The results of ``item`` and of its repeats from the pool's ``fields``."""
        event = item.event
        assert event is not None
        chash = content_hash(event.text)
        try:
            body = build_result(event, chash, item.analyses, fields, finished)
            item.answer = orjson.dumps(body)
        except Exception as exc:  # e.g. orjson refusing what the event carries
            self._fail(item, internal_error("building its result", exc, "result"), alone=True)
            body = None
        if body is not None:
            item.outcome = "partial" if body["errors"] else "ok"
        keep = body is not None and worth_remembering(body)
        for follower in item.followers:
            assert follower.event is not None
            reused = reuse_result(item.answer, follower.event) if keep and item.answer else None
            if reused is not None:
                follower.answer = reused
                follower.outcome = "duplicate"
                continue
            # Not reusable (a partial result is not reused, as in the worker; or the first
            # one's result could not be built): the repeat gets its own result of the
            # same analysis, with its own id, source and metadata.
            try:
                own = build_result(follower.event, chash, item.analyses, fields, finished)
                follower.answer = orjson.dumps(own)
                follower.outcome = "partial" if own["errors"] else "ok"
            except Exception as exc:
                self._fail(
                    follower, internal_error("building its result", exc, "result"), alone=True
                )
        if not keep:
            item.dkey = None

    def _fail(self, item: _Text, exc: ContentStreamError, *, alone: bool = False) -> None:
        """``item`` (and, unless ``alone``, the repeats that wait on it) answered with
        ``exc``'s code in its place."""
        for one in (item,) if alone else (item, *item.followers):
            one.error = {
                "index": one.index,
                "id": readable_id(one.payload),
                "error": rejection(exc),
            }
            one.outcome = "rejected"
        item.dkey = None

    async def _remember(self, analysed: list[_Text]) -> None:
        if self._dedup is None:
            return
        stored = [
            (item.dkey, item.answer)
            for item in analysed
            if item.dkey is not None and item.answer is not None and item.outcome == "ok"
        ]
        if stored:
            try:
                await self._dedup.put_many(stored)
            except Exception:  # a lost store costs one re-analysis later, no more
                log.debug("dedup store failed", exc_info=True)


class EventIntake:
    """/v1/events: validate with the one validator, produce valid batches whole."""

    def __init__(
        self, *, decoder: EventDecoder, sink: EventSink, max_events: int, metrics: ApiMetrics
    ) -> None:
        self._decoder = decoder
        self._sink = sink
        self._max = max_events
        self._metrics = metrics

    def events_of(self, body: Any, tenant: str) -> list[tuple[bytes, bytes, Any]]:
        """(key, value, id) of each event of the body, tenant set; ApiError 422 with
        every invalid event's code (nothing is produced then), 403 for an event that
        names another tenant, 413 for too many."""
        payloads = body if isinstance(body, list) else [body]
        if not payloads:
            raise _invalid("no events")
        if len(payloads) > self._max:
            raise ApiError(
                413,
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"{len(payloads)} events; at most {self._max} in one request",
            )
        records: list[tuple[bytes, bytes, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, payload in enumerate(payloads):
            if isinstance(payload, dict):
                claimed = payload.get("tenant")
                if claimed is not None and claimed != tenant:
                    raise ApiError(
                        403,
                        ApiErrorCode.FORBIDDEN,
                        f"event {index} names a tenant other than the key's",
                    )
                payload = {**payload, "tenant": tenant}
            try:
                raw = orjson.dumps(payload)
                event = self._decoder.decode(raw)
            except EventRejected as exc:
                errors.append({"index": index, "id": readable_id(payload), **rejection(exc)})
                continue
            except TypeError as exc:  # a value orjson refuses (an integer past 64 bits)
                errors.append(
                    {
                        "index": index,
                        "id": None,
                        "code": ErrorCode.INVALID_EVENT.value,
                        "message": f"not serialisable: {exc}"[:300],
                    }
                )
                continue
            records.append((result_key(event.id), raw, event.id))
        if errors:
            codes = {ErrorCode(e["code"]) for e in errors}
            raise ApiError(
                422,
                codes.pop() if len(codes) == 1 else ErrorCode.INVALID_EVENT,
                f"{len(errors)} of {len(payloads)} event(s) are invalid; none was produced",
                details={"events": errors},
            )
        return records

    async def produce(
        self,
        records: list[tuple[bytes, bytes, Any]],
        tenant: str,
        stage: Stage,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> list[dict[str, Any]]:
        stage.name = "produce"
        try:
            placed = await self._sink.produce(
                [(key, value) for key, value, _ in records], list(headers)
            )
        except ContentStreamError:
            raise
        except Exception as exc:
            raise ServiceUnavailable(
                f"Kafka did not take the events ({type(exc).__name__})", stage="produce"
            ) from None
        self._metrics.events_produced.labels(tenant=tenant).inc(len(records))
        return [
            {"id": event_id, "partition": partition, "offset": offset}
            for (_, _, event_id), (partition, offset) in zip(records, placed, strict=True)
        ]


class KafkaEventSink:
    """An aiokafka producer (acks=all, idempotent: streams/kafka/clients.py)."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def produce(
        self, records: list[tuple[bytes, bytes]], headers: Headers
    ) -> list[tuple[int, int]]:
        futures: list[Awaitable[Any]] = [
            await self._producer.send(self._topic, value=value, key=key, headers=headers or None)
            for key, value in records
        ]
        metadata = await asyncio.gather(*futures)
        return [(m.partition, m.offset) for m in metadata]


def _check_envelope(model: type[BaseModel], body: dict[str, Any]) -> None:
    """422 unless ``body`` has the shape of ``model`` (the OpenAPI document's)."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors()
        code = ErrorCode.INVALID_EVENT
        if any("analyses" in e["loc"] for e in errors):
            code = ErrorCode.UNKNOWN_ANALYSIS
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in errors[:5]
        )
        raise ApiError(422, code, f"malformed request: {detail}"[:1000]) from None


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` without the ones set to null: null means "absent" in a request."""
    return {k: v for k, v in fields.items() if v is not None}


def _invalid(message: str) -> ApiError:
    return ApiError(422, ErrorCode.INVALID_EVENT, message)


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else "null"
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()
