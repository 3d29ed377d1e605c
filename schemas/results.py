"""AnalysisResult v1: what the worker publishes to the output topic."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    create_model,
    model_serializer,
)

from schemas.errors import ErrorCode
from schemas.events import EventId
from schemas.stages import (
    Entity,
    EntityType,
    Keyword,
    Sentiment,
    SentimentLabel,
    SentimentScores,
    extension_specs,
)

__all__ = [
    "AnalysisResult",
    "Entity",
    "EntityType",
    "Keyword",
    "Sentiment",
    "SentimentLabel",
    "SentimentScores",
    "StageError",
    "result_model",
]


class StageError(BaseModel):
    """One analysis stage that failed; the result is partial but published."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    code: ErrorCode
    message: str


class AnalysisResult(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        title="AnalysisResult",
        json_schema_extra={
            "$id": "https://contentstream.dev/schemas/analysis_result.v1.json",
            "description": "The analysis of one ContentEvent, published to the output topic "
            "(default `content.analyzed`) keyed by the event id. Version 1. A field is null "
            "when its analysis was not requested or failed (see `errors`).",
        },
    )

    schema_version: Literal[1] = 1
    id: EventId = Field(description="The event's id, unchanged.")
    content_hash: str = Field(
        description="sha256 (hex) of the NFKC-normalised, whitespace-collapsed text."
    )
    source: str | None = None
    tenant: str | None = None
    language: str | None = Field(
        default=None, description="`zh`, `en`, `mixed` (zh and en) or `other`."
    )
    sentiment: Sentiment | None = None
    keywords: list[Keyword] | None = None
    summary: str | None = None
    entities: list[Entity] | None = None
    extensions: dict[str, Any] | None = Field(
        default=None,
        description="The values of the analysis stages a deployment adds to the built-in "
        "ones, one field per stage (its declared result field), each as that stage declares "
        "it (`python -m schemas.generate --stages MODULE` writes this schema with them). "
        "Absent when no such stage ran.",
    )
    errors: list[StageError] = Field(
        default_factory=list, description="Stages that failed; empty when all succeeded."
    )
    duplicate_of: EventId | None = Field(
        default=None,
        description="Id of the earlier event with the same content whose stored analysis "
        "was reused.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    timings_ms: dict[str, float] = Field(
        default_factory=dict, description="Wall time of each stage in milliseconds."
    )
    analyzer_versions: dict[str, str] = Field(default_factory=dict)
    produced_at: datetime | None = None
    processed_at: datetime

    @model_serializer(mode="wrap")
    def _absent_extensions(self, handler: SerializerFunctionWrapHandler) -> Any:
        # The worker leaves ``extensions`` out when no added stage ran, so a result of the
        # built-in stages is the JSON it always was; the model writes it the same way.
        data = handler(self)
        if isinstance(data, dict) and data.get("extensions", True) is None:
            del data["extensions"]
        return data


def result_model() -> type[AnalysisResult]:
    """AnalysisResult with ``extensions`` typed by the stages declared in this process
    (AnalysisResult itself when only the built-in stages are)."""
    specs = extension_specs()
    if not specs:
        return AnalysisResult
    fields: dict[str, Any] = {
        spec.result_field: (
            Optional[spec.result_type],  # noqa: UP045 - result_type is a runtime value
            Field(default=None, description=spec.description),
        )
        for spec in specs
    }
    extensions: Any = create_model(  # type: ignore[call-overload]
        "Extensions", __config__=ConfigDict(extra="forbid"), **fields
    )
    description = AnalysisResult.model_fields["extensions"].description
    model: type[AnalysisResult] = create_model(
        "AnalysisResult",
        __base__=AnalysisResult,
        extensions=(Optional[extensions], Field(default=None, description=description)),  # noqa: UP045
    )
    return model
