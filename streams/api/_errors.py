"""Errors the HTTP API answers, in the project's one hierarchy (schemas/errors.py).

Input the stream would dead-letter keeps its dead-letter code (INVALID_JSON,
PAYLOAD_TOO_LARGE, ...); what only HTTP has (no key, over quota, overloaded) gets an
API code of its own. Every error body is ``{"error": {"code", "message", ...}}``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from schemas.errors import ContentStreamError, ErrorCode


class ApiErrorCode(StrEnum):
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    OVERLOADED = "OVERLOADED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"


class ApiError(ContentStreamError):
    """A request the API refuses as a whole: an HTTP status and a code."""

    def __init__(
        self,
        status: int,
        code: ErrorCode | ApiErrorCode,
        message: str,
        *,
        stage: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code if isinstance(code, ErrorCode) else None,
            stage=stage,
            retriable=status in (429, 503, 504),
        )
        self.status = status
        self.api_code = str(code)
        self.headers = headers or {}
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.api_code}: {self.message}"

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.api_code, "message": self.message}
        if self.stage is not None:
            error["stage"] = self.stage
        error.update(self.details)
        return {"error": error}


def rejection(exc: ContentStreamError) -> dict[str, Any]:
    """A per-text or per-event error item: the code its dead letter would carry."""
    item: dict[str, Any] = {"code": exc.code.value, "message": exc.message}
    if exc.stage is not None:
        item["stage"] = exc.stage
    return item
