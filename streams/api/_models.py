"""Models of the API's bodies, for its OpenAPI document only.

Bodies are read and checked by the API itself (size, content type, UTF-8, then the one
validator, streams/processing/decoding.py), so that every refusal carries the code a dead letter
would; these models describe the same shapes to clients.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import AnalysisName, ContentEvent, EventId
from schemas.results import AnalysisResult


class AnalyzeText(BaseModel):
    """One text of a batch, with its own id and options."""

    model_config = ConfigDict(extra="forbid")

    id: EventId | None = Field(default=None, description="Echoed in the result; default: index.")
    text: str
    analyses: list[AnalysisName] | None = None
    language: str | None = Field(default=None, max_length=16)
    source: str | None = Field(default=None, max_length=256)
    metadata: dict[str, Any] | None = None


class AnalyzeOne(BaseModel):
    """One text; the tenant is the API key's. Invalid, it answers 422 with its code."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, pattern=r"\S")
    id: EventId | None = Field(default=None, description="Echoed in the result; default 0.")
    analyses: list[AnalysisName] | None = Field(
        default=None, description="Analyses to run; absent or [] = the configured default set."
    )
    language: str | None = Field(default=None, max_length=16, description="Language hint.")
    source: str | None = Field(default=None, max_length=256)
    metadata: dict[str, Any] | None = None


class OneText(AnalyzeOne):
    """AnalyzeOne as the API checks its envelope: the text's own checks are the
    validator's (streams/processing/decoding.py), with their dead-letter codes (EMPTY_TEXT, ...)."""

    text: str  # type: ignore[assignment]


class AnalyzeBatch(BaseModel):
    """A batch, answered in this order; an invalid text gets its error in its place."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str | AnalyzeText] = Field(min_length=1)
    analyses: list[AnalysisName] | None = Field(
        default=None, description="Analyses for every text that names none."
    )
    language: str | None = Field(default=None, max_length=16, description="Language hint.")
    source: str | None = Field(default=None, max_length=256)


class ErrorDetail(BaseModel):
    code: str = Field(description="A dead-letter error code (schemas/errors.py) or an API code.")
    message: str
    stage: str | None = None


class TextError(BaseModel):
    """A text of the batch that could not be analysed."""

    index: int
    id: EventId | None = None
    error: ErrorDetail


class AnalyzeResponse(BaseModel):
    results: list[AnalysisResult | TextError] = Field(description="One per text, in order.")


class EventPlaced(BaseModel):
    id: EventId
    partition: int
    offset: int


class EventsAccepted(BaseModel):
    accepted: list[EventPlaced]


class EventError(BaseModel):
    index: int
    id: EventId | None = None
    code: str
    message: str


class ErrorBodyDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    stage: str | None = None
    events: list[EventError] | None = None


class ErrorBody(BaseModel):
    error: ErrorBodyDetail


DOC_MODELS: tuple[type[BaseModel], ...] = (
    AnalyzeOne,
    AnalyzeBatch,
    AnalyzeResponse,
    EventsAccepted,
    ErrorBody,
    ContentEvent,
)
