"""The records a worker publishes for an event: its analysis, or a reused one.

Shared by every engine (through streams/processing/processor.py) and the other entry
points, so a result looks the same whichever wrote it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from analyzers.pipeline import AnalysisRequest
from schemas.errors import AnalysisFailed, ContentStreamError, InternalError, StageTimeout
from schemas.events import AnalysisName, ContentEvent
from schemas.stages import EXTENSIONS_FIELD, contract_specs

# The result fields of the contract stages (AnalysisResult v1), in their JSON order.
_STAGE_FIELDS: tuple[str, ...] = tuple(spec.result_field for spec in contract_specs())

# Codes in a result's errors that still leave it complete (see worth_remembering).
_COMPLETE_AS_BOUNDED = frozenset({"RESULT_TRUNCATED"})


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat()


def result_key(event_id: Any) -> bytes:
    """The Kafka key of an event's result: its id, so one id keeps one partition."""
    return str(event_id).encode("utf-8")


def produced_at_s(event: ContentEvent) -> float | None:
    """When the producer says it sent the event, in seconds since the epoch."""
    produced = event.produced_at
    if produced is None:
        return None
    if produced.tzinfo is None:
        produced = produced.replace(tzinfo=UTC)
    return produced.timestamp()


def build_result(
    event: ContentEvent,
    chash: str,
    analyses: tuple[AnalysisName, ...],
    fields: dict[str, Any],
    processed_at: str | None = None,
) -> dict[str, Any]:
    """The result of ``event``. ``processed_at`` (ISO 8601) may be given once for a
    whole batch of results finished together.

    One field per declared contract stage (null when it did not run), then
    ``extensions`` with the values of the stages a deployment added, only when one ran:
    a result of the built-in stages is the JSON it always was."""
    result: dict[str, Any] = {
        "schema_version": 1,
        "id": event.id,
        "content_hash": chash,
        "source": event.source,
        "tenant": event.tenant,
    }
    for name in _STAGE_FIELDS:
        result[name] = fields.get(name)
    extensions = fields.get(EXTENSIONS_FIELD)
    if extensions is not None:
        result[EXTENSIONS_FIELD] = extensions
    result["errors"] = fields.get("errors", [])
    result["duplicate_of"] = None
    result["metadata"] = event.metadata
    result["timings_ms"] = fields.get("timings_ms", {})
    result["analyzer_versions"] = fields.get("analyzer_versions", {})
    result["produced_at"] = iso(event.produced_at)
    result["processed_at"] = processed_at or datetime.now(UTC).isoformat()
    return result


def worth_remembering(result: dict[str, Any]) -> bool:
    """Whether a published result may be reused for a repeat of its text: only a
    complete analysis. A stage that failed may succeed next time (a timeout, a pool
    restart), and one that fails for the text itself is cheap to fail again; either
    way a repeat must not inherit a failure that a fix or a retry would have avoided.
    A field cut to its configured bound (RESULT_TRUNCATED) is no failure: the same
    text is cut the same way."""
    return all(error.get("code") in _COMPLETE_AS_BOUNDED for error in result["errors"])


def reuse_result(stored: bytes, event: ContentEvent) -> bytes | None:
    """A stored analysis re-addressed to ``event``, marked ``duplicate_of`` the first;
    None when the stored value is not a result this worker can re-address (then the
    event is analysed instead: a damaged store entry must cost an analysis, not the
    event).

    ``duplicate_of`` names the first event only when it is the same tenant's: with
    CONTENTSTREAM_DEDUP_SCOPE=global another tenant's id would tell this tenant who
    sent the same text, so it is null there."""
    try:
        result = orjson.loads(stored)
        if not isinstance(result, dict) or "id" not in result:
            return None
        first = result.get("duplicate_of") or result["id"]
        result["duplicate_of"] = first if result.get("tenant") == event.tenant else None
        result["id"] = event.id
        result["source"] = event.source
        result["tenant"] = event.tenant
        result["metadata"] = event.metadata
        result["timings_ms"] = {}
        result["produced_at"] = iso(event.produced_at)
        result["processed_at"] = datetime.now(UTC).isoformat()
        return orjson.dumps(result)
    except Exception:  # orjson's errors, or a value of an unexpected shape
        return None


def timeout_fields(request: AnalysisRequest, exc: StageTimeout) -> dict[str, Any]:
    """The fields of a partial result for an analysis that ran past its deadline."""
    return {
        "language": request.language_hint,
        "errors": [
            {"stage": exc.stage or "analysis", "code": exc.code.value, "message": exc.message}
        ],
        "timings_ms": {},
        "analyzer_versions": {},
    }


def analysis_failure(
    exc: BaseException, attempts: int, max_attempts: int
) -> ContentStreamError | None:
    """After ``attempts`` analyses of an event failed with ``exc``: the error to
    dead-letter it with, or None to try again (retriable, attempts left).

    Unexpected exceptions count as retriable: a bug must not lose the event at once."""
    retriable = not isinstance(exc, ContentStreamError) or exc.retriable
    if retriable and attempts < max_attempts:
        return None
    if isinstance(exc, ContentStreamError) and not exc.retriable:
        return exc
    detail = exc.message if isinstance(exc, ContentStreamError) else f"{type(exc).__name__}: {exc}"
    return AnalysisFailed(f"gave up after {attempts} attempts: {detail}", stage="analysis")


def internal_error(doing: str, exc: BaseException, stage: str) -> InternalError:
    """The error an event is dead-lettered with when ``doing`` something for it raised
    ``exc`` (a bug, or a value a library refused); the message names the exception,
    capped, as it may quote the event."""
    detail = f"{type(exc).__name__}: {exc}"
    return InternalError(f"{doing} failed: {detail[:500]}", stage=stage)
