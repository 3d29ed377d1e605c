"""The one exception hierarchy of contentstream, and the error codes it carries.

Every failure that can reach a user has an :class:`ErrorCode`. The code travels in
the dead-letter record and in its Kafka headers (``contentstream-error-code``), in the
``errors`` list of a partial result, and in metrics labels, so it is part of the
public contract: codes are added, never renamed.

Hierarchy (``retriable`` says whether trying the same thing again may succeed)::

    ContentStreamError
    ├── EventRejected            bad input: never retriable, goes to the dead-letter topic
    │   ├── PayloadTooLarge      PAYLOAD_TOO_LARGE
    │   ├── InvalidEncoding      INVALID_UTF8
    │   ├── InvalidJson          INVALID_JSON
    │   ├── InvalidEvent         INVALID_EVENT / MISSING_TEXT / EMPTY_TEXT / UNKNOWN_ANALYSIS
    │   │                        / UNSUPPORTED_VERSION
    │   ├── TextTooLong          TEXT_TOO_LONG
    │   └── MetadataTooLarge     METADATA_TOO_LARGE (nested too deep or too many bytes)
    ├── AnalysisFailed           a stage raised: ANALYSIS_FAILED
    │   └── StageTimeout         a stage ran past its deadline: STAGE_TIMEOUT (retriable)
    ├── ResultRejected           Kafka refused the result itself: RESULT_REJECTED
    ├── InternalError            a fault with one event that no other code names
    │                            (a bug, a value a library refused): INTERNAL_ERROR
    ├── ServiceUnavailable       Kafka / Redis / pool trouble (retriable)
    └── ConfigurationError       bad settings, missing model files: CONFIGURATION_ERROR

RESULT_TRUNCATED is no exception: it marks a result field cut to its configured bound
(a result's ``errors`` only; the rest of the result is complete).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    INVALID_UTF8 = "INVALID_UTF8"
    INVALID_JSON = "INVALID_JSON"
    INVALID_EVENT = "INVALID_EVENT"
    MISSING_TEXT = "MISSING_TEXT"
    EMPTY_TEXT = "EMPTY_TEXT"
    TEXT_TOO_LONG = "TEXT_TOO_LONG"
    UNKNOWN_ANALYSIS = "UNKNOWN_ANALYSIS"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    ANALYSIS_FAILED = "ANALYSIS_FAILED"
    STAGE_TIMEOUT = "STAGE_TIMEOUT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    RESULT_REJECTED = "RESULT_REJECTED"
    CONFIGURATION_ERROR = "CONFIGURATION_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    METADATA_TOO_LARGE = "METADATA_TOO_LARGE"
    RESULT_TRUNCATED = "RESULT_TRUNCATED"


class ContentStreamError(Exception):
    """Base of every error contentstream raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR
    retriable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        stage: str | None = None,
        retriable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retriable is not None:
            self.retriable = retriable
        self.stage = stage

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class EventRejected(ContentStreamError):
    """The event itself is wrong; retrying cannot help."""

    code = ErrorCode.INVALID_EVENT


class PayloadTooLarge(EventRejected):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class InvalidEncoding(EventRejected):
    code = ErrorCode.INVALID_UTF8


class InvalidJson(EventRejected):
    code = ErrorCode.INVALID_JSON


class InvalidEvent(EventRejected):
    code = ErrorCode.INVALID_EVENT


class TextTooLong(EventRejected):
    code = ErrorCode.TEXT_TOO_LONG


class MetadataTooLarge(EventRejected):
    code = ErrorCode.METADATA_TOO_LARGE


class InternalError(ContentStreamError):
    """Something went wrong with one event that is no fault of its input as far as the
    contract can tell (a bug, a value a library refused): the event is dead-lettered
    so that it cannot stop the worker."""

    code = ErrorCode.INTERNAL_ERROR


class AnalysisFailed(ContentStreamError):
    code = ErrorCode.ANALYSIS_FAILED


class StageTimeout(AnalysisFailed):
    code = ErrorCode.STAGE_TIMEOUT
    retriable = True


class ResultRejected(ContentStreamError):
    """Kafka refused the result itself (larger than the output topic's
    ``max.message.bytes``, say): retrying cannot help, so the event is dead-lettered."""

    code = ErrorCode.RESULT_REJECTED


class ServiceUnavailable(ContentStreamError):
    code = ErrorCode.SERVICE_UNAVAILABLE
    retriable = True


class ConfigurationError(ContentStreamError):
    code = ErrorCode.CONFIGURATION_ERROR
