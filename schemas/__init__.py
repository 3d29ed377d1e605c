"""Data contracts of contentstream: events in, results and dead letters out.

Pure data: no I/O, no Kafka. The JSON Schema files in ``schemas/json`` are generated
from these models (``python -m schemas.generate``) and a test keeps them in sync.
"""

from schemas.content_hash import content_hash, normalise_text
from schemas.dead_letter import HEADER_NAMES, DeadLetter
from schemas.errors import (
    AnalysisFailed,
    ConfigurationError,
    ContentStreamError,
    ErrorCode,
    EventRejected,
    InternalError,
    InvalidEncoding,
    InvalidEvent,
    InvalidJson,
    MetadataTooLarge,
    PayloadTooLarge,
    ServiceUnavailable,
    StageTimeout,
    TextTooLong,
)
from schemas.events import ALL_ANALYSES, AnalysisName, ContentEvent, EventId
from schemas.results import (
    AnalysisResult,
    Entity,
    Keyword,
    Sentiment,
    SentimentScores,
    StageError,
)

__all__ = [
    "ALL_ANALYSES",
    "HEADER_NAMES",
    "AnalysisFailed",
    "AnalysisName",
    "AnalysisResult",
    "ConfigurationError",
    "ContentEvent",
    "ContentStreamError",
    "DeadLetter",
    "Entity",
    "ErrorCode",
    "EventId",
    "EventRejected",
    "InternalError",
    "InvalidEncoding",
    "InvalidEvent",
    "InvalidJson",
    "Keyword",
    "MetadataTooLarge",
    "PayloadTooLarge",
    "Sentiment",
    "SentimentScores",
    "ServiceUnavailable",
    "StageError",
    "StageTimeout",
    "TextTooLong",
    "content_hash",
    "normalise_text",
]
