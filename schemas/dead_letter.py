"""DeadLetter v1: an event the worker could not process, with the reason.

The dead-letter topic's record *value* is the original bytes, untouched, so that replay
re-publishes exactly what the producer sent. The reason travels in the record headers
(see :data:`HEADER_NAMES`). ``DeadLetter`` is the typed view of one such record, and its
JSON form is what ``contentstream tail --dead-letters`` prints.
"""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.errors import ErrorCode

HEADER_PREFIX = "contentstream-"
HEADER_NAMES = {
    "code": "contentstream-error-code",
    "message": "contentstream-error-message",
    "stage": "contentstream-stage",
    "topic": "contentstream-source-topic",
    "partition": "contentstream-source-partition",
    "offset": "contentstream-source-offset",
    "first_seen": "contentstream-first-seen",
    "attempts": "contentstream-attempts",
    "event_id": "contentstream-event-id",
    "original_dropped": "contentstream-original-dropped",
}
MAX_HEADER_MESSAGE_CHARS = 1000


class DeadLetter(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        title="DeadLetter",
        json_schema_extra={
            "$id": "https://contentstream.dev/schemas/dead_letter.v1.json",
            "description": "An event that could not be processed. On Kafka the record value "
            "is the original bytes and these fields are headers; this JSON form is what the "
            "CLI prints. Version 1.",
        },
    )

    schema_version: int = 1
    error_code: ErrorCode
    message: str
    stage: str = Field(description="Where it failed: decode, validate, or an analysis stage.")
    event_id: str | None = Field(default=None, description="The event id when it was readable.")
    source_topic: str
    source_partition: int
    source_offset: int
    first_seen: datetime
    attempts: int = Field(default=1, ge=1)
    original_b64: str = Field(description="The original record value, base64-encoded.")
    original_dropped: str | None = Field(
        default=None,
        description="Why the record value is empty: Kafka refused the dead letter with the "
        "original bytes (larger than the dead-letter topic's max.message.bytes). The "
        "original stays at source_topic / source_partition / source_offset while retained.",
    )

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)

    def headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers this dead letter is published with."""
        values = {
            "code": self.error_code.value,
            "message": self.message[:MAX_HEADER_MESSAGE_CHARS],
            "stage": self.stage,
            "topic": self.source_topic,
            "partition": str(self.source_partition),
            "offset": str(self.source_offset),
            "first_seen": self.first_seen.isoformat(),
            "attempts": str(self.attempts),
        }
        if self.event_id is not None:
            values["event_id"] = self.event_id
        if self.original_dropped is not None:
            values["original_dropped"] = self.original_dropped
        # "replace": a message quoting an exception may hold lone surrogates.
        return [(HEADER_NAMES[k], v.encode("utf-8", "replace")) for k, v in values.items()]

    @classmethod
    def from_record(cls, value: bytes, headers: list[tuple[str, bytes]]) -> DeadLetter:
        """Rebuild the typed view from a dead-letter record read back from Kafka."""
        by_name = {name: raw.decode("utf-8", "replace") for name, raw in headers}
        field = {k: by_name.get(v) for k, v in HEADER_NAMES.items()}
        try:
            code = ErrorCode(field["code"] or ErrorCode.INTERNAL_ERROR)
        except ValueError:  # a code from a newer version, or not one at all
            code = ErrorCode.INTERNAL_ERROR
        try:
            first_seen = datetime.fromisoformat(field["first_seen"] or "")
        except ValueError:
            first_seen = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
        return cls(
            error_code=code,
            message=field["message"] or "",
            stage=field["stage"] or "unknown",
            event_id=field["event_id"],
            source_topic=field["topic"] or "",
            source_partition=_int(field["partition"], -1),
            source_offset=_int(field["offset"], -1),
            first_seen=first_seen,
            attempts=max(1, _int(field["attempts"], 1)),
            original_b64=base64.b64encode(value).decode("ascii"),
            original_dropped=field["original_dropped"],
        )


def _int(text: str | None, default: int) -> int:
    """A header's integer; ``default`` for a missing or unreadable one (the dead-letter
    topic may hold records written by hand or by an older worker)."""
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        return default
