"""ContentEvent v1: what producers publish to the raw topic."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
)

from schemas.stages import ALL_ANALYSES, AnalysisName

__all__ = ["ALL_ANALYSES", "AnalysisName", "ContentEvent", "EventId", "integral"]


# A float the parse holds exactly (|x| <= 2**53); past it the literal may already have
# been rounded, and an id must come out as it went in.
_EXACT_FLOAT_INTEGERS = 2**53


def integral(value: Any) -> Any:
    """``value`` as an int when it is a JSON number with no fraction (``1.0``): JSON
    has one number type, and the published contract (JSON Schema's ``integer``) counts
    1.0 as the integer 1, so a producer whose encoder writes 1.0 sends a valid event."""
    if type(value) is float and value.is_integer() and abs(value) <= _EXACT_FLOAT_INTEGERS:
        return int(value)
    return value


# Strict otherwise: JSON true or 1.5 is not an id (lax validation would turn true into
# 1), and an integer id stays within what Kafka clients and orjson carry losslessly
# (64 bits).
EventId = Annotated[
    StrictStr | Annotated[StrictInt, Field(ge=-(2**63), le=2**64 - 1)],
    BeforeValidator(integral),
]

# RFC 3339 date-time (section 5.6, with the space its note allows): the UTC offset is
# required. Lax datetime parsing would also take 0, "1700000000" (epoch seconds) and
# naive times, none of which the contract's "date-time" admits.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)

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
        "64 bits (not a boolean, not a number with a fraction; 1.0 is the integer 1, up to "
        "2^53 in that form); echoed in the result and used as the Kafka key of the result.",
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
        description="When the producer created the event: an RFC 3339 date-time with its "
        "offset (`2026-01-01T08:00:00Z`); used for end-to-end latency.",
    )

    @field_validator("schema_version", mode="before")
    @classmethod
    def _integer_version(cls, value: Any) -> Any:
        # Literal[1] alone accepts true (== 1); 1.0 is the integer 1, as for ids.
        value = integral(value)
        if type(value) is not int:
            raise ValueError("schema_version must be the integer 1")
        return value

    @field_validator("produced_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        if isinstance(value, str) and not _RFC3339.fullmatch(value):
            raise ValueError("produced_at must be an RFC 3339 date-time with its offset")
        if not isinstance(value, str | datetime | None):
            raise ValueError("produced_at must be an RFC 3339 date-time string")
        return value

    @field_validator("analyses")
    @classmethod
    def _empty_means_default(cls, value: list[AnalysisName] | None) -> list[AnalysisName] | None:
        # One meaning everywhere (worker, CLI, any API): [] asks for nothing in
        # particular, exactly like leaving the field out.
        return value or None
