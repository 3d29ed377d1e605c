"""AnalysisResult v1: what the worker publishes to the output topic."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.errors import ErrorCode
from schemas.events import EventId

SentimentLabel = Literal["positive", "negative", "neutral"]
EntityType = Literal["PER", "LOC", "ORG"]


class SentimentScores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positive: float = Field(ge=0.0, le=1.0)
    negative: float = Field(ge=0.0, le=1.0)
    neutral: float = Field(ge=0.0, le=1.0)


class Sentiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: SentimentLabel
    score: float = Field(ge=0.0, le=1.0, description="Probability of `label`.")
    scores: SentimentScores = Field(description="Probabilities of all three labels.")


class Keyword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    weight: float = Field(description="Relative importance, highest first.")


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    type: str = Field(description="PER, LOC or ORG (other types may be added).")
    start: int = Field(ge=0, description="Character offset into the event text.")
    end: int = Field(ge=0, description="Exclusive end offset: text[start:end] == entity text.")


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
