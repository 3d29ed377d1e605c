"""ContentEvent v1: what producers publish to the raw topic."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator


class AnalysisName(StrEnum):
    """The analyses a producer may request; the result has one field per name."""

    LANGUAGE = "language"
    SENTIMENT = "sentiment"
    KEYWORDS = "keywords"
    SUMMARY = "summary"
    ENTITIES = "entities"


ALL_ANALYSES: tuple[AnalysisName, ...] = tuple(AnalysisName)

# Strict: JSON true or 1.0 is not an id (lax validation would turn them into 1), and an
# integer id stays within what Kafka clients and orjson carry losslessly (64 bits).
EventId = StrictStr | Annotated[StrictInt, Field(ge=-(2**63), le=2**64 - 1)]

# Bounds of ``metadata``; the worker's are settings (CONTENTSTREAM_MAX_METADATA_DEPTH,
# CONTENTSTREAM_MAX_METADATA_BYTES), these are their defaults.
DEFAULT_MAX_METADATA_DEPTH = 32
DEFAULT_MAX_METADATA_BYTES = 64 * 1024


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

    schema_version: Literal[1] = Field(
        default=1, description="Contract version; omit or send the integer 1."
    )
    id: EventId = Field(
        description="Producer-chosen unique id of the event: a string, or an integer within "
        "64 bits (not a boolean, not a float); echoed unchanged in the result and used as "
        "the Kafka key of the result.",
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
        description="Analyses to run. Absent, null or an empty list all mean the configured "
        "default set (CONTENTSTREAM_ANALYSES, or `contentstream analyze --analyses`).",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form producer data, copied to the result. At most "
        f"{DEFAULT_MAX_METADATA_DEPTH} levels of nesting (the object itself is level 1) and "
        f"{DEFAULT_MAX_METADATA_BYTES} bytes as compact JSON by default "
        "(CONTENTSTREAM_MAX_METADATA_DEPTH / _BYTES); more is rejected with "
        "METADATA_TOO_LARGE.",
    )
    produced_at: datetime | None = Field(
        default=None,
        description="When the producer created the event (RFC 3339); used for end-to-end latency.",
    )

    @field_validator("schema_version", mode="before")
    @classmethod
    def _integer_version(cls, value: Any) -> Any:
        # Literal[1] alone accepts true and 1.0 (both == 1).
        if type(value) is not int:
            raise ValueError("schema_version must be the integer 1")
        return value

    @field_validator("analyses")
    @classmethod
    def _empty_means_default(cls, value: list[AnalysisName] | None) -> list[AnalysisName] | None:
        # One meaning everywhere (worker, CLI, any API): [] asks for nothing in
        # particular, exactly like leaving the field out.
        return value or None
