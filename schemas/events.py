"""ContentEvent v1: what producers publish to the raw topic."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AnalysisName(StrEnum):
    """The analyses a producer may request; the result has one field per name."""

    LANGUAGE = "language"
    SENTIMENT = "sentiment"
    KEYWORDS = "keywords"
    SUMMARY = "summary"
    ENTITIES = "entities"


ALL_ANALYSES: tuple[AnalysisName, ...] = tuple(AnalysisName)

EventId = str | int


class ContentEvent(BaseModel):
    """One piece of content to analyse.

    Unknown top-level fields are rejected so that a typo in a producer shows up as a
    dead letter instead of being silently ignored; free-form data belongs in ``metadata``.
    """

    model_config = ConfigDict(
        extra="forbid",
        title="ContentEvent",
        json_schema_extra={
            "$id": "https://contentstream.dev/schemas/content_event.v1.json",
            "description": "A content event published by a producer to the raw topic "
            "(default `content.raw`), encoded as UTF-8 JSON. Version 1.",
        },
    )

    schema_version: Literal[1] = Field(default=1, description="Contract version; omit or send 1.")
    id: EventId = Field(
        description="Producer-chosen unique id of the event; echoed unchanged in the result "
        "and used as the Kafka key of the result.",
    )
    text: str = Field(
        min_length=1,
        pattern=r"\S",
        description="The content to analyse: at least one non-whitespace character. Workers "
        "also enforce a length limit (CONTENTSTREAM_MAX_TEXT_CHARS, default 100000).",
    )
    source: str = Field(
        default="unknown",
        max_length=256,
        description="Where the content comes from (site, app, feed name).",
    )
    tenant: str | None = Field(default=None, max_length=256, description="Owning tenant.")
    language: str | None = Field(
        default=None,
        max_length=16,
        description="Language hint (`zh`, `en`, ...); the detector decides when absent.",
    )
    analyses: list[AnalysisName] | None = Field(
        default=None,
        description="Analyses to run; the worker's configured default set when absent.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form producer data, copied to the result."
    )
    produced_at: datetime | None = Field(
        default=None,
        description="When the producer created the event (RFC 3339); used for end-to-end latency.",
    )
